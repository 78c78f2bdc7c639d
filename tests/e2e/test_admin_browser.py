"""An admin in Chromium: a team made with `lotse team create`, chosen on the team page from
the keyboard, its hours saved there; another team made on the page; axe finds no serious
problem."""

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

        # A new team from the page: short name, name, a state ticked, languages.
        new = page.locator("form", has=page.get_by_role("heading", name="Neues Team"))
        new.get_by_label("Kurzname").fill("e2e-nord")
        new.get_by_label("Name", exact=True).fill("Team Nord")
        new.get_by_label("Bremen").check()
        new.get_by_label("Sprachen").fill("de, en")
        new.get_by_role("button", name="Team anlegen").click()
        page.wait_for_url("**/console/team?done=created&team=e2e-nord")
        expect(page.get_by_role("status")).to_contain_text("Das Team ist angelegt")
        this = page.locator("form", has=page.get_by_role("heading", name="Dieses Team"))
        expect(this.get_by_label("Bremen")).to_be_checked()
        expect(this.get_by_label("Sprachen")).to_have_value("de, en")
        this.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "console-team-admin-define.png"), full_page=True)
        assert serious_problems(page) == [], "team definition forms"
    finally:
        context.close()
    listed = service.lotse("team", "list")
    assert "e2e-bayern\tTeam Bayern\tBY\tde\tno keys yet" in listed
    assert "e2e-nord\tTeam Nord\tHB\tde,en\tno keys yet" in listed
