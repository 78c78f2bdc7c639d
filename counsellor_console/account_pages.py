"""Pages that make and secure an account: the second factor after the password (set up once
with recovery codes, then asked at every login), the one-time invitation link, and the
account page where a counsellor changes their password."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from core import crypto
from core.crypto import constant_time_equal, new_token
from core.db import transaction
from core.models import ConsoleSession, Counsellor, Invitation
from core.ratelimit import attempt_key
from core.web import integrity_hashes, require_same_origin
from counsellor_console.auth import (
    InvitationError,
    PasswordChangeError,
    SecondFactorError,
    change_password,
    confirm_totp_setup,
    open_invitation,
    pending_totp_secret,
    redeem_invitation,
    resolve_session,
    start_session,
    verify_second_factor,
)
from counsellor_console.deps import (
    get_services,
    optional_login,
    second_factor_keys,
    session_cookie_name,
    session_policy,
    to_second_factor,
)

HERE = Path(__file__).parent
INVITE_CSRF_COOKIE = "lotse_invite_csrf"


def qr_svg(uri: str) -> Markup:
    """The otpauth link as a QR code, inline SVG drawn with attributes only (the CSP allows no
    inline style), dark on white with the quiet zone so phone cameras read it."""
    code = segno.make(uri, error="m")
    # Markup: segno writes only path data and these fixed attributes, nothing of the input.
    svg = code.svg_inline(scale=5, dark="#000", light="#fff", svgclass="qr")
    return Markup(svg)  # noqa: S704


def create_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")
    integrity = integrity_hashes(HERE / "static")

    def render(request: Request, name: str, status: int = 200, **context: object) -> Response:
        catalogue = get_services(request).catalogue
        context.update(t=lambda key: catalogue.text("de", key), sri=integrity)
        return templates.TemplateResponse(request, name, context, status_code=status)

    async def second_factor_page(request: Request, *, error: str | None, status: int) -> Response:
        services = get_services(request)
        token = request.cookies.get(session_cookie_name(services), "")
        async with transaction(services.sessions) as session:
            login = token and await resolve_session(
                session,
                token=token,
                clock=services.clock,
                policy=session_policy(services),
                require_mfa=False,
            )
            if not login:
                return RedirectResponse("/console/login", status_code=303)
            counsellor, row = login
            if row.mfa_passed:
                return RedirectResponse("/console", status_code=303)
            secret = uri = qr = None
            if counsellor.totp_secret_sealed is None:
                secret = pending_totp_secret(
                    row=row, counsellor=counsellor, keys=second_factor_keys(services)
                )
                uri = crypto.otpauth_uri(secret=secret, account=counsellor.login)
                qr = qr_svg(uri)
            csrf = row.csrf_token
        return render(
            request,
            "second_factor.html",
            status,
            csrf=csrf,
            secret=secret,
            uri=uri,
            qr=qr,
            error=error,
        )

    @router.get("/second-factor")
    async def second_factor_form(request: Request) -> Response:
        return await second_factor_page(request, error=None, status=200)

    @router.post("/second-factor", dependencies=[Depends(require_same_origin)])
    async def second_factor(
        request: Request,
        code: Annotated[str, Form(max_length=20)],
        csrf: Annotated[str, Form(max_length=100)],
    ) -> Response:
        services = get_services(request)
        keys = second_factor_keys(services)
        token = request.cookies.get(session_cookie_name(services), "")
        codes: list[str] | None = None
        async with transaction(services.sessions) as session:
            login = token and await resolve_session(
                session,
                token=token,
                clock=services.clock,
                policy=session_policy(services),
                require_mfa=False,
            )
            if not login:
                return RedirectResponse("/console/login", status_code=303)
            counsellor, row = login
            if not constant_time_equal(csrf, row.csrf_token):
                raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
            limit_key = attempt_key(keys.pepper, "second-factor", str(counsellor.id))
            wait = await services.attempts.blocked_for(limit_key)
            if wait <= 0:
                try:
                    if counsellor.totp_secret_sealed is None:
                        codes = confirm_totp_setup(
                            row=row,
                            counsellor=counsellor,
                            keys=keys,
                            code=code,
                            at=services.clock.now(),
                        )
                    else:
                        verify_second_factor(
                            row=row,
                            counsellor=counsellor,
                            keys=keys,
                            code=code,
                            at=services.clock.now(),
                        )
                except SecondFactorError:
                    await services.attempts.failed(limit_key)
                    passed = False
                else:
                    await services.attempts.succeeded(limit_key)
                    passed = True
        if wait > 0:
            response = await second_factor_page(
                request, error="console.too_many_attempts", status=429
            )
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        if not passed:
            return await second_factor_page(request, error="console.mfa.wrong", status=401)
        if codes is not None:
            return render(request, "recovery_codes.html", codes=codes)
        return RedirectResponse("/console", status_code=303)

    @router.get("/invite/{token}")
    async def invitation_form(request: Request, token: str) -> Response:
        services = get_services(request)
        async with services.sessions() as session:
            try:
                invitation = await open_invitation(session, token=token, clock=services.clock)
            except InvitationError as error:
                return render(
                    request, "invite.html", 404, invalid=services.catalogue.text("de", error.key)
                )
            name = invitation.display_name
        csrf = new_token()
        response = render(
            request, "invite.html", token=token, display_name=name, csrf=csrf, login=""
        )
        response.set_cookie(
            INVITE_CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=services.settings.cookie_secure,
            path="/console",
        )
        return response

    @router.post("/invite/{token}", dependencies=[Depends(require_same_origin)])
    async def redeem(
        request: Request,
        token: str,
        login: Annotated[str, Form(max_length=100)],
        password: Annotated[str, Form(max_length=200)],
        password2: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form(max_length=100)],
    ) -> Response:
        services = get_services(request)
        cookie = request.cookies.get(INVITE_CSRF_COOKIE, "")
        if not cookie or not constant_time_equal(cookie, csrf):
            raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
        error_key = "console.invite.error.mismatch" if password != password2 else None
        if error_key is None:
            try:
                async with transaction(services.sessions) as session:
                    counsellor = await redeem_invitation(
                        session, token=token, login=login, password=password, clock=services.clock
                    )
                    session_token, _ = await start_session(
                        session, counsellor=counsellor, clock=services.clock
                    )
            except InvitationError as error:
                error_key = error.key
        if error_key is not None:
            async with services.sessions() as session:
                invitation = await session.get(Invitation, crypto.token_digest(token))
            if invitation is None:
                return render(
                    request, "invite.html", 404, invalid=services.catalogue.text("de", error_key)
                )
            return render(
                request,
                "invite.html",
                422,
                token=token,
                display_name=invitation.display_name,
                csrf=csrf,
                login=login,
                error=services.catalogue.text("de", error_key),
            )
        response = to_second_factor(services, session_token)
        response.delete_cookie(INVITE_CSRF_COOKIE, path="/console")
        return response

    async def account_page(
        request: Request,
        login: tuple[Counsellor, ConsoleSession],
        *,
        status: int = 200,
        error: str | None = None,
    ) -> Response:
        return render(
            request,
            "account.html",
            status,
            counsellor=login[0],
            csrf=login[1].csrf_token,
            error=error,
            done=request.query_params.get("done"),
        )

    @router.get("/account")
    async def account(request: Request) -> Response:
        login = await optional_login(request)
        if login is None:
            return RedirectResponse("/console/second-factor", status_code=303)
        return await account_page(request, login)

    @router.post("/account/password", dependencies=[Depends(require_same_origin)])
    async def password(
        request: Request,
        current: Annotated[str, Form(max_length=200)],
        new: Annotated[str, Form(max_length=200)],
        repeat: Annotated[str, Form(max_length=200)],
        csrf: Annotated[str, Form(max_length=100)],
    ) -> Response:
        services = get_services(request)
        login = await optional_login(request)
        if login is None:
            return RedirectResponse("/console/second-factor", status_code=303)
        if not constant_time_equal(csrf, login[1].csrf_token):
            raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
        # Guessing the current password here is limited like guessing it at the login.
        limit_key = attempt_key(second_factor_keys(services).pepper, "password", str(login[0].id))
        wait = await services.attempts.blocked_for(limit_key)
        if wait > 0:
            response = await account_page(
                request, login, status=429, error="console.too_many_attempts"
            )
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        try:
            async with transaction(services.sessions) as session:
                await change_password(
                    session,
                    counsellor_id=login[0].id,
                    current=current,
                    new=new,
                    repeat=repeat,
                    keep_session=login[1].token_hash,
                )
        except PasswordChangeError as error:
            if str(error) == "console.account.error.current":
                await services.attempts.failed(limit_key)
            return await account_page(request, login, status=422, error=str(error))
        await services.attempts.succeeded(limit_key)
        return RedirectResponse("/console/account?done=password", status_code=303)

    return router
