"""The try-out web chat: one page, one JSON endpoint per message, and an SSE stream for replies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from aiogram.fsm.storage.base import StorageKey
from fastapi import APIRouter, Cookie, Depends, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from bot.engine import Inbound, Sender
from bot.webchat.sender import webchat_channel
from core.crypto import new_token
from core.web import integrity_hashes, require_same_origin, sse_response

HERE = Path(__file__).parent
COOKIE = "lotse_chat"
CHANNEL = "web"


class ChatInput(BaseModel):
    kind: Literal["command", "text", "action"]
    value: str = Field(max_length=4096)


class ButtonOut(BaseModel):
    label: str
    action: str


class ReplyOut(BaseModel):
    text: str
    buttons: list[list[ButtonOut]]


class ChatOutput(BaseModel):
    replies: list[ReplyOut]


def _services(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.services


def _pseudonym(request: Request, token: str | None) -> str:
    if not token:
        from fastapi import HTTPException

        raise HTTPException(status_code=401, detail="chat session missing: reload the page")
    return _services(request).identities.pseudonym(channel=CHANNEL, identifier=token)


def create_router() -> APIRouter:
    router = APIRouter(prefix="/chat", tags=["web chat"])
    templates = Jinja2Templates(directory=HERE / "templates")
    integrity = integrity_hashes(HERE / "static")

    @router.get("", response_class=HTMLResponse, include_in_schema=False)
    async def chat_page(
        request: Request, lotse_chat: Annotated[str | None, Cookie()] = None
    ) -> Response:
        services = _services(request)
        lang = "en" if request.query_params.get("lang") == "en" else "de"
        response = templates.TemplateResponse(
            request,
            "chat.html",
            {"t": lambda key: services.catalogue.text(lang, key), "lang": lang, "sri": integrity},
        )
        if not lotse_chat:
            response.set_cookie(
                COOKIE,
                new_token(),
                httponly=True,
                samesite="strict",
                secure=services.settings.cookie_secure,
                path="/chat",
            )
        return response

    @router.post(
        "/api/messages", response_model=ChatOutput, dependencies=[Depends(require_same_origin)]
    )
    async def post_message(
        request: Request, body: ChatInput, lotse_chat: Annotated[str | None, Cookie()] = None
    ) -> ChatOutput:
        services = _services(request)
        pseudonym = _pseudonym(request, lotse_chat)
        # The same per-chat lock as Telegram's updates: one message at a time, in order.
        key = StorageKey(bot_id=0, chat_id=0, user_id=0, destiny=f"web:{pseudonym}")
        async with services.isolation.lock(key):
            replies = await services.engine.handle(
                sender=Sender(CHANNEL, pseudonym), inbound=Inbound(body.kind, body.value)
            )
        return ChatOutput(
            replies=[
                ReplyOut(
                    text=r.text,
                    buttons=[
                        [ButtonOut(label=b.label, action=b.action) for b in row]
                        for row in r.buttons
                    ],
                )
                for r in replies
            ]
        )

    @router.get("/api/events", include_in_schema=False)
    async def events(
        request: Request, lotse_chat: Annotated[str | None, Cookie()] = None
    ) -> StreamingResponse:
        pseudonym = _pseudonym(request, lotse_chat)
        return sse_response(request, _services(request).bus, webchat_channel(pseudonym))

    return router
