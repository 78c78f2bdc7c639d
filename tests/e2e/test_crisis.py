"""Crisis safety as a teen and a counsellor live it: a message in Telegram (through the Bot API
emulator) right after /start gets the crisis card at once, and the console in Chromium shows the
alarm and the conversation on top, against `./dev serve`. The logs keep nothing of the words."""

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
CRISIS = "ich will nicht mehr leben"


def log_in(page: Page, service: RunningService) -> None:
    console_login(page, service, service.login, service.password)
    expect(page.locator("#live.on")).to_be_visible()


def test_crisis_after_start_gets_the_card_and_alerts_the_console(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    log_in(page, service)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    banner = page.get_by_role("alert").filter(has_text="Krise")
    expect(banner).to_have_count(0)
    teen = e2e_emulator.user(BOT_TOKEN, first_name="Lena", username="lena_private_handle")

    teen.send_command("/start")
    teen.wait_for_message("Wer bist du?")
    before = len(teen.messages())
    teen.send_text(CRISIS)
    card = teen.wait_for_message("116 111")
    assert teen.messages()[before]["message_id"] == card["message_id"], "the card comes first"
    assert "0800 111 0 111" in card["text"] and "Notruf 112" in card["text"]
    teen.wait_for_message("Bescheid")

    expect(banner).to_be_visible(timeout=10_000)
    # Crises come before every other waiting conversation; earlier tests may leave crises
    # of their own waiting, so this teen's is found by its id.
    first = page.locator("#queue-list li").first
    expect(first).to_have_class(re.compile(r"\bcrisis\b"))
    mine = page.locator(f'.queue-item[data-id="{conversation_of(service, teen)}"]')
    expect(mine).to_have_class(re.compile(r"\bcrisis\b"))
    expect(mine).to_contain_text("Krise")
    page.screenshot(path=str(SCREENSHOTS / "console-crisis.png"))

    # The teen goes on writing; the counsellor takes the conversation and reads it.
    teen.send_text("bist du noch da?")
    mine.get_by_role("button", name="Übernehmen").click()
    expect(page.locator("#transcript")).to_contain_text("bist du noch da?", timeout=10_000)
    expect(banner).to_have_count(0)

    teen.send_command("/notfall")
    teen.wait_for_message("Hier findest du Hilfe:")

    logs = service.logs()
    assert "crisis detected" in logs and "category=suicide" in logs
    for private in (CRISIS, "nicht mehr leben", "bist du noch da", "lena_private_handle"):
        assert private not in logs
    assert str(teen.user_id) not in logs
