"""The team keys of test teams, held by the test as a lead's browser would hold them, so tests
can read what the server sealed (and prove it cannot be read without them)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import inspect, select, text

from core import keyring
from core.db import transaction
from core.models import Message
from lotse.devkeys import provision_team
from lotse.runtime import Services


class TestKeyring:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self) -> None:
        # transcript key id -> the epoch it belongs to
        self.by_kid: dict[str, keyring.EpochSecrets] = {}

    def keep(self, made: keyring.EpochSecrets) -> keyring.EpochSecrets:
        self.by_kid[made.transcript_kid] = made
        return made

    def open(self, message: Mapping[str, Any] | Any) -> str:
        """The text of a message as the API, an event or the table gives it."""
        get = message.get if isinstance(message, Mapping) else lambda k: getattr(message, k)
        envelope = get("envelope")
        assert envelope is not None, "this message was never sealed"
        made = self.by_kid[envelope["kid"]]
        return keyring.open_message(
            transcript=made.transcript,
            team=made.team,
            conversation=str(get("conversation_id")),
            message=str(get("id")),
            sender=get("sender"),
            envelope=envelope,
        )


def keyring_of(services: Services) -> TestKeyring:
    found = services.extras.setdefault("keyring", TestKeyring())
    assert isinstance(found, TestKeyring)
    return found


async def give_team_keys(services: Services, team_id: uuid.UUID) -> keyring.EpochSecrets:
    """Epoch 1 for a test team, signed by a stand-in lead."""
    async with transaction(services.sessions) as session:
        made = await provision_team(session, team_id=team_id, clock=services.clock)
    return keyring_of(services).keep(made)


async def transcript(services: Services, conversation_id: uuid.UUID | None = None) -> list[str]:
    """The stored messages' texts in order (of one conversation, or all), opened with the
    test's keys: what a member's browser would show."""
    async with services.sessions() as session:
        query = select(Message).order_by(Message.created_at, Message.seq)
        if conversation_id is not None:
            query = query.where(Message.conversation_id == conversation_id)
        rows = (await session.scalars(query)).all()
    ring = keyring_of(services)
    return [ring.open(row) for row in rows]


async def table_rows(services: Services) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table, as text: what a database dump would show."""
    async with services.sessions() as session:
        names = await session.run_sync(lambda sync: inspect(sync.connection()).get_table_names())
        rows = {}
        for name in names:
            result = await session.execute(text(f'SELECT * FROM "{name}"'))
            rows[name] = [tuple(str(v) for v in row) for row in result]
    return rows


async def table_dump(services: Services) -> str:
    return str(await table_rows(services))
