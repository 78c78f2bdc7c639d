"""Directory curation as an editor does it: the development editor in a real Chromium against
`./dev serve` finds an offer, edits it, marks it as checked, and reads the change history."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import SCREENSHOTS, RunningService, console_login

pytestmark = pytest.mark.e2e

NEW_DESCRIPTION = "Website mit Tipps für Kinder von Inhaftierten; Beratung anonym online."


def log_in_as_editor(page: Page, service: RunningService) -> None:
    console_login(page, service, service.editor_login, service.editor_password)
    page.get_by_role("link", name="Verzeichnis").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Angebote im Verzeichnis")


def focused(page: Page) -> str:
    """The focused element as "tag:name-or-text", and whether its focus ring is visible."""
    return str(
        page.evaluate(
            """() => {
                const el = document.activeElement;
                const style = getComputedStyle(el);
                const ring = style.outlineStyle !== 'none' && style.outlineWidth !== '0px';
                const id = el.name ? `${el.name}=${el.value}` : el.textContent.trim();
                return `${el.tagName.toLowerCase()}:${id}:${ring ? 'ring' : 'no-ring'}`;
            }"""
        )
    )


def test_editor_finds_edits_and_checks_an_offer(service: RunningService, page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in_as_editor(page, service)

    page.get_by_label("Suche", exact=True).fill("Treffpunkt")
    page.get_by_role("button", name="Suchen").click()
    results = page.locator("table.entries")
    expect(results).to_contain_text("Treffpunkt e.V. Nürnberg")
    expect(results).to_contain_text("Veröffentlicht")
    results.get_by_role("link", name="JUKI-online").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("JUKI-online")
    page.get_by_label("Beschreibung").fill(NEW_DESCRIPTION)
    page.get_by_role("button", name="Heute geprüft").click()

    expect(page.get_by_role("status")).to_have_text("Gespeichert und als heute geprüft vermerkt.")
    today = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%d.%m.%Y")
    expect(page.locator(".record-meta")).to_contain_text(f"Zuletzt geprüft: {today}")
    latest = page.locator(".history .change").first
    expect(latest).to_contain_text("Redaktion (Entwicklung)")
    expect(latest).to_contain_text("Beschreibung")
    # The same change may also carry the new check date, so pick the description's entry.
    expect(latest.locator(".new").filter(has_text=NEW_DESCRIPTION)).to_have_count(1)
    expect(page.get_by_label("Beschreibung")).to_have_value(NEW_DESCRIPTION)
    page.screenshot(path=str(SCREENSHOTS / "curation-edit.png"), full_page=True)

    # Saving the same form again changes nothing and says so.
    page.get_by_role("button", name="Speichern").click()
    expect(page.get_by_role("status")).to_contain_text("Nichts geändert")


def test_the_edit_form_works_from_the_keyboard(service: RunningService, page: Page) -> None:
    log_in_as_editor(page, service)
    page.get_by_role("link", name="JUKI-online").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("JUKI-online")

    page.keyboard.press("Tab")
    assert focused(page).startswith("a:Zum Inhalt springen"), "a skip link comes first"
    page.keyboard.press("Enter")
    seen = []
    for _ in range(120):
        page.keyboard.press("Tab")
        seen.append(focused(page))
        if seen[-1].startswith("button:action=save"):
            break
    assert seen[-1].startswith("button:action=save"), seen
    names = [entry.split(":")[1].split("=")[0] for entry in seen]
    order = ["name", "description", "target_groups", "needs", "delivery", "languages", "coverage"]
    assert [n for n in dict.fromkeys(names) if n in order] == order, names
    assert all(entry.endswith(":ring") for entry in seen), "every stop shows a focus ring"

    # Space ticks a checkbox, Enter on a button submits: no mouse needed.
    page.get_by_role("checkbox", name="Fachkräfte").focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("checkbox", name="Fachkräfte")).to_be_checked()
    page.get_by_role("checkbox", name="Fachkräfte").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Speichern").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Nichts geändert")


def test_the_review_list_is_reached_from_the_navigation(
    service: RunningService, page: Page
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in_as_editor(page, service)
    page.get_by_role("navigation", name="Verzeichnis").get_by_role(
        "link", name="Prüfliste"
    ).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Prüfliste")
    expect(page.get_by_role("link", name="Prüfliste")).to_have_attribute("aria-current", "page")
    # The seed was checked days ago, so nothing is due: the page says so instead of a table.
    expect(page.locator(".count")).to_contain_text("Überfällige Einträge: 0")
    expect(page.get_by_text("Alles aktuell")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "curation-review.png"), full_page=True)
