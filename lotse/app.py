"""The application factory: one FastAPI app serving console, web chat and API, with the bot
(long polling, or the webhook route), the relay worker and the scheduler in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiogram import Bot, Dispatcher
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from bot.telegram import webhook as telegram_webhook
from bot.telegram.setup import register_commands
from bot.webchat import routes as webchat_routes
from core.audit import AuditNotAllowed
from core.canned import CannedNotAllowed, CannedNotFound
from core.conversations import (
    ConversationClosed,
    ConversationNotFound,
    NoTeamKeys,
    NotYourConversation,
    OverCapacity,
    TranscriptChanged,
    TransferRefused,
)
from core.hours import InvalidHours
from core.member_keys import KeysRefused, NoKeys
from core.notes import CaseKeyNeeded, NoteRefused
from core.outcomes import UnknownOutcome
from core.settings import Settings
from core.statistics import PeriodOverlaps, UnknownPeriod
from core.team_keys import EpochConflict, NoSuchTeamKey, NotALead, TeamKeysRefused
from core.teams import NotAllowed
from core.web import SecurityHeaders
from counsellor_console import account_pages as console_account_pages
from counsellor_console import api as console_api
from counsellor_console import curation as console_curation
from counsellor_console import pages as console_pages
from counsellor_console import team_pages as console_team_pages
from counsellor_console.auth import InvitationError
from counsellor_console.cache import ConsoleCache
from counsellor_console.referrals import ReferralUnavailable
from lotse.runtime import (
    Services,
    build_services,
    close_services,
    keep_startup_objects,
    release_startup_objects,
)
from lotse.scheduler import create_scheduler, fail_lost_replies
from referral import api as referral_api
from referral.index import InvalidQuery

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    owned = services is None
    services = services or build_services(settings)
    ingest = _webhook_ingest(services)
    cache = ConsoleCache(engine=services.db, clock=services.clock, bus=services.bus)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Also a scheduler job; at start-up too, for a single process that was down a while.
        await fail_lost_replies(services)
        await referral_api.refresh_referral_index(services)
        await cache.start()
        tasks = [asyncio.create_task(services.relay.run(), name="relay")]
        scheduler = create_scheduler(services)
        # Every process runs the scheduler; its jobs run only in the process that leads.
        tasks.append(asyncio.create_task(services.leader.run(), name="scheduler-leader"))
        scheduler.start()
        if services.bot is not None and services.dispatcher is not None:
            tasks.append(
                await _start_telegram(
                    services.bot, services.dispatcher, services, webhook=ingest is not None
                )
            )
        log.info(
            "lotse started",
            extra={"telegram": services.bot is not None, "mode": settings.telegram_mode},
        )
        keep_startup_objects()
        try:
            yield
        finally:
            if ingest is None and services.dispatcher is not None and services.bot is not None:
                with contextlib.suppress(RuntimeError):
                    await services.dispatcher.stop_polling()
            # The webhook stays registered: other processes may serve it.
            if ingest is not None:
                await ingest.close()
            scheduler.shutdown(wait=False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Released, not left to lapse: another process takes over at once.
            await services.leader.release()
            await cache.stop()
            if owned:
                await close_services(services)
            release_startup_objects()

    app = FastAPI(
        title="Lotse",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.services = services
    # Sessions and queues for the console API; kept current only while the lifespan runs.
    app.state.console_cache = cache
    app.add_middleware(SecurityHeaders)
    _add_error_handlers(app)
    if ingest is not None:
        # First: Telegram's requests are the most frequent, and routes are matched in order.
        # A plain Starlette route to an ASGI endpoint, outside FastAPI's request machinery.
        app.state.telegram_webhook = ingest
        app.router.routes.insert(0, telegram_webhook.create_route(ingest))
    # The console API first: it takes most requests, and FastAPI tries every route before
    # the matching one, which cost more than a cached answer itself (bench/README.md).
    app.include_router(console_api.create_router())
    app.include_router(console_pages.create_router())
    app.include_router(console_account_pages.create_router())
    app.include_router(console_team_pages.create_router())
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


def _webhook_ingest(services: Services) -> telegram_webhook.WebhookIngest | None:
    if services.settings.telegram_mode != "webhook":
        return None
    # Refuses to build without token, URL and secret, whatever the settings went through.
    return telegram_webhook.WebhookIngest.from_services(services)


async def _start_telegram(
    bot: Bot, dispatcher: Dispatcher, services: Services, *, webhook: bool
) -> asyncio.Task[None]:
    """Registers the commands, then either the webhook or long polling, as a task."""
    settings = services.settings
    await register_commands(bot, services.catalogue)
    if webhook:
        return asyncio.create_task(
            telegram_webhook.keep_webhook_registered(bot, settings), name="telegram-webhook"
        )
    # A webhook left from webhook mode is not deleted here (getUpdates then fails with
    # Conflict): a stray development process with the production token must not take over.
    return asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False),
        name="telegram-polling",
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConversationNotFound)
    async def not_found(_: Request, __: ConversationNotFound) -> JSONResponse:
        return JSONResponse({"detail": "conversation not found"}, status_code=404)

    @app.exception_handler(ConversationClosed)
    async def closed(_: Request, __: ConversationClosed) -> JSONResponse:
        return JSONResponse(
            {"detail": "conversation is not open for this action"}, status_code=409
        )

    @app.exception_handler(NotYourConversation)
    async def not_yours(_: Request, __: NotYourConversation) -> JSONResponse:
        return JSONResponse(
            {"detail": "this conversation is a colleague's: claim it, or ask a team lead"},
            status_code=403,
        )

    @app.exception_handler(OverCapacity)
    async def over_capacity(_: Request, __: OverCapacity) -> JSONResponse:
        return JSONResponse(
            {"detail": "you already have as many conversations as your capacity allows"},
            status_code=409,
        )

    @app.exception_handler(TransferRefused)
    async def transfer_refused(_: Request, error: TransferRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(UnknownOutcome)
    async def unknown_outcome(_: Request, error: UnknownOutcome) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(InvitationError)
    async def invitation_refused(request: Request, error: InvitationError) -> JSONResponse:
        catalogue = request.app.state.services.catalogue
        status = 403 if error.key.endswith(".forbidden") else 422
        return JSONResponse({"detail": catalogue.text("en", error.key)}, status_code=status)

    @app.exception_handler(InvalidQuery)
    async def invalid_query(_: Request, error: InvalidQuery) -> JSONResponse:
        return JSONResponse(
            {
                "detail": "invalid request",
                "errors": [{"loc": [error.field], "msg": error.message}],
            },
            status_code=422,
        )

    @app.exception_handler(ReferralUnavailable)
    async def referrals_unavailable(_: Request, __: ReferralUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "referral directory is not loaded yet"}, status_code=503)

    @app.exception_handler(KeysRefused)
    async def keys_refused(_: Request, error: KeysRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(TeamKeysRefused)
    async def team_keys_refused(_: Request, error: TeamKeysRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(NoteRefused)
    async def note_refused(_: Request, error: NoteRefused) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(EpochConflict)
    async def epoch_conflict(_: Request, error: EpochConflict) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(CaseKeyNeeded)
    async def case_key_needed(_: Request, error: CaseKeyNeeded) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @app.exception_handler(NotALead)
    async def not_a_lead(_: Request, __: NotALead) -> JSONResponse:
        return JSONResponse(
            {"detail": "only a team lead of this team manages its keys"}, status_code=403
        )

    @app.exception_handler(TranscriptChanged)
    async def transcript_changed(_: Request, __: TranscriptChanged) -> JSONResponse:
        return JSONResponse(
            {"detail": "the transcript changed or was not re-sealed for the new team: reload"},
            status_code=409,
        )

    @app.exception_handler(NoSuchTeamKey)
    async def no_such_team_key(_: Request, __: NoSuchTeamKey) -> JSONResponse:
        return JSONResponse({"detail": "that team has no keys yet"}, status_code=404)

    @app.exception_handler(NoTeamKeys)
    async def no_team_keys(_: Request, __: NoTeamKeys) -> JSONResponse:
        return JSONResponse({"detail": "the team has no keys yet"}, status_code=409)

    @app.exception_handler(NoKeys)
    async def no_keys(_: Request, __: NoKeys) -> JSONResponse:
        return JSONResponse({"detail": "no member keys set up yet"}, status_code=404)

    @app.exception_handler(CannedNotAllowed)
    async def canned_not_allowed(_: Request, error: CannedNotAllowed) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    @app.exception_handler(CannedNotFound)
    async def canned_not_found(_: Request, __: CannedNotFound) -> JSONResponse:
        return JSONResponse({"detail": "canned response not found"}, status_code=404)

    @app.exception_handler(AuditNotAllowed)
    async def audit_not_allowed(_: Request, error: AuditNotAllowed) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    @app.exception_handler(NotAllowed)
    async def not_allowed(_: Request, error: NotAllowed) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=403)

    @app.exception_handler(UnknownPeriod)
    async def unknown_period(_: Request, error: UnknownPeriod) -> JSONResponse:
        return JSONResponse(
            {"detail": f"no completed statistics period {str(error)!r} of this deployment"},
            status_code=404,
        )

    @app.exception_handler(PeriodOverlaps)
    async def period_overlaps(_: Request, error: PeriodOverlaps) -> JSONResponse:
        return JSONResponse(
            {
                "detail": f"a published report of another period length ({error}) covers part "
                "of this period; reports of two lengths could be subtracted from each other"
            },
            status_code=409,
        )

    @app.exception_handler(InvalidHours)
    async def invalid_hours(_: Request, error: InvalidHours) -> JSONResponse:
        return JSONResponse({"detail": f"opening hours: {error}"}, status_code=422)

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
