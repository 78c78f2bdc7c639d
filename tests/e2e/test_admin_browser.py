"""An admin in Chromium: a team made with `lotse team create`, chosen on the team page from
the keyboard, its hours saved there; axe finds no serious problem."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import SCREENSHOTS, RunningService, console_login
from tests.e2e.test_accessibility import serious_problems

pytestmark = pytest.mark.e2e


def test_an_admin_keeps_another_teams_hours(service: RunningService, browser: Browser) -> None:
    made = service.lotse("team", "create", "e2e-bayern", "--name", "Team Bayern", "--states", "BY")
    assert "Team 'e2e-bayern' created for BY" in made
    printed = service.lotse("account", "create", "e2e-admin", "--role", "admin")
    password = re.search(r"One-time password: (\S+)", printed).group(1)
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        console_login(page, service, "e2e-admin", password)
        page.get_by_role("link", name="Team").click()
        choice = page.get_by_label("Team (als Admin)")
        expect(choice).to_have_value("bundesweit")
        choice.focus()
        choice.select_option("e2e-bayern")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # "Anzeigen"
        page.wait_for_url("**/console/team?team=e2e-bayern")
        expect(page.get_by_label("Team (als Admin)")).to_have_value("e2e-bayern")
        assert serious_problems(page) == [], "team page as admin"

        page.get_by_label("Montag").fill("09:00-12:00")
        page.get_by_role("button", name="Speichern").first.click()
        page.wait_for_url("**/console/team?done=settings&team=e2e-bayern")
        expect(page.get_by_label("Montag")).to_have_value("09:00-12:00")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-team-admin.png"))
        page.goto(service.url + "/console/team")
        expect(page.get_by_label("Montag")).not_to_have_value("09:00-12:00")
    finally:
        context.close()
    assert "e2e-bayern\tTeam Bayern\tBY\tde\tno keys yet" in service.lotse("team", "list")
