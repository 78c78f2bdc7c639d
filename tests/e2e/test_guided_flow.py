"""Every step of the guided conversation in German and in English, as a Telegram user through
the Bot API emulator, against `./dev serve`: language, role, postcode or location, topic, info
card and offers, back, help, hotlines, a person, /stopp, /loeschen; and bad input of every kind
answered kindly without stopping anything."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import BOT_TOKEN, RunningService
from tests.e2e.telegram_harness import BotApiEmulator, TelegramUser

pytestmark = pytest.mark.e2e

GERMAN: dict[str, Any] = {
    "language": None,
    "hello": "anonym",
    "role": "Ich bin jugendlich (13–17)",
    "postcode_question": "Postleitzahl",
    "need_question": "Worum geht es dir gerade?",
    "need": "Schule und Freunde",
    "card": "Du entscheidest",
    "back": "Zurück",
    "handover": "Mit jemandem schreiben",
    # Whether a counsellor of another test is still counted as online is not this test's concern.
    "waiting": ("Vor dir warten gerade", "niemand aus unserem Team online"),
    "what_next": "Wie möchtest du weitermachen?",
    "stopped": "Gespräch ist beendet",
    "erase_yes": "Ja, alles löschen",
    "erased": "ist gelöscht",
    "help": "/loeschen – alles über dich löschen",
    "media": "kann ich leider nicht annehmen",
    "location": "Deinen genauen Standort speichere ich nicht",
}
ENGLISH: dict[str, Any] = {
    "language": "English",
    "hello": "anonym",
    "role": "I am a teenager (13–17)",
    "postcode_question": "postcode",
    "need_question": "What is on your mind right now?",
    "need": "School and friends",
    "card": "You decide",
    "back": "Back",
    "handover": "Write with a person",
    "waiting": ("People waiting before you", "Nobody from our team is online"),
    "what_next": "How would you like to go on?",
    "stopped": "conversation has ended",
    "erase_yes": "Yes, delete everything",
    "erased": "is deleted",
    "help": "/loeschen – delete everything about you",
    "media": "I can't accept",
    "location": "I don't store your exact location",
}


def start(user: TelegramUser, words: dict[str, Any]) -> None:
    user.send_command("/start")
    user.wait_for_message(words["hello"])
    if words["language"]:
        user.click(words["language"])
        user.wait_for_message("English now")


@pytest.mark.parametrize("words", [GERMAN, ENGLISH], ids=["de", "en"])
def test_a_teen_walks_every_step_and_reaches_a_person(
    service: RunningService, e2e_emulator: BotApiEmulator, words: dict[str, Any]
) -> None:
    teen = e2e_emulator.user(BOT_TOKEN, first_name="Lena", username="lena_private")
    start(teen, words)
    teen.click(words["role"])
    teen.wait_for_message(words["postcode_question"])
    teen.send_text("904")
    teen.wait_for_message(words["need_question"])
    teen.click(words["need"])
    card = teen.wait_for_message(words["card"])
    assert len(card["text"]) < 1200
    teen.wait_for_message(words["what_next"])

    teen.click(words["back"])
    teen.wait_for_message(words["need_question"])
    teen.click(words["back"])
    teen.wait_for_message(words["postcode_question"])
    # A shared location instead of the postcode, used once.
    teen.send_raw(location={"latitude": 49.45213, "longitude": 11.07671})
    teen.wait_for_message(words["location"])
    teen.wait_for_message(words["need_question"])

    teen.send_command("/hilfe")
    teen.wait_for_message(words["help"])
    teen.send_command("/notfall")
    teen.wait_for_message("116 111")

    teen.click(words["handover"])
    teen.wait_for_any(*words["waiting"])
    teen.send_command("/stopp")
    teen.wait_for_message(words["stopped"])

    teen.send_command("/loeschen")
    teen.wait_for_message("/")  # the question; its buttons are what matters
    teen.click(words["erase_yes"])
    teen.wait_for_message(words["erased"])

    logs = service.logs()
    for private in ("lena_private", "Lena", str(teen.user_id), "49.45", "11.07"):
        assert private not in logs


def test_the_command_menu_is_registered_in_german_and_english(
    service: RunningService, e2e_emulator: BotApiEmulator
) -> None:
    calls = [c for c in e2e_emulator.calls_to("setMyCommands", BOT_TOKEN)]
    menus = {str(c.params.get("language_code") or ""): c.params.get("commands") for c in calls}
    assert set(menus) >= {"", "en"}, menus
    for lang, expected in (("", "Alles über mich löschen"), ("en", "Delete everything about me")):
        commands = menus[lang]
        commands = json.loads(commands) if isinstance(commands, str) else commands
        names = [c["command"] for c in commands]
        assert names == ["start", "neu", "hilfe", "sprache", "notfall", "stopp", "loeschen"]
        assert expected in [c["description"] for c in commands]


def test_media_and_contacts_get_a_kind_reply_and_go_nowhere(
    service: RunningService, e2e_emulator: BotApiEmulator
) -> None:
    user = e2e_emulator.user(BOT_TOKEN, first_name="Jo")
    start(user, GERMAN)
    user.send_photo(caption="mein Papa")
    user.wait_for_message(GERMAN["media"])
    user.send_sticker()
    user.wait_for_message(GERMAN["media"])
    user.send_raw(voice={"file_id": "voice-1", "file_unique_id": "v1", "duration": 3})
    user.wait_for_message(GERMAN["media"])
    user.send_raw(document={"file_id": "doc-1", "file_unique_id": "d1", "file_name": "brief.pdf"})
    user.wait_for_message(GERMAN["media"])
    user.send_raw(contact={"phone_number": "+4915112345678", "first_name": "Tante", "user_id": 99})
    user.wait_for_message(GERMAN["media"])
    assert "+4915112345678" not in service.logs() and "brief.pdf" not in service.logs()


@pytest.mark.parametrize(
    "text",
    [
        "x" * 4096,
        "😢😢😢",
        "\u200b\u200c\u200d\u2060",
        "<b>hi</b><img src=x onerror=alert(1)>",
    ],
    ids=["4096-chars", "emoji", "zero-width", "html"],
)
def test_bad_input_at_the_postcode_step_gets_a_clear_answer(
    service: RunningService, e2e_emulator: BotApiEmulator, text: str
) -> None:
    user = e2e_emulator.user(BOT_TOKEN)
    start(user, GERMAN)
    user.click(GERMAN["role"])
    user.wait_for_message(GERMAN["postcode_question"])
    user.send_text(text)
    answer = user.wait_for_message("Postleitzahl")
    assert "<img" not in answer["text"] and answer.get("parse_mode") in (None, "")
    # The conversation goes on as if nothing happened.
    user.send_text("90402")
    user.wait_for_message(GERMAN["need_question"])


def test_arabic_at_the_postcode_step_goes_to_a_person_with_a_word_in_arabic(
    service: RunningService, e2e_emulator: BotApiEmulator
) -> None:
    """Right-to-left text in a language the flow does not speak: a person reads it, and the
    answer says so in Arabic first, then in German."""
    user = e2e_emulator.user(BOT_TOKEN)
    start(user, GERMAN)
    user.click(GERMAN["role"])
    user.wait_for_message(GERMAN["postcode_question"])
    user.send_text("أبي في السجن ولا أعرف مع من أتكلم")
    answer = user.wait_for_message("سأرسل رسالتك إلى فريقنا.")
    assert "Ich gebe deine Nachricht an unser Team weiter." in answer["text"]
    user.wait_for_message("Okay! Jemand aus unserem Team schreibt dir hier")
