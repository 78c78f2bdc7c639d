"""The application factory: one FastAPI app serving console, web chat and API, with the bot,
the relay worker and the scheduler running in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from bot.webchat import routes as webchat_routes
from core.conversations import ConversationClosed, ConversationNotFound
from core.settings import Settings
from core.web import security_headers
from counsellor_console import api as console_api
from counsellor_console import curation as console_curation
from counsellor_console import pages as console_pages
from lotse.runtime import Services, build_services, close_services
from lotse.scheduler import create_scheduler
from referral import api as referral_api

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    owned = services is None
    services = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        undelivered = await services.conversations.fail_undelivered()
        if undelivered:
            log.warning("replies left undelivered by a previous run", extra={"count": undelivered})
        await referral_api.refresh_referral_index(services)
        tasks = [asyncio.create_task(services.relay.run(), name="relay")]
        scheduler = create_scheduler(services)
        scheduler.start()
        if services.bot is not None and services.dispatcher is not None:
            from bot.telegram.setup import register_commands

            await register_commands(services.bot)
            tasks.append(
                asyncio.create_task(
                    services.dispatcher.start_polling(
                        services.bot, handle_signals=False, close_bot_session=False
                    ),
                    name="telegram-polling",
                )
            )
        log.info("lotse started", extra={"telegram": services.bot is not None})
        try:
            yield
        finally:
            if services.dispatcher is not None and services.bot is not None:
                with contextlib.suppress(RuntimeError):
                    await services.dispatcher.stop_polling()
            scheduler.shutdown(wait=False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if owned:
                await close_services(services)

    app = FastAPI(
        title="Lotse",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.services = services
    app.middleware("http")(security_headers)
    _add_error_handlers(app)
    app.include_router(console_pages.create_router())
    app.include_router(console_api.create_router())
    app.include_router(console_curation.create_router())
    app.include_router(webchat_routes.create_router())
    app.include_router(referral_api.create_router())
    app.mount(
        "/console/static",
        StaticFiles(directory=ROOT / "counsellor_console" / "static"),
        name="console-static",
    )
    app.mount(
        "/chat/static",
        StaticFiles(directory=ROOT / "bot" / "webchat" / "static"),
        name="chat-static",
    )

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        return RedirectResponse("/console", status_code=303)

    @app.get("/healthz", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConversationNotFound)
    async def not_found(_: Request, __: ConversationNotFound) -> JSONResponse:
        return JSONResponse({"detail": "conversation not found"}, status_code=404)

    @app.exception_handler(ConversationClosed)
    async def closed(_: Request, __: ConversationClosed) -> JSONResponse:
        return JSONResponse(
            {"detail": "conversation is not open for this action"}, status_code=409
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # Field locations and messages only: echoing input values could leak what a user typed.
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "invalid")}
            for e in error.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(_: Request, error: Exception) -> JSONResponse:
        log.error("request failed", exc_info=error)
        return JSONResponse({"detail": "internal error"}, status_code=500)
