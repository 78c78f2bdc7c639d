"""The account page in Chromium: reached from the console's header, a counsellor changes
their password from the keyboard and logs in with the new one; axe finds no serious problem.
Then the operator's `lotse account reset-login` for a lost phone: the next login sets up the
second factor anew."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import SCREENSHOTS, RunningService, console_login
from tests.e2e.test_accessibility import serious_problems

pytestmark = pytest.mark.e2e
NEW = "mein-neues-konsolen-passwort"


def log_in_with_password(page: Page, service: RunningService, login: str, password: str) -> None:
    page.goto(service.url + "/console/login")
    page.get_by_label("Benutzername").fill(login)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    expect(page.get_by_role("heading", name="Zweiter Faktor")).to_be_visible()


def test_a_counsellor_changes_the_password_and_an_operator_resets_the_login(
    service: RunningService, browser: Browser
) -> None:
    printed = service.lotse("account", "create", "kontowechsel")
    password = re.search(r"One-time password: (\S+)", printed).group(1)
    # bypass_csp only so that axe can be injected; the page itself runs no inline script.
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        console_login(page, service, "kontowechsel", password)
        page.get_by_role("link", name="Konto").click()
        expect(page.get_by_role("heading", name="Dein Konto")).to_be_visible()
        assert serious_problems(page) == [], "account page"

        # From the keyboard: each field by its label, Enter submits.
        page.get_by_label("Jetziges Passwort").fill("nicht-das-richtige")
        page.get_by_label("Neues Passwort", exact=True).fill(NEW)
        page.get_by_label("Neues Passwort noch einmal").fill(NEW)
        page.keyboard.press("Enter")
        expect(page.get_by_role("alert")).to_have_text("Das jetzige Passwort stimmt nicht.")
        page.get_by_label("Jetziges Passwort").fill(password)
        page.get_by_label("Neues Passwort", exact=True).fill(NEW)
        page.get_by_label("Neues Passwort noch einmal").fill(NEW)
        page.get_by_label("Neues Passwort noch einmal").press("Enter")
        expect(page.get_by_role("status")).to_contain_text("Dein Passwort ist geändert")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-account.png"), full_page=True)

        page.context.clear_cookies()
        log_in_with_password(page, service, "kontowechsel", NEW)
        expect(page.locator("#totp-secret")).to_have_count(0)  # set up already: a code only

        reset = service.lotse("account", "reset-login", "kontowechsel")
        fresh = re.search(r"One-time password: (\S+)", reset).group(1)
        page.context.clear_cookies()
        page.goto(service.url + "/console/login")
        page.get_by_label("Benutzername").fill("kontowechsel")
        page.get_by_label("Passwort").fill(NEW)
        page.get_by_role("button", name="Anmelden").click()
        expect(page.get_by_role("alert")).to_be_visible()  # the changed one is gone too
        log_in_with_password(page, service, "kontowechsel", fresh)
        expect(page.locator("#totp-secret")).to_be_visible()  # a new phone: set up anew
    finally:
        context.close()
