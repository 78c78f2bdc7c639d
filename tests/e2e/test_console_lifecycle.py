"""A counsellor in headless Chromium takes a Telegram conversation through its life: claim,
reply, crisis flag on and off, release and claim again, close with outcomes; the teen gets the
farewell in Telegram. Against `./dev serve` and the Bot API emulator."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import BOT_TOKEN, SCREENSHOTS, RunningService, open_conversation_with
from tests.e2e.telegram_harness import BotApiEmulator
from tests.e2e.test_thin_path import log_in

pytestmark = pytest.mark.e2e


def test_claim_reply_flag_release_and_close(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, service)
    teen = e2e_emulator.user(BOT_TOKEN, first_name="Kim")
    teen.send_command("/start")
    teen.wait_for_message("anonym")
    teen.click("Mit jemandem schreiben")
    teen.wait_for_message("Vor dir warten gerade")  # the counsellor above is logged in: online
    teen.send_text("Lebenszyklus-Test: ich habe eine Frage")

    open_conversation_with(page, service, teen, "Lebenszyklus-Test")
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("Lebenszyklus-Test: ich habe eine Frage")

    actions = page.get_by_role("group", name="Aktionen für dieses Gespräch")
    expect(actions.get_by_role("button", name="Zurück in die Warteschlange")).to_be_visible()
    page.get_by_label("Antwort").fill("Hallo Kim, ich bin da.")
    page.get_by_role("button", name="Senden").click()
    teen.wait_for_message("Hallo Kim, ich bin da.")

    page.get_by_text("Angebot senden", exact=True).click()
    page.get_by_label("Postleitzahl").fill("90402")
    page.get_by_label("Thema", exact=True).select_option(label="Besuche und Kontakt")
    page.get_by_role("button", name="Im Verzeichnis suchen").click()
    page.get_by_label(re.compile("Treffpunkt e.V. Nürnberg")).first.check()
    page.screenshot(path=str(SCREENSHOTS / "console-referral.png"), full_page=True)
    page.get_by_role("button", name="Ausgewählte als Karte senden").click()
    card = teen.wait_for_message("Treffpunkt e.V. Nürnberg")
    assert "Stand:" in card["text"] and "Quelle:" in card["text"]
    expect(transcript).to_contain_text("Treffpunkt e.V. Nürnberg")

    # Hostile markup from a user is text wherever it shows; no script ever runs.
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    teen.send_text("<img src=x onerror=alert(1)><script>alert(2)</script>")
    expect(transcript.locator(".msg.user .body").last).to_have_text(
        "<img src=x onerror=alert(1)><script>alert(2)</script>"
    )
    assert transcript.locator("img, script").count() == 0 and dialogs == []

    crisis = actions.get_by_role("button", name="Krise")
    crisis.click()
    expect(crisis).to_have_attribute("aria-pressed", "true")
    crisis.click()
    expect(crisis).to_have_attribute("aria-pressed", "false")

    actions.get_by_role("button", name="Zurück in die Warteschlange").click()
    expect(actions.get_by_role("button", name="Übernehmen")).to_be_visible()
    expect(page.get_by_label("Antwort")).to_be_hidden()
    actions.get_by_role("button", name="Übernehmen").click()
    expect(page.get_by_label("Antwort")).to_be_visible()

    page.get_by_text("Abschließen", exact=True).click()
    page.get_by_label("Angebot vermittelt").check()
    page.get_by_label("Thema: Besuche und Kontakt").check()
    page.screenshot(path=str(SCREENSHOTS / "console-close.png"), full_page=True)
    page.get_by_role("button", name="Gespräch abschließen").click()
    expect(page.locator("#conversation")).to_be_hidden()
    teen.wait_for_message("Unser Team hat dieses Gespräch beendet")
    teen.send_text("noch jemand da?")
    teen.wait_for_message("Dieses Gespräch ist beendet")
    assert "Lebenszyklus-Test" not in service.logs()


def test_the_action_panels_work_from_the_keyboard(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    log_in(page, service)
    teen = e2e_emulator.user(BOT_TOKEN)
    teen.send_command("/start")
    teen.wait_for_message("anonym")
    teen.click("Mit jemandem schreiben")
    teen.wait_for_message("Vor dir warten gerade")
    claim = page.get_by_role("button", name="Übernehmen").first
    expect(claim).to_be_visible(timeout=10_000)
    claim.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Antwort")).to_be_focused()
    summary = page.locator("#close-panel summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Angebot vermittelt")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")
    expect(page.locator("#close-form input[name=outcome]").first).to_be_checked()

    # Tablet width: queue above the conversation, nothing cut off sideways.
    page.set_viewport_size({"width": 768, "height": 1024})
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 768, f"the page scrolls sideways ({scroll_width}px)"
    page.screenshot(path=str(SCREENSHOTS / "console-tablet.png"), full_page=True)
