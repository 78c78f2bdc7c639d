"""The issue's console walk in a real browser: an operator's invitation, the first login with
the second factor, claim, reply, transfer to a colleague, and the colleague closes it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from core.crypto import TOTP_STEP_SECONDS, totp_code
from tests.e2e.conftest import (
    BOT_TOKEN,
    SCREENSHOTS,
    RunningService,
    console_login,
    join_team_keys,
    open_conversation_with,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e


def test_invitation_first_login_claim_reply_transfer_close(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page, browser: Browser
) -> None:
    import time

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    printed = service.lotse("account", "invite", "Ines (Jugendhilfe)", "--base-url", service.url)
    link = re.search(r"(http://\S+/console/invite/\S+)", printed).group(1)

    page.goto(link)
    expect(page.get_by_text("Ines (Jugendhilfe)")).to_be_visible()
    page.get_by_label("Benutzername").fill("ines")
    page.get_by_label("Passwort (mindestens 12 Zeichen)").fill("ein-sehr-langes-passwort")
    page.get_by_label("Passwort noch einmal").fill("ein-sehr-langes-passwort")
    page.get_by_role("button", name="Konto anlegen").click()
    expect(page.get_by_role("heading", name="Zweiter Faktor")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    page.screenshot(path=str(SCREENSHOTS / "console-second-factor.png"), full_page=True)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Bestätigen").click()
    expect(page.get_by_role("alert")).to_contain_text("Der Code stimmt nicht")
    step = int(time.time()) // TOTP_STEP_SECONDS
    page.get_by_label("Code").fill(totp_code(secret, step))
    page.get_by_role("button", name="Bestätigen").click()
    codes = page.get_by_role("list", name="Deine Wiederherstellungscodes").locator("li")
    expect(codes).to_have_count(10)
    page.get_by_role("link", name="Weiter zur Konsole").click()
    expect(page.locator("#live.on")).to_be_visible()
    # Transcripts are sealed: Ines reads them once the lead has shared the team keys with her.
    join_team_keys(page, browser, service, "Ines' langer Entsperrsatz")
    expect(page.locator("#live.on")).to_be_visible()

    teen = e2e_emulator.user(BOT_TOKEN, first_name="Ole")
    teen.send_command("/start")
    teen.wait_for_message("anonym")
    teen.click("Mit jemandem schreiben")
    teen.wait_for_any("Vor dir warten gerade", "niemand aus unserem Team online")
    teen.send_text("Einladungstest: Hallo?")
    open_conversation_with(page, service, teen, "Einladungstest")
    expect(page.locator("#transcript")).to_contain_text("Einladungstest: Hallo?")
    page.get_by_label("Antwort").fill("Hallo Ole, hier ist Ines.")
    page.get_by_role("button", name="Senden").click()
    teen.wait_for_message("Hallo Ole, hier ist Ines.")

    page.get_by_text("Übergeben", exact=True).click()
    page.get_by_label("An wen?").select_option(label="Entwicklung")
    page.get_by_label("Übergabenotiz (nur für das Team sichtbar)").fill("Fragt nach Besuchen")
    page.get_by_role("button", name="Jetzt übergeben").click()
    expect(page.locator("#conversation")).to_be_hidden()

    colleague = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    console_login(colleague, service, service.login, service.password)
    open_conversation_with(colleague, service, teen, "Einladungstest", button="Öffnen")
    transcript = colleague.locator("#transcript")
    expect(transcript).to_contain_text("Fragt nach Besuchen")
    expect(transcript.locator(".msg.handover")).to_contain_text("Übergabenotiz")
    colleague.get_by_text("Abschließen", exact=True).click()
    colleague.get_by_label("Informiert").check()
    colleague.get_by_role("button", name="Gespräch abschließen").click()
    teen.wait_for_message("Unser Team hat dieses Gespräch beendet")
    assert "Fragt nach Besuchen" not in str(teen.messages()), "the note stays in the team"
    assert secret not in service.logs() and "ein-sehr-langes-passwort" not in service.logs()
    colleague.context.close()


def test_a_team_lead_keeps_hours_and_canned_responses_on_the_team_page(
    service: RunningService, page: Page
) -> None:
    printed = service.lotse("account", "create", "leitung", "--role", "team_lead")
    password = re.search(r"One-time password: (\S+)", printed).group(1)
    console_login(page, service, "leitung", password)
    page.get_by_role("link", name="Team").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Team: Zeiten, Mitglieder und Textbausteine"
    )
    page.get_by_label("Montag").fill("09:00-13:00, 14:00-18:00")
    page.get_by_label("Abwesenheitsnotiz (de)").fill("Wir sind ab 9 Uhr wieder da.")
    page.get_by_role("button", name="Speichern").first.click()
    expect(page.get_by_role("status")).to_be_visible()
    expect(page.get_by_label("Montag")).to_have_value("09:00-13:00, 14:00-18:00")
    page.get_by_label("Titel").last.fill("Begrüßung")
    page.get_by_label("Text", exact=True).last.fill("Hallo, ich bin {counsellor} vom Lotse-Team.")
    page.get_by_role("button", name="Hinzufügen").click()
    expect(page.get_by_label("Titel").first).to_have_value("Begrüßung")
    page.screenshot(path=str(SCREENSHOTS / "console-team.png"), full_page=True)
    # The service is shared by the whole e2e run: leave the team without hours again.
    page.get_by_label("Montag").fill("")
    page.get_by_label("Abwesenheitsnotiz (de)").fill("")
    page.get_by_role("button", name="Speichern").first.click()
    expect(page.get_by_label("Montag")).to_have_value("")
