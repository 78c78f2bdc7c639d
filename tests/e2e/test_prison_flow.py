"""A caregiver in Telegram (through the Bot API emulator) asks about the parent's prison: the
card with its visit facts, source and date arrives, against `./dev serve` with the seed
directory."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BOT_TOKEN, RunningService
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e


def test_caregiver_gets_the_visit_facts_of_the_prison(
    service: RunningService, e2e_emulator: BotApiEmulator
) -> None:
    caregiver = e2e_emulator.user(BOT_TOKEN, first_name="Sven", username="sven_private")
    caregiver.send_command("/start")
    caregiver.wait_for_message("anonym")
    caregiver.click("Ich kümmere mich um ein Kind")
    caregiver.wait_for_message("Postleitzahl")
    caregiver.send_text("33647")
    caregiver.wait_for_message("Worum geht es dir gerade?")
    caregiver.click("Besuche und Kontakt")
    caregiver.wait_for_message("Wie möchtest du weitermachen?")
    caregiver.click("Infos zu einem Gefängnis")
    caregiver.wait_for_message("In welchem Gefängnis ist dein Elternteil?")
    caregiver.send_text("Bielefeld")

    card = caregiver.wait_for_message("Justizvollzugsanstalt Bielefeld-Brackwede\n")
    assert "Besuchszeiten: " in card["text"]
    assert "Stand: 21.11.2026 · Quelle: https://www.jva-bielefeld-brackwede.nrw.de" in card["text"]
    caregiver.wait_for_message("Wie möchtest du weitermachen?")
    assert "Infos zu einem Gefängnis" in caregiver.last_keyboard()

    caregiver.click("Infos zu einem Gefängnis")
    caregiver.wait_for_message("In welchem Gefängnis ist dein Elternteil?")
    caregiver.send_text("knast in willich")
    caregiver.wait_for_message("Welches meinst du?")
    caregiver.click("JVA Willich II")
    willich = caregiver.wait_for_message("Justizvollzugsanstalt Willich II\n")
    assert "Frag am besten direkt bei der JVA nach den Besuchszeiten" in willich["text"]
    assert "Quelle:" in willich["text"]

    # The place of the parent's prison could identify a family: it never reaches the logs.
    logs = service.logs()
    for private in ("Bielefeld", "willich", "Willich", "sven_private", str(caregiver.user_id)):
        assert private not in logs
