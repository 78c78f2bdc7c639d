"""The JSON API behind the console. Routes are short: they call the conversation service."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from core.events import team_channel
from core.relay import OutboundJob
from core.schemas import ConversationDetail, ConversationSummary, CounsellorPublic, MessagePublic
from core.web import sse_response
from counsellor_console.deps import CurrentCounsellor, get_services, require_csrf


class ReplyCreate(BaseModel):
    text: str = Field(min_length=1, max_length=4096)


def create_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/console", tags=["console"])
    csrf = [Depends(require_csrf)]

    @router.get("/me", response_model=CounsellorPublic)
    async def me(counsellor: CurrentCounsellor) -> CounsellorPublic:
        return CounsellorPublic.model_validate(counsellor)

    @router.get("/queue", response_model=list[ConversationSummary])
    async def queue(request: Request, counsellor: CurrentCounsellor) -> list[ConversationSummary]:
        return await get_services(request).conversations.list_queue(counsellor=counsellor)

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
        return sse_response(request, get_services(request).bus, team_channel(counsellor.team_id))

    return router
