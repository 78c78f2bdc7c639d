"""Case notes: encrypted in the browser under a per-conversation case key, stored as envelopes.

The server never sees a note in plain: the request schema has no field for text, and an
envelope that is not AES-256-GCM of the team's current epoch is refused. Reading and writing
are written to the audit log (who, when, which conversation; never content)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import audit, crypto
from core.clock import Clock
from core.db import transaction
from core.models import CaseKey, CaseNote, Conversation, Counsellor
from core.schemas import CaseKeyPublic, NoteCreate, NotePublic, NotesPublic
from core.team_keys import TeamKeysRefused, current_epoch


class NoteRefused(ValueError):
    pass


class CaseKeyNeeded(RuntimeError):
    """The conversation has no case key for the current epoch yet: send one with the note."""


async def _conversation_for(
    session: AsyncSession, *, conversation_id: uuid.UUID, counsellor: Counsellor
) -> Conversation:
    from core.conversations import ConversationNotFound

    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.team_id != counsellor.team_id:
        raise ConversationNotFound()
    return conversation


def _require_sym(envelope: dict[str, object], *, epoch: int, kid: str) -> None:
    if not crypto.is_envelope_of(envelope, alg=crypto.SYM_ALG, epoch=epoch, kid=kid):
        raise NoteRefused(f"expected an {crypto.SYM_ALG} envelope of epoch {epoch}")


async def list_notes(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    conversation_id: uuid.UUID,
) -> NotesPublic:
    async with transaction(sessions) as session:
        conversation = await _conversation_for(
            session, conversation_id=conversation_id, counsellor=counsellor
        )
        keys = await session.scalars(
            select(CaseKey)
            .where(CaseKey.conversation_id == conversation.id)
            .order_by(CaseKey.epoch)
        )
        notes = await session.scalars(
            select(CaseNote)
            .where(CaseNote.conversation_id == conversation.id)
            .order_by(CaseNote.created_at, CaseNote.id)
        )
        result = NotesPublic(
            case_keys=[CaseKeyPublic.model_validate(k) for k in keys],
            notes=[NotePublic.model_validate(n) for n in notes],
        )
        audit.record(
            session,
            at=clock.now(),
            counsellor=counsellor,
            action="notes_open",
            conversation_id=conversation.id,
            team_id=conversation.team_id,
        )
    return result


async def add_note(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    counsellor: Counsellor,
    conversation_id: uuid.UUID,
    data: NoteCreate,
) -> NotePublic:
    now = clock.now()
    try:
        async with transaction(sessions) as session:
            conversation = await _conversation_for(
                session, conversation_id=conversation_id, counsellor=counsellor
            )
            epoch = await current_epoch(session, conversation.team_id)
            if epoch is None:
                raise TeamKeysRefused("the team has no keys yet")
            case_key = await session.get(CaseKey, (conversation.id, epoch.epoch))
            if data.case_key is not None:
                if case_key is not None:
                    raise CaseKeyNeeded("the conversation has a case key for this epoch already")
                if data.case_key.epoch != epoch.epoch:
                    raise NoteRefused("a new case key belongs to the team's current epoch")
                _require_sym(data.case_key.envelope, epoch=epoch.epoch, kid=data.case_key.kid)
                case_key = CaseKey(
                    conversation_id=conversation.id,
                    epoch=epoch.epoch,
                    kid=data.case_key.kid,
                    envelope=data.case_key.envelope,
                    created_at=now,
                )
                session.add(case_key)
            elif case_key is None:
                raise CaseKeyNeeded("a case key for the current epoch comes with the first note")
            _require_sym(data.envelope, epoch=epoch.epoch, kid=case_key.kid)
            note = CaseNote(
                id=data.id,
                conversation_id=conversation.id,
                author_id=counsellor.id,
                epoch=epoch.epoch,
                envelope=data.envelope,
                created_at=now,
            )
            session.add(note)
            audit.record(
                session,
                at=now,
                counsellor=counsellor,
                action="note_add",
                conversation_id=conversation.id,
                team_id=conversation.team_id,
            )
            await session.flush()
            return NotePublic.model_validate(note)
    except IntegrityError as error:  # the same note id twice, or a case key raced in
        raise CaseKeyNeeded("reload the notes and try again") from error
