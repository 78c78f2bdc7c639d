"""Retention with a controllable clock: what goes at day 89, 90 and 91, and nothing else."""

from __future__ import annotations

from sqlalchemy import func, select

from core.conversations import Profile
from core.models import AuditEntry, CaseKey, CaseNote, Contact, Conversation, Message
from core.retention import RetentionPolicy, run_retention
from tests.helpers import add_counsellor
from tests.keyring import table_dump

POLICY = RetentionPolicy()


async def start(services, name: str, text: str):
    pseudonym = services.identities.pseudonym(channel="test", identifier=name)
    await services.conversations.request_handover(
        channel="web", pseudonym=pseudonym, chat_ref=None, profile=Profile(role="teen")
    )
    message = await services.conversations.record_user_message(pseudonym=pseudonym, text=text)
    return pseudonym, message.conversation_id


async def close(services, conversation_id, counsellor):
    await services.conversations.claim(conversation_id=conversation_id, counsellor=counsellor)
    await services.conversations.close(
        conversation_id=conversation_id,
        counsellor=counsellor,
        outcomes=[],
        farewell={"de": "Tschüss", "en": "Bye"},
    )


async def count(services, model) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def add_note_rows(services, conversation_id, author_id) -> None:
    """A case key and a note as a browser would store them (content does not matter here)."""
    import uuid

    from core.db import transaction

    fake = {"v": 1, "alg": "A256GCM", "kid": "k", "epoch": 1, "nonce": "n", "ct": "c"}
    async with transaction(services.sessions) as session:
        session.add(
            CaseKey(
                conversation_id=conversation_id,
                epoch=1,
                kid="k",
                envelope=fake,
                created_at=services.clock.now(),
            )
        )
        session.add(
            CaseNote(
                id=uuid.uuid4(),
                conversation_id=conversation_id,
                author_id=author_id,
                epoch=1,
                envelope=fake,
                created_at=services.clock.now(),
            )
        )


async def test_closed_conversations_go_at_day_90_with_notes_and_keys_and_nothing_else(
    services, clock
):
    counsellor = await add_counsellor(services, login="rita")
    old_pseudonym, old = await start(services, "alt", "alte Geschichte")
    await add_note_rows(services, old, counsellor.id)
    await close(services, old, counsellor)
    clock.advance(days=1)
    _, young = await start(services, "neu", "neue Geschichte")
    await close(services, young, counsellor)

    clock.advance(days=88)  # the old one closed 89 days ago
    first = await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    assert first.conversations_deleted == 0
    assert await count(services, Conversation) == 2 and await count(services, CaseNote) == 1

    clock.advance(days=1)  # day 90 for the old one, day 89 for the young one
    second = await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    assert (second.conversations_deleted, second.notes_deleted, second.case_keys_deleted) == (
        1,
        1,
        1,
    )
    assert second.messages_deleted == 2, "the user's message and the farewell"
    async with services.sessions() as session:
        left = (await session.scalars(select(Conversation.id))).all()
        contacts = (await session.scalars(select(Contact.pseudonym))).all()
    assert left == [young]
    assert old_pseudonym not in contacts, "a quiet contact without conversations goes too"
    assert old_pseudonym not in await table_dump(services)
    assert await count(services, CaseKey) == 0, "the keys that protected the notes are gone"

    clock.advance(days=1)  # day 91 / day 90
    third = await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    assert third.conversations_deleted == 1
    assert await count(services, Message) == 0
    again = await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    assert again.conversations_deleted == 0 and again.messages_deleted == 0, "idempotent"


async def retain(services):
    return await run_retention(sessions=services.sessions, clock=services.clock, policy=POLICY)


async def test_inactive_conversations_are_closed_after_7_days(services, clock):
    _, quiet = await start(services, "still", "Hallo?")
    clock.advance(days=6, hours=23)
    assert (
        await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    ).closed == 0
    clock.advance(hours=1)
    assert (
        await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    ).closed == 1
    async with services.sessions() as session:
        conversation = await session.get(Conversation, quiet)
    assert conversation.status == "closed" and conversation.closed_at == clock.now()


async def test_audit_entries_are_kept_one_year(services, clock):
    counsellor = await add_counsellor(services, login="rita")
    _, conversation_id = await start(services, "a", "x")
    await services.conversations.get_conversation(
        conversation_id=conversation_id, counsellor=counsellor
    )
    assert await count(services, AuditEntry) == 1
    clock.advance(days=364)
    await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    assert await count(services, AuditEntry) == 1
    clock.advance(days=1)
    result = await run_retention(sessions=services.sessions, clock=clock, policy=POLICY)
    assert result.audit_deleted == 1 and await count(services, AuditEntry) == 0


async def test_the_scheduler_runs_retention_with_the_configured_periods(services, clock):
    from lotse.scheduler import apply_retention, create_scheduler

    assert "retention" in {job.id for job in create_scheduler(services).get_jobs()}
    services.settings.retention_close_inactive_days = 2
    await start(services, "kurz", "Hallo")
    clock.advance(days=2)
    assert (await apply_retention(services)).closed == 1
