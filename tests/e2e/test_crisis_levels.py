"""The crisis safety net as children use it: a crisis of each new kind, in each language, at each
step, gets the card in time, in Telegram (through the Bot API emulator) and in the web chat; the
card is in the language the child wrote in; an imminent danger is first in the console's queue,
with its level shown. Against `./dev serve`."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import update

from core.i18n import load_catalogue
from core.models import Conversation
from tests.e2e.conftest import (
    BOT_TOKEN,
    SCREENSHOTS,
    RunningService,
    console_login,
    conversation_of,
    run_on_service_db,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e
CATALOGUE = load_catalogue()
# The promise: the card within a second. Measured from sending to the card's arrival
# through the emulator, so it includes the emulator's own polling.
CARD_WITHIN = 1.0


def intro(lang: str) -> str:
    return CATALOGUE.text(lang, "crisis.intro")


def settle(service: RunningService, *users) -> None:
    """Takes this test's crises out of the shared queue (closed in the service's database), so
    that later tests find their own conversations where they expect them."""
    ids = [uuid.UUID(conversation_of(service, user)) for user in users]

    async def close(sessions) -> None:
        async with sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id.in_(ids))
                .values(status="closed", closed_at=datetime.now(UTC))
            )

    run_on_service_db(service, close)


def to_step(teen, step: str) -> None:
    """Walk the German flow to `step`: start, role, postcode or need."""
    teen.send_command("/start")
    teen.wait_for_message("Wer bist du?")
    if step == "role":
        return
    teen.click("Ich bin jugendlich (13–17)")
    teen.wait_for_message("Postleitzahl")
    if step == "postcode":
        return
    teen.click("Lieber nicht sagen")
    teen.wait_for_message("Worum geht es dir gerade?")


CASES = [
    # (step, message, language of the card, kind)
    ("role", "ich hab grad 20 tabletten geschluckt", "de", "acute_danger"),
    ("postcode", "er hat gesagt er bringt mich um wenn ich was sage", "de", "threat"),
    ("need", "ich kotze nach jedem essen damit ich dünn bleibe", "de", "eating_disorder"),
    ("postcode", "he said he will kill me if i tell anyone", "de", "threat"),
    ("need", "yemekten sonra hep kusuyorum zayıf olmak için", "tr", "eating_disorder"),
    ("role", "я наглоталась таблеток и мне плохо", "ru", "acute_danger"),
    ("postcode", "мене шантажують моїми фото", "uk", "threat"),
    ("need", "بلعت كل الحبوب اللي بالبيت", "ar", "acute_danger"),
]


@pytest.mark.parametrize(("step", "text", "lang", "kind"), CASES)
def test_telegram_a_crisis_at_any_step_gets_the_card_in_its_language_in_time(
    service: RunningService,
    e2e_emulator: BotApiEmulator,
    step: str,
    text: str,
    lang: str,
    kind: str,
) -> None:
    teen = e2e_emulator.user(BOT_TOKEN)
    to_step(teen, step)
    before = len(teen.messages())
    sent = time.monotonic()
    teen.send_text(text)
    card = teen.wait_for_message(intro(lang))
    took = time.monotonic() - sent
    assert teen.messages()[before]["message_id"] == card["message_id"], "the card comes first"
    assert "112" in card["text"]
    assert took <= CARD_WITHIN + 1.0, f"the card took {took:.2f} s"  # emulator polling slack
    assert f"category={kind}" in service.logs()
    settle(service, teen)


def test_a_photo_caption_in_crisis_gets_the_card(
    service: RunningService, e2e_emulator: BotApiEmulator
) -> None:
    teen = e2e_emulator.user(BOT_TOKEN)
    to_step(teen, "role")
    teen.send_photo(caption="ich will mich umbringen")
    teen.wait_for_message(intro("de"))
    settle(service, teen)


def test_web_chat_crisis_in_another_language_and_the_kind_fallback(
    service: RunningService, page: Page
) -> None:
    page.goto(service.url + "/chat")
    page.get_by_role("button", name="Los geht's").click()
    page.get_by_role("button", name="Ich bin ein Kind (bis 12)").click()
    # Words at the postcode step: a kind answer with the way to a person, not "use the buttons".
    page.get_by_label("Deine Nachricht").fill("weiß nicht")
    page.keyboard.press("Enter")
    log = page.locator("#log")
    expect(log).to_contain_text("Das habe ich nicht ganz verstanden – das ist okay.")
    expect(page.get_by_role("button", name="Mit jemandem schreiben").last).to_be_visible()
    page.get_by_label("Deine Nachricht").fill("мама лежит на полу и не дышит")
    page.keyboard.press("Enter")
    expect(log).to_contain_text(intro("ru"), timeout=5_000)
    # A child's card: phone lines, plain words, the emergency number.
    expect(log).to_contain_text("звони 112")


def test_imminent_danger_is_first_in_the_queue_with_its_level(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    console_login(page, service, service.login, service.password)
    expect(page.locator("#live.on")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    worried = e2e_emulator.user(BOT_TOKEN)
    to_step(worried, "role")
    worried.send_text("bin von zuhause abgehauen")
    worried.wait_for_message(intro("de"))
    danger = e2e_emulator.user(BOT_TOKEN)
    to_step(danger, "role")
    danger.send_text("mama liegt am boden und bewegt sich nicht")
    danger.wait_for_message(intro("de"))

    banner = page.locator("#crisis-alert.imminent")
    expect(banner).to_contain_text("Akute Gefahr", timeout=10_000)
    first = page.locator("#queue-list li").first
    expect(first).to_have_class(re.compile(r"\bimminent\b"))
    mine = page.locator(f'.queue-item[data-id="{conversation_of(service, danger)}"]')
    expect(mine).to_contain_text("Akute Gefahr · Notfall")
    expect(mine).to_have_attribute("data-level", "imminent")
    other = page.locator(f'.queue-item[data-id="{conversation_of(service, worried)}"]')
    expect(other).to_contain_text("Sorge · Weggelaufen oder draußen")
    page.screenshot(path=str(SCREENSHOTS / "console-crisis-levels.png"))
    mine.get_by_role("button", name="Übernehmen").click()
    expect(page.locator("#conversation-crisis")).to_have_text("Akute Gefahr · Notfall")
    settle(service, danger, worried)
