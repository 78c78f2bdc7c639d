"""FastAPI dependencies: services, the logged-in counsellor, and the CSRF check."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from core.crypto import constant_time_equal, derive_key, token_digest
from core.db import transaction
from core.models import ConsoleSession, Counsellor
from core.web import require_same_origin
from counsellor_console.auth import SecondFactorKeys, SessionPolicy, resolve_session
from counsellor_console.cache import ConsoleCache, cached_login

if TYPE_CHECKING:
    from lotse.runtime import Services


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def session_cookie_name(services: Services) -> str:
    # The __Host- prefix makes the browser refuse the cookie unless it is Secure and host-only.
    return "__Host-lotse_session" if services.settings.cookie_secure else "lotse_session"


def to_second_factor(services: Services, token: str) -> RedirectResponse:
    """After the password (login or a redeemed invitation): the session cookie is set, and the
    second factor comes next; the password alone opens nothing."""
    response = RedirectResponse("/console/second-factor", status_code=303)
    response.set_cookie(
        session_cookie_name(services),
        token,
        httponly=True,
        samesite="strict",
        secure=services.settings.cookie_secure,
        path="/",
    )
    return response


def session_policy(services: Services) -> SessionPolicy:
    settings = services.settings
    return SessionPolicy(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_absolute_hours),
    )


def console_cache(request: Request) -> ConsoleCache | None:
    """The app's caches (counsellor_console/cache.py), while they are kept up to date."""
    cache: ConsoleCache | None = getattr(request.app.state, "console_cache", None)
    return cache if cache is not None and cache.active else None


async def optional_login(request: Request) -> tuple[Counsellor, ConsoleSession] | None:
    services = get_services(request)
    token = request.cookies.get(session_cookie_name(services))
    if not token:
        return None
    policy = session_policy(services)

    async def resolve() -> tuple[Counsellor, ConsoleSession] | None:
        async with transaction(services.sessions) as session:
            return await resolve_session(session, token=token, clock=services.clock, policy=policy)

    cache = console_cache(request)
    if cache is None:
        return await resolve()
    return await cached_login(
        cache.sessions, digest=token_digest(token), policy=policy, resolve=resolve
    )


def second_factor_keys(services: Services) -> SecondFactorKeys:
    return SecondFactorKeys(
        sealing_key=derive_key(key=services.settings.secret_bytes("routing_key"), purpose="totp"),
        pepper=services.settings.secret_bytes("pseudonym_pepper"),
    )


_LOGIN_KEY = "lotse.login"


async def current_login(request: Request) -> tuple[Counsellor, ConsoleSession]:
    # Kept for the request: `current_counsellor` and `require_csrf` both ask.
    login: tuple[Counsellor, ConsoleSession] | None = request.scope.get(_LOGIN_KEY)
    if login is None:
        login = await optional_login(request)
        if login is None:
            raise HTTPException(status_code=401, detail="not logged in")
        request.scope[_LOGIN_KEY] = login
    return login


async def current_counsellor(request: Request) -> Counsellor:
    # A call, not a sub-dependency: each level of FastAPI's dependency solving costs about
    # as much as a cached login itself.
    return (await current_login(request))[0]


async def require_csrf(
    request: Request, login: Annotated[tuple[Counsellor, ConsoleSession], Depends(current_login)]
) -> None:
    require_same_origin(request)
    sent = request.headers.get("x-csrf-token", "")
    if not sent or not constant_time_equal(sent, login[1].csrf_token):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")


CurrentCounsellor = Annotated[Counsellor, Depends(current_counsellor)]
