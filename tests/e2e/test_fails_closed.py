"""SECURITY.md property 2: fails closed. In the real console (logged in, keys unlocked, a
conversation open), WebCrypto's encrypt is made to fail; a note typed and saved then goes
nowhere: no POST to the notes endpoint, no request carrying its text, nothing new in the
service's database. The counsellor sees the error and keeps the text.

Both places a note is encrypted are covered: the case key sealed under the team key (the first
note of a conversation) and the note under an existing case key (every later one), with encrypt
rejecting and throwing synchronously. A save with encryption intact, in between, proves the
request recorder and the database reader would have seen a note."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, Request, expect
from sqlalchemy import func, select

from core.models import CaseKey, CaseNote
from tests.e2e.conftest import (
    BOT_TOKEN,
    RunningService,
    console_login,
    open_conversation_with,
    reach_the_team,
    unlock_keys,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e
FAILED = "Die Notiz wurde nicht gespeichert. Dein Text ist noch da."

# envelope.js captured `crypto.subtle` at load and LotseEnvelope is frozen, but its calls look
# the method up on the SubtleCrypto object each time: replacing it there reaches every caller.
# The probe call proves the sabotage is in place before the test relies on it.
BREAK_ENCRYPT = """
async (mode) => {
  const refuse = mode === "throws"
    ? function () { throw new DOMException("encrypt broken by the test", "OperationError"); }
    : function () {
        return Promise.reject(new DOMException("encrypt broken by the test", "OperationError"));
      };
  Object.defineProperty(SubtleCrypto.prototype, "encrypt", { value: refuse, configurable: true });
  try {
    const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false,
      ["encrypt"]);
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, key,
      new Uint8Array(1));
    return "encrypt still works";
  } catch (error) {
    return error.message;
  }
}
"""


def stored_notes(service: RunningService, conversation_id: uuid.UUID) -> tuple[int, int]:
    """(case notes, case keys) of the conversation in the service's database."""
    from sqlalchemy.ext.asyncio import create_async_engine

    url = service.env.get("DATABASE_URL") or (
        f"sqlite+aiosqlite:///{service.env['LOTSE_DATA_DIR']}/lotse.db"
    )

    async def count() -> tuple[int, int]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                notes = await connection.scalar(
                    select(func.count())
                    .select_from(CaseNote)
                    .where(CaseNote.conversation_id == conversation_id)
                )
                keys = await connection.scalar(
                    select(func.count())
                    .select_from(CaseKey)
                    .where(CaseKey.conversation_id == conversation_id)
                )
                return int(notes or 0), int(keys or 0)
        finally:
            await engine.dispose()

    # Playwright's sync API owns this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, count()).result()


def open_notes(page: Page) -> uuid.UUID:
    """Opens the notes panel; returns the open conversation's id, read off the notes request
    the panel makes (the page keeps it in no element)."""
    with page.expect_request(lambda r: r.method == "GET" and r.url.endswith("/notes")) as read:
        page.locator("#notes-panel summary").click()
    return uuid.UUID(read.value.url.split("/")[-2])


def save_fails_closed(
    page: Page, service: RunningService, conversation: uuid.UUID, text: str, mode: str
) -> None:
    """Breaks encrypt, types `text` and saves: nothing leaves the page, nothing is stored, the
    error shows and the text stays."""
    before = stored_notes(service, conversation)
    assert page.evaluate(BREAK_ENCRYPT, mode) == "encrypt broken by the test"
    sent: list[Request] = []

    def record(request: Request) -> None:
        sent.append(request)

    page.on("request", record)
    try:
        box = page.get_by_label("Neue Notiz")
        box.fill(text)
        page.get_by_role("button", name="Notiz speichern").click()
        alert = page.locator("#notes-panel").get_by_role("alert")
        expect(alert).to_have_text(FAILED)
        expect(box).to_have_value(text)
        # The save reads the notes (GET) before it seals; wait until the page is quiet, so a
        # POST sent late would still be caught.
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
    finally:
        page.remove_listener("request", record)
    posts = [r for r in sent if r.method == "POST" and r.url.endswith("/notes")]
    assert posts == [], [r.url for r in posts]
    for request in sent:
        assert text not in request.url and text not in (request.post_data or ""), request.url
    assert stored_notes(service, conversation) == before


def test_a_note_is_not_sent_when_encryption_fails(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    # Logged in first: with the console online the teen is handed over to it.
    console_login(page, service, service.login, service.password)
    expect(page.locator("#keys-state")).to_have_text("Schlüssel: entsperrt")
    expect(page.locator("#live.on")).to_be_visible()
    message = f"Failsafe-{uuid.uuid4().hex[:10]} ich brauche Hilfe"
    teen = e2e_emulator.user(BOT_TOKEN)
    reach_the_team(teen, message)

    try:
        open_conversation_with(page, service, teen, message)
        conversation = open_notes(page)
        assert stored_notes(service, conversation) == (0, 0)

        # The first note: its case key would be sealed under the team key first.
        save_fails_closed(
            page, service, conversation, f"Erste Notiz {uuid.uuid4().hex[:8]}", "rejects"
        )
        assert stored_notes(service, conversation) == (0, 0), "no case key either"

        # Encryption back (a reload loads the scripts anew): the same steps do save, and the
        # recorder and the database both see it.
        page.reload()
        unlock_keys(page, service.passphrases[service.login])
        page.locator(f'#queue-list li[data-id="{conversation}"] button').click()
        expect(page.locator("#transcript")).to_contain_text(message)
        assert open_notes(page) == conversation
        saved_text = f"Gespeicherte Notiz {uuid.uuid4().hex[:8]}"
        page.get_by_label("Neue Notiz").fill(saved_text)
        with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/notes")):
            page.get_by_role("button", name="Notiz speichern").click()
        expect(page.locator("#notes-list")).to_contain_text(saved_text)
        assert stored_notes(service, conversation) == (1, 1)

        # A later note: only the note itself is encrypted, under the case key that now exists.
        later = f"Zweite Notiz {uuid.uuid4().hex[:8]}"
        save_fails_closed(page, service, conversation, later, "throws")
        expect(page.locator("#notes-list")).not_to_contain_text(later)
        assert stored_notes(service, conversation) == (1, 1)
    finally:
        # The sabotage lives in this page only; a reload ends it for whatever comes next.
        page.reload()
