"""The JSON API behind the console. Routes are short: they call the conversation service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from bot.state import FlowStateStore
from core import canned, member_keys, notes, team_keys
from core.audit import list_entries
from core.db import transaction
from core.events import team_channel
from core.relay import OutboundJob
from core.schemas import (
    AuditEntryPublic,
    CannedCreate,
    CannedPublic,
    ColleaguePublic,
    ConversationDetail,
    ConversationSummary,
    CounsellorPublic,
    EpochCreate,
    MemberKeysPublic,
    MessagePublic,
    NoteCreate,
    NotePublic,
    NotesPublic,
    PlainText,
    RosterSigned,
    TeamKeys,
    TeamPublic,
    TeamSettings,
    TeamTranscriptKey,
    WorkloadPublic,
)
from core.statistics import ReportOut, check_reader, report_csv
from core.statistics import label as stats_label
from core.teams import (
    get_settings,
    heartbeat,
    list_colleagues,
    list_teams,
    set_availability,
    update_settings,
)
from core.web import json_response, sse_response
from counsellor_console.auth import create_invitation, invitation_url, session_alive
from counsellor_console.cache import queue_json
from counsellor_console.deps import (
    CurrentCounsellor,
    console_cache,
    get_services,
    require_csrf,
    session_cookie_name,
    session_policy,
)
from counsellor_console.referrals import ReferralSend, send_referrals


class StatisticsIndex(BaseModel):
    granularity: str
    # Shown once it is complete: a report of a running period could be subtracted from a
    # later one.
    current: str
    periods: list[str]


class ReplyCreate(BaseModel):
    text: str = Field(min_length=1, max_length=4096)


class InvitationCreate(BaseModel):
    role: Literal["counsellor", "team_lead", "directory_editor", "admin"] = "counsellor"
    display_name: PlainText = Field(min_length=1, max_length=100)
    # Default: the inviter's own team.
    team_id: uuid.UUID | None = None


class InvitationPublic(BaseModel):
    url: str
    expires_at: datetime


class AvailabilityUpdate(BaseModel):
    availability: Literal["online", "away", "offline"]


class CrisisUpdate(BaseModel):
    crisis: bool


class CloseRequest(BaseModel):
    # Codes from core/outcomes.py, e.g. ["referral_given", "topic:visits"].
    outcomes: list[str] = Field(default_factory=list, max_length=32)


class ResealedMessage(BaseModel):
    message_id: uuid.UUID
    envelope: dict[str, Any]


class TransferRequest(BaseModel):
    to_team_id: uuid.UUID | None = None
    to_counsellor_id: uuid.UUID | None = None
    note: str = Field(default="", max_length=2000)
    # To another team: every stored message, opened and sealed again in the browser to the
    # receiving team's signed transcript key (docs/key-protocol.md, Transfers).
    resealed: list[ResealedMessage] = Field(default_factory=list, max_length=10_000)


def create_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/console", tags=["console"])
    csrf = [Depends(require_csrf)]

    @router.get("/me", response_model=CounsellorPublic)
    async def me(counsellor: CurrentCounsellor) -> Response:
        # Serialised here: FastAPI would validate the model a second time against itself.
        return json_response(CounsellorPublic.model_validate(counsellor).model_dump_json())

    # Right after /me: FastAPI tries the routes in order, and each miss costs.
    @router.get("/queue", response_model=list[ConversationSummary])
    async def queue(request: Request, counsellor: CurrentCounsellor) -> Response:
        """Cached for about a second per team, dropped on every change (cache.py)."""
        cache = console_cache(request)
        body = await queue_json(
            cache=cache.queues if cache else None,
            conversations=get_services(request).conversations,
            counsellor=counsellor,
        )
        return json_response(body)

    @router.put("/me/availability", response_model=CounsellorPublic, dependencies=csrf)
    async def availability(
        request: Request, body: AvailabilityUpdate, counsellor: CurrentCounsellor
    ) -> CounsellorPublic:
        services = get_services(request)
        await set_availability(
            sessions=services.sessions,
            clock=services.clock,
            counsellor=counsellor,
            availability=body.availability,
        )
        return CounsellorPublic.model_validate(counsellor).model_copy(
            update={"availability": body.availability}
        )

    @router.get("/me/keys", response_model=MemberKeysPublic)
    async def my_keys(request: Request, counsellor: CurrentCounsellor) -> MemberKeysPublic:
        """The own public keys and wrapped private keys, to unlock in this browser."""
        return await member_keys.get_keys(
            sessions=get_services(request).sessions, counsellor=counsellor
        )

    @router.put("/me/keys", response_model=MemberKeysPublic, dependencies=csrf)
    async def store_my_keys(
        request: Request, body: MemberKeysPublic, counsellor: CurrentCounsellor
    ) -> MemberKeysPublic:
        services = get_services(request)
        return await member_keys.put_keys(
            sessions=services.sessions, clock=services.clock, counsellor=counsellor, keys=body
        )

    @router.post("/me/heartbeat", status_code=204, dependencies=csrf)
    async def beat(request: Request, counsellor: CurrentCounsellor) -> None:
        """The open console says every minute that someone is at it (core/teams.py)."""
        services = get_services(request)
        await heartbeat(sessions=services.sessions, clock=services.clock, counsellor=counsellor)

    @router.get("/team/keys", response_model=TeamKeys)
    async def get_team_keys(request: Request, counsellor: CurrentCounsellor) -> TeamKeys:
        """The team's epochs, the caller's wraps, the current roster chain and the members
        with keys: what the browser needs to unlock (docs/key-protocol.md)."""
        services = get_services(request)
        return await team_keys.get_team_keys(
            sessions=services.sessions,
            counsellor=counsellor,
            recovery_public=services.settings.recovery_public_key,
        )

    @router.post("/team/epochs", response_model=TeamKeys, status_code=201, dependencies=csrf)
    async def create_epoch(
        request: Request, body: EpochCreate, counsellor: CurrentCounsellor
    ) -> TeamKeys:
        """A lead's browser starts the team's next key epoch."""
        services = get_services(request)
        return await team_keys.create_epoch(
            sessions=services.sessions,
            clock=services.clock,
            counsellor=counsellor,
            data=body,
            recovery_public=services.settings.recovery_public_key,
        )

    @router.post(
        "/team/epochs/{epoch}/members",
        response_model=TeamKeys,
        status_code=201,
        dependencies=csrf,
    )
    async def add_members(
        request: Request, epoch: int, body: RosterSigned, counsellor: CurrentCounsellor
    ) -> TeamKeys:
        """A lead's browser signs the next roster version and wraps the key for newcomers."""
        services = get_services(request)
        return await team_keys.add_members(
            sessions=services.sessions,
            clock=services.clock,
            counsellor=counsellor,
            epoch=epoch,
            data=body,
            recovery_public=services.settings.recovery_public_key,
        )

    @router.get("/conversations/{conversation_id}/notes", response_model=NotesPublic)
    async def list_notes(
        request: Request, conversation_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> NotesPublic:
        services = get_services(request)
        return await notes.list_notes(
            sessions=services.sessions,
            clock=services.clock,
            counsellor=counsellor,
            conversation_id=conversation_id,
        )

    @router.post(
        "/conversations/{conversation_id}/notes",
        response_model=NotePublic,
        status_code=201,
        dependencies=csrf,
    )
    async def add_note(
        request: Request,
        conversation_id: uuid.UUID,
        body: NoteCreate,
        counsellor: CurrentCounsellor,
    ) -> NotePublic:
        """Only an envelope made in the browser is accepted; there is no field for text."""
        services = get_services(request)
        return await notes.add_note(
            sessions=services.sessions,
            clock=services.clock,
            counsellor=counsellor,
            conversation_id=conversation_id,
            data=body,
        )

    @router.get("/team/settings", response_model=TeamSettings)
    async def team_settings(request: Request, counsellor: CurrentCounsellor) -> TeamSettings:
        return await get_settings(sessions=get_services(request).sessions, counsellor=counsellor)

    @router.put("/team/settings", response_model=TeamSettings, dependencies=csrf)
    async def change_team_settings(
        request: Request, body: TeamSettings, counsellor: CurrentCounsellor
    ) -> TeamSettings:
        return await update_settings(
            sessions=get_services(request).sessions, counsellor=counsellor, settings=body
        )

    @router.get("/audit", response_model=list[AuditEntryPublic])
    async def audit_log(
        request: Request, counsellor: CurrentCounsellor, conversation_id: uuid.UUID | None = None
    ) -> list[AuditEntryPublic]:
        """Supervision: who opened and changed the team's conversations (team leads)."""
        return await list_entries(
            sessions=get_services(request).sessions,
            counsellor=counsellor,
            conversation_id=conversation_id,
        )

    @router.post(
        "/invitations", response_model=InvitationPublic, status_code=201, dependencies=csrf
    )
    async def invite(
        request: Request, body: InvitationCreate, counsellor: CurrentCounsellor
    ) -> InvitationPublic:
        """A one-time link (valid 7 days) for a new account; shown once, stored as a digest."""
        services = get_services(request)
        async with transaction(services.sessions) as session:
            token, expires_at = await create_invitation(
                session,
                creator=counsellor,
                role=body.role,
                team_id=body.team_id or counsellor.team_id,
                display_name=body.display_name,
                clock=services.clock,
            )
        url = invitation_url(str(request.base_url), token)
        return InvitationPublic(url=url, expires_at=expires_at)

    @router.get("/canned", response_model=list[CannedPublic])
    async def canned_list(
        request: Request,
        counsellor: CurrentCounsellor,
        language: Annotated[str | None, Query(pattern=r"^[a-z]{2,3}$")] = None,
        raw: bool = False,
    ) -> list[CannedPublic]:
        """The team's canned responses; placeholders filled in unless `raw` (for editing)."""
        return await canned.list_for(
            sessions=get_services(request).sessions,
            counsellor=counsellor,
            language=language,
            filled=not raw,
        )

    @router.post("/canned", response_model=CannedPublic, status_code=201, dependencies=csrf)
    async def canned_create(
        request: Request, body: CannedCreate, counsellor: CurrentCounsellor
    ) -> CannedPublic:
        services = get_services(request)
        return await canned.save(
            sessions=services.sessions, clock=services.clock, counsellor=counsellor, data=body
        )

    @router.put("/canned/{canned_id}", response_model=CannedPublic, dependencies=csrf)
    async def canned_update(
        request: Request, canned_id: uuid.UUID, body: CannedCreate, counsellor: CurrentCounsellor
    ) -> CannedPublic:
        services = get_services(request)
        return await canned.save(
            sessions=services.sessions,
            clock=services.clock,
            counsellor=counsellor,
            data=body,
            canned_id=canned_id,
        )

    @router.delete("/canned/{canned_id}", status_code=204, dependencies=csrf)
    async def canned_delete(
        request: Request, canned_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> None:
        await canned.remove(
            sessions=get_services(request).sessions, counsellor=counsellor, canned_id=canned_id
        )

    @router.get("/team/workload", response_model=list[WorkloadPublic])
    async def workload(request: Request, counsellor: CurrentCounsellor) -> list[WorkloadPublic]:
        """Supervision: who has how many conversations, and who is there (team leads)."""
        return await get_services(request).conversations.workload(counsellor=counsellor)

    @router.get("/statistics", response_model=StatisticsIndex)
    async def statistics_index(request: Request, counsellor: CurrentCounsellor) -> StatisticsIndex:
        """The completed periods one can ask for, newest first; the current one is not."""
        check_reader(counsellor)
        stats = get_services(request).statistics
        return StatisticsIndex(
            granularity=stats.granularity,
            current=stats.current().key,
            periods=[p.key for p in await stats.periods()],
        )

    # Before `/statistics/{period}`, which would take "2026-Q3.csv" as a period.
    @router.get(
        "/statistics/{period}.csv",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def statistics_csv(
        request: Request,
        period: Annotated[str, Path(max_length=10)],
        counsellor: CurrentCounsellor,
        lang: Literal["de", "en"] = "de",
    ) -> Response:
        """One line per published figure, with the codes and their names."""
        check_reader(counsellor)
        services = get_services(request)
        stats = services.statistics
        report = await stats.report(stats.parse(period))
        body = report_csv(report, label=lambda d, v: stats_label(services.catalogue, lang, d, v))
        return Response(
            content=body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="lotse-{report.period}.csv"'},
        )

    @router.get("/statistics/{period}", response_model=ReportOut)
    async def statistics_report(
        request: Request,
        period: Annotated[str, Path(max_length=10)],
        counsellor: CurrentCounsellor,
        download: bool = False,
    ) -> Response:
        """The protected tables of a completed period: "<5" for small counts, "x" for counts
        withheld so that no small one can be worked out (docs/statistics.md)."""
        check_reader(counsellor)
        stats = get_services(request).statistics
        report = await stats.report(stats.parse(period))
        response = json_response(report.model_dump_json())
        if download:
            response.headers["Content-Disposition"] = (
                f'attachment; filename="lotse-{report.period}.json"'
            )
        return response

    @router.get("/teams", response_model=list[TeamPublic])
    async def teams(request: Request, _: CurrentCounsellor) -> list[TeamPublic]:
        return await list_teams(sessions=get_services(request).sessions)

    @router.get("/colleagues", response_model=list[ColleaguePublic])
    async def colleagues(request: Request, counsellor: CurrentCounsellor) -> list[ColleaguePublic]:
        return await list_colleagues(
            sessions=get_services(request).sessions, counsellor=counsellor
        )

    @router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
    async def conversation(
        request: Request, conversation_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> ConversationDetail:
        return await get_services(request).conversations.get_conversation(
            conversation_id=conversation_id, counsellor=counsellor
        )

    @router.post(
        "/conversations/{conversation_id}/claim",
        response_model=ConversationSummary,
        dependencies=csrf,
    )
    async def claim(
        request: Request, conversation_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> ConversationSummary:
        return await get_services(request).conversations.claim(
            conversation_id=conversation_id, counsellor=counsellor
        )

    @router.post(
        "/conversations/{conversation_id}/release",
        response_model=ConversationSummary,
        dependencies=csrf,
    )
    async def release(
        request: Request, conversation_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> ConversationSummary:
        return await get_services(request).conversations.release(
            conversation_id=conversation_id, counsellor=counsellor
        )

    @router.put(
        "/conversations/{conversation_id}/crisis",
        response_model=ConversationSummary,
        dependencies=csrf,
    )
    async def set_crisis(
        request: Request,
        conversation_id: uuid.UUID,
        body: CrisisUpdate,
        counsellor: CurrentCounsellor,
    ) -> ConversationSummary:
        return await get_services(request).conversations.set_crisis(
            conversation_id=conversation_id, counsellor=counsellor, crisis=body.crisis
        )

    @router.post(
        "/conversations/{conversation_id}/close",
        response_model=ConversationSummary,
        dependencies=csrf,
    )
    async def close(
        request: Request,
        conversation_id: uuid.UUID,
        body: CloseRequest,
        counsellor: CurrentCounsellor,
    ) -> ConversationSummary:
        services = get_services(request)
        catalogue = services.catalogue
        farewell = {
            lang: catalogue.text(lang, "flow.closed_by_team")
            for lang in catalogue.interface_languages
        }
        summary, message, route, text = await services.conversations.close(
            conversation_id=conversation_id,
            counsellor=counsellor,
            outcomes=body.outcomes,
            farewell=farewell,
        )
        await services.relay.enqueue(OutboundJob(message.id, route, text))
        return summary

    @router.post(
        "/conversations/{conversation_id}/transfer",
        response_model=ConversationSummary,
        dependencies=csrf,
    )
    async def transfer(
        request: Request,
        conversation_id: uuid.UUID,
        body: TransferRequest,
        counsellor: CurrentCounsellor,
    ) -> ConversationSummary:
        return await get_services(request).conversations.transfer(
            conversation_id=conversation_id,
            counsellor=counsellor,
            to_team_id=body.to_team_id,
            to_counsellor_id=body.to_counsellor_id,
            note=body.note,
            resealed={m.message_id: m.envelope for m in body.resealed},
        )

    @router.post("/conversations/{conversation_id}/erase", status_code=204, dependencies=csrf)
    async def erase(
        request: Request, conversation_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> None:
        """Everything linked to the user behind this conversation goes, in every table; the
        flow state of the bot too. A second call finds nothing: 404."""
        services = get_services(request)
        pseudonym = await services.conversations.erase_by_counsellor(
            conversation_id=conversation_id, counsellor=counsellor
        )
        await FlowStateStore(services.storage).set(pseudonym, {})

    @router.get("/teams/{team_id}/transcript-key", response_model=TeamTranscriptKey)
    async def transcript_key(
        request: Request, team_id: uuid.UUID, counsellor: CurrentCounsellor
    ) -> TeamTranscriptKey:
        """Another team's current roster chain, which names its transcript public key: what a
        browser verifies and seals to when it hands a conversation over."""
        return await team_keys.transcript_key_of(
            sessions=get_services(request).sessions, team_id=team_id
        )

    @router.post(
        "/conversations/{conversation_id}/referrals",
        response_model=list[MessagePublic],
        status_code=201,
        dependencies=csrf,
    )
    async def referrals(
        request: Request,
        conversation_id: uuid.UUID,
        body: ReferralSend,
        counsellor: CurrentCounsellor,
    ) -> list[MessagePublic]:
        """Offers from a directory search, sent as cards in the user's language."""
        return await send_referrals(
            services=get_services(request),
            conversation_id=conversation_id,
            counsellor=counsellor,
            request=body,
        )

    @router.post(
        "/conversations/{conversation_id}/messages",
        response_model=MessagePublic,
        status_code=201,
        dependencies=csrf,
    )
    async def reply(
        request: Request,
        conversation_id: uuid.UUID,
        body: ReplyCreate,
        counsellor: CurrentCounsellor,
    ) -> MessagePublic:
        services = get_services(request)
        message, route = await services.conversations.add_counsellor_reply(
            conversation_id=conversation_id, counsellor=counsellor, text=body.text
        )
        await services.relay.enqueue(OutboundJob(message.id, route, body.text))
        return message

    @router.get("/events", include_in_schema=False)
    async def events(request: Request, counsellor: CurrentCounsellor) -> StreamingResponse:
        services = get_services(request)
        token = request.cookies.get(session_cookie_name(services), "")

        async def still_allowed() -> bool:
            async with services.sessions() as session:
                return await session_alive(
                    session, token=token, clock=services.clock, policy=session_policy(services)
                )

        return sse_response(
            request, services.bus, team_channel(counsellor.team_id), still_allowed=still_allowed
        )

    return router
