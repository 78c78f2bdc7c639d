"""The walking skeleton as a user would walk it: a teen in Telegram (through the Bot API
emulator), a counsellor in a real headless Chromium, both against `./dev serve`."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    BOT_TOKEN,
    SCREENSHOTS,
    RunningService,
    console_login,
    conversation_of,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e


def log_in(page: Page, service: RunningService) -> None:
    console_login(page, service, service.login, service.password)
    expect(page.locator("#live.on")).to_be_visible()


def test_teen_reaches_a_counsellor_and_back(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    log_in(page, service)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    teen = e2e_emulator.user(BOT_TOKEN, first_name="Mia", username="mia_secret_name")

    teen.send_command("/start")
    teen.wait_for_message("anonym")
    teen.click("Ich bin jugendlich (13–17)")
    teen.wait_for_message("Postleitzahl")
    teen.send_text("90402")
    teen.wait_for_message("Worum geht es dir gerade?")
    teen.click("Besuche und Kontakt")
    card = teen.wait_for_message("Treffpunkt e.V. Nürnberg")
    assert " km · für Jugendliche · Besuche und Kontakt" in card["text"]
    teen.wait_for_message("Wie möchtest du weitermachen?")
    reasons = [m["text"].split("\n")[2] for m in teen.messages() if m["text"].count("\n") > 3]
    assert any(r.startswith(("online", "bundesweit")) for r in reasons), "fallback is there"
    teen.click("Mit jemandem schreiben")
    # How many wait ahead depends on the tests before (crises come first).
    teen.wait_for_message("Vor dir warten gerade:")
    teen.send_text("Mein Papa ist seit Montag in der JVA.")

    # The conversation appears in the queue without a page reload; other tests' conversations
    # may wait there too, so this teen's is found by its id.
    mine = page.locator(f'.queue-item[data-id="{conversation_of(service, teen)}"]')
    claim = mine.get_by_role("button", name="Übernehmen")
    expect(claim).to_be_visible(timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "console-queue.png"))
    claim.click()
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("Mein Papa ist seit Montag in der JVA.")

    page.get_by_label("Antwort").fill("Hallo, hier ist Anna vom Lotse-Team. Ich bin für dich da.")
    page.get_by_role("button", name="Senden").click()
    teen.wait_for_message("Hallo, hier ist Anna vom Lotse-Team.")
    expect(transcript.locator(".msg.counsellor .delivery")).to_have_text("zugestellt")

    teen.send_text("Danke! Wie kann ich ihn besuchen?")
    expect(transcript).to_contain_text("Danke! Wie kann ich ihn besuchen?", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "console-conversation.png"))

    assert e2e_emulator.calls_to("setMyCommands", BOT_TOKEN), "commands are registered"
    logs = service.logs()
    for private in ("Mein Papa ist seit Montag", "mia_secret_name", str(teen.user_id), "Danke!"):
        assert private not in logs


def test_bad_input_in_telegram_gets_friendly_answers(
    service: RunningService, e2e_emulator: BotApiEmulator
) -> None:
    teen = e2e_emulator.user(BOT_TOKEN)
    teen.send_command("/unbekannt")
    teen.wait_for_message("Diesen Befehl kenne ich nicht")
    teen.send_photo()
    teen.wait_for_message("Bilder, Sprachnachrichten")
    teen.send_sticker()
    teen.wait_for_message("Bilder, Sprachnachrichten")
    teen.send_command("/start")
    teen.click("Ich kümmere mich um ein Kind")
    teen.send_text("Hauptstraße 5")
    teen.wait_for_message("nicht wie eine Postleitzahl")
    teen.send_text("00000")
    teen.wait_for_message("Diese Postleitzahl kenne ich nicht")
    assert service.process.poll() is None, "the service keeps running"


def test_web_chat_drives_the_same_conversation(service: RunningService, page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(service.url + "/chat")
    page.get_by_role("button", name="Los geht's").click()
    page.get_by_role("button", name="Ich bin ein Kind (bis 12)").click()
    page.get_by_label("Deine Nachricht").fill("904")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Darüber reden, Gefühle").click()
    expect(page.locator("#log")).to_contain_text("für Kinder · Darüber reden, Gefühle")
    page.get_by_role("button", name="Mit jemandem schreiben").last.click()
    # Online or not depends on the other tests' counsellors; either answer is a handover.
    expect(page.locator("#log")).to_contain_text(
        re.compile("Vor dir warten gerade|niemand aus unserem Team online")
    )
    page.get_by_label("Deine Nachricht").fill("<img src=x onerror=alert(1)>")
    page.keyboard.press("Enter")
    expect(page.locator("#log .entry.user").last).to_have_text("Du<img src=x onerror=alert(1)>")
    page.screenshot(path=str(SCREENSHOTS / "web-chat.png"), full_page=True)
