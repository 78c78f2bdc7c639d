"""SECURITY.md property 1: no plaintext at rest or in logs. A user message through the Bot API
emulator and a note typed in the real console, each with its own canary string, are readable in
the console and nowhere else: not in a full dump of the service's database (pg_dump on
PostgreSQL, the raw file and its WAL on SQLite), not in Redis, not in the service's logs, in
plain, hex, base64 or base64url."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import (
    BOT_TOKEN,
    RunningService,
    console_login,
    open_conversation_with,
    reach_the_team,
)
from tests.e2e.telegram_harness import BotApiEmulator

pytestmark = pytest.mark.e2e


def forms(canary: str) -> list[bytes]:
    raw = canary.encode()
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw).rstrip(b"="),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
        canary.encode("utf-16-le"),
    ]


def database_dump(service: RunningService) -> bytes:
    url = service.env.get("DATABASE_URL", "")
    if url.startswith("postgresql"):
        plain = re.sub(r"^postgresql\+asyncpg", "postgresql", url)
        done = subprocess.run(["pg_dump", "--no-owner", plain], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        assert b"COPY public.messages" in done.stdout, "the dump holds the messages table"
        return done.stdout
    # SQLite: the database file and whatever the write-ahead log still holds, byte for byte,
    # free pages included.
    files = sorted(Path(service.env["LOTSE_DATA_DIR"]).glob("*.db*"))
    assert files, "the service's SQLite file"
    return b"".join(path.read_bytes() for path in files)


def redis_dump(service: RunningService) -> bytes:
    url = service.env.get("REDIS_URL")
    if not url:
        return b""
    from redis import Redis

    client = Redis.from_url(url)
    out = []
    try:
        for key in client.scan_iter(count=500):
            kind = client.type(key)
            if kind == b"string":
                out.append(client.get(key) or b"")
            elif kind == b"hash":
                out.extend(b"%s=%s" % item for item in client.hgetall(key).items())
            elif kind == b"list":
                out.extend(client.lrange(key, 0, -1))
            elif kind == b"set":
                out.extend(client.smembers(key))
            elif kind == b"zset":
                out.extend(client.zrange(key, 0, -1))
            out.append(key)
    finally:
        client.close()
    return b"\n".join(out)


def test_a_message_and_a_note_leave_no_plain_trace(
    service: RunningService, e2e_emulator: BotApiEmulator, page: Page
) -> None:
    message_canary = f"Kanarie-Nachricht-{uuid.uuid4().hex[:12]}"
    note_canary = f"Kanarie-Notiz-{uuid.uuid4().hex[:12]}"
    # A Telegram id no counter or timestamp would produce by chance.
    teen = e2e_emulator.user(
        BOT_TOKEN, first_name="Canary", username="canary_user", user_id=7_412_963_185
    )
    reach_the_team(teen, f"Mein Geheimnis: {message_canary}")

    console_login(page, service, service.login, service.password)
    open_conversation_with(page, service, teen, message_canary)
    panel = page.locator("#notes-panel")
    panel.locator("summary").click()
    page.get_by_label("Neue Notiz").fill(f"Vater in Haft, {note_canary}")
    page.get_by_role("button", name="Notiz speichern").click()
    expect(page.locator("#notes-list")).to_contain_text(note_canary)
    # Read back in a fresh page (keys locked again, unlocked anew): it came from the server,
    # as an envelope, and was opened here.
    console_login(page, service, service.login, service.password)
    open_conversation_with(page, service, teen, message_canary, button="Öffnen")
    page.locator("#notes-panel summary").click()
    expect(page.locator("#notes-list")).to_contain_text(note_canary)

    places = {
        "database": database_dump(service),
        "redis": redis_dump(service),
        "logs": service.logs().encode(),
    }
    for canary in (message_canary, note_canary):
        for form in forms(canary):
            for place, content in places.items():
                assert form not in content, f"{canary} found in the {place} as {form[:12]!r}"
    for identity in (b"canary_user", b"7412963185"):
        assert identity not in places["database"] and identity not in places["logs"]
