"""The pages as assistive technology meets them: axe-core (run in the real Chromium) finds no
serious or critical problem on the console, the team page, the login, the second factor and
the web chat."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.e2e.conftest import ROOT, RunningService, console_login

pytestmark = pytest.mark.e2e
AXE = ROOT / "tests" / "e2e" / "emulator" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def audited(browser: Browser) -> Iterator[Page]:
    # axe is injected as a script of its own; the pages' CSP (rightly) refuses that.
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


def serious_problems(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def test_login_and_web_chat_have_no_serious_problems(service: RunningService, audited: Page):
    audited.goto(service.url + "/console/login")
    assert serious_problems(audited) == []
    audited.goto(service.url + "/chat")
    audited.get_by_role("button", name="Los geht's").click()
    audited.get_by_role("button", name="Ich bin ein Kind (bis 12)").wait_for()
    assert serious_problems(audited) == []


def test_console_and_team_page_have_no_serious_problems(service: RunningService, audited: Page):
    printed = service.lotse("account", "create", "barrierefrei", "--role", "team_lead")
    password = re.search(r"One-time password: (\S+)", printed).group(1)
    audited.goto(service.url + "/console/login")
    audited.get_by_label("Benutzername").fill("barrierefrei")
    audited.get_by_label("Passwort").fill(password)
    audited.get_by_role("button", name="Anmelden").click()
    audited.get_by_role("heading", name="Zweiter Faktor").wait_for()
    assert serious_problems(audited) == [], "second factor page"
    console_login(audited, service, "barrierefrei", password)
    audited.locator("#live.on").wait_for()
    assert serious_problems(audited) == [], "console"
    audited.goto(service.url + "/console/team")
    assert serious_problems(audited) == [], "team page"
