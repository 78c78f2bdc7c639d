"""FastAPI dependencies: services, the logged-in counsellor, and the CSRF check."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request

from core.crypto import constant_time_equal
from core.db import transaction
from core.models import ConsoleSession, Counsellor
from core.web import require_same_origin
from counsellor_console.auth import SessionPolicy, resolve_session

if TYPE_CHECKING:
    from lotse.runtime import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def session_cookie_name(services: Services) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless it is Secure and host-only.
    return "__Host-lotse_session" if services.settings.cookie_secure else "lotse_session"


def session_policy(services: Services) -> SessionPolicy:
    settings = services.settings
    return SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )


async def optional_login(request: Request) -> tuple[Counsellor, ConsoleSession] | None:
    services = get_services(request)
    token = request.cookies.get(session_cookie_name(services))
    if not token:
        return None
    async with transaction(services.sessions) as session:
        return await resolve_session(
            session, token=token, clock=services.clock, policy=session_policy(services)
        )


async def current_login(request: Request) -> tuple[Counsellor, ConsoleSession]:
    login = await optional_login(request)
    if login is None:
        raise HTTPException(status_code=401, detail="not logged in")
    return login


async def current_counsellor(
    login: Annotated[tuple[Counsellor, ConsoleSession], Depends(current_login)],
) -> Counsellor:
    return login[0]


async def require_csrf(
    request: Request, login: Annotated[tuple[Counsellor, ConsoleSession], Depends(current_login)]
) -> None:
    require_same_origin(request)
    sent = request.headers.get("x-csrf-token", "")
    if not sent or not constant_time_equal(sent, login[1].csrf_token):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")


CurrentCounsellor = Annotated[Counsellor, Depends(current_counsellor)]
