"""Server-rendered pages: login, logout and the console shell (its data comes from the API)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from bot.engine import NEEDS, ROLES
from core.crypto import constant_time_equal, new_token
from core.db import transaction
from core.i18n import Catalogue
from core.outcomes import OUTCOMES
from core.ratelimit import attempt_key
from core.web import integrity_hashes, require_same_origin
from counsellor_console.auth import authenticate, end_session, start_session
from counsellor_console.deps import (
    get_services,
    optional_login,
    session_cookie_name,
    to_second_factor,
)
from referral.gazetteer import STATE_NAMES

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
LOGIN_CSRF_COOKIE = "lotse_login_csrf"


def _labels(catalogue: Catalogue) -> dict[str, dict[str, str]]:
    """Display names for the codes the API returns, handed to the page as a JSON data block."""
    return {
        "roles": {r: catalogue.text("de", f"console.role.{r}") for r in ROLES},
        "needs": {n: catalogue.text("de", f"need.{n}") for n in NEEDS},
        "states": STATE_NAMES,
        "availability": {
            a: catalogue.text("de", f"console.availability.{a}")
            for a in ("online", "away", "offline")
        },
    }


def _attempt_keys(request: Request, login: str) -> list[str]:
    """The login name (guessing one account) first, then the address (trying many)."""
    pepper = get_services(request).settings.secret_bytes("pseudonym_pepper")
    address = request.client.host if request.client else "unknown"
    return [
        attempt_key(pepper, "login", login.strip().casefold()),
        attempt_key(pepper, "address", address),
    ]


def _too_many(response: Response, wait: float) -> Response:
    response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return response


def _outcome_choices(catalogue: Catalogue) -> list[tuple[str, str]]:
    """Checkboxes of the close form: results first, then the topics."""
    choices = []
    for code in OUTCOMES:
        kind, _, need = code.partition(":")
        label = (
            catalogue.text(
                "de", "console.outcome.topic", topic=catalogue.text("de", f"need.{need}")
            )
            if kind == "topic"
            else catalogue.text("de", f"console.outcome.{code}")
        )
        choices.append((code, label))
    return choices


def create_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")
    integrity = integrity_hashes(HERE / "static")

    def render(request: Request, name: str, status: int = 200, **context: object) -> Response:
        catalogue = get_services(request).catalogue
        context.update(t=lambda key: catalogue.text("de", key), sri=integrity)
        return templates.TemplateResponse(request, name, context, status_code=status)

    def login_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
        # Double-submit token: a cross-site form cannot read the cookie to copy it into the form.
        csrf = new_token()
        response = render(request, "login.html", status, csrf=csrf, error=error)
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=get_services(request).settings.cookie_secure,
            path="/console",
        )
        return response

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login", dependencies=[Depends(require_same_origin)])
    async def login(
        request: Request,
        login: Annotated[str, Form(max_length=100)],
        password: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form(max_length=100)],
    ) -> Response:
        services = get_services(request)
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not constant_time_equal(cookie, csrf):
            raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
        keys = _attempt_keys(request, login)
        wait = max([await services.attempts.blocked_for(key) for key in keys])
        if wait > 0:
            return _too_many(
                login_page(request, error="console.too_many_attempts", status=429), wait
            )
        async with transaction(services.sessions) as session:
            counsellor = await authenticate(session, login=login, password=password)
            token = (
                counsellor
                and (await start_session(session, counsellor=counsellor, clock=services.clock))[0]
            )
        if not token:
            lock = max([await services.attempts.failed(key) for key in keys])
            log.warning("console login failed", extra={"locked_seconds": round(lock)})
            return login_page(request, error="console.login_failed", status=401)
        await services.attempts.succeeded(keys[0])
        response = to_second_factor(services, token)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
        return response

    @router.post("/logout", dependencies=[Depends(require_same_origin)])
    async def logout(request: Request) -> Response:
        services = get_services(request)
        name = session_cookie_name(services)
        token = request.cookies.get(name)
        if token:
            async with transaction(services.sessions) as session:
                await end_session(session, token=token)
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(
            name, path="/", secure=services.settings.cookie_secure, httponly=True
        )
        return response

    @router.get("", response_class=HTMLResponse)
    async def console(request: Request) -> Response:
        login = await optional_login(request)
        if login is None:
            # A session waiting for its second factor is sent there; the page itself sends
            # anyone without a session on to the login.
            return RedirectResponse("/console/second-factor", status_code=303)
        counsellor, console_session = login
        return render(
            request,
            "console.html",
            counsellor=counsellor,
            csrf=console_session.csrf_token,
            labels=_labels(get_services(request).catalogue),
            outcomes=_outcome_choices(get_services(request).catalogue),
            needs=[(n, get_services(request).catalogue.text("de", f"need.{n}")) for n in NEEDS],
        )

    return router
