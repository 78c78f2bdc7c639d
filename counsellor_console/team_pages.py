"""The team lead's pages. /console/team: opening hours, the out-of-office text the bot adds
when nobody is there, the team's canned responses, and its members (invite by a one-time
link, end someone's access); admins choose any team with `?team=SLUG`. /console/statistics:
the monitoring dashboard (core/statistics.py), for leads and admins.

Server-rendered forms without script; each POST carries the session's CSRF token and passes the
same-origin check, then post/redirect/get. A refused form comes back with a message."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData

from core import canned
from core.crypto import constant_time_equal
from core.db import transaction
from core.hours import TIMEZONE, WEEKDAYS, InvalidHours
from core.models import ConsoleSession, Counsellor
from core.schemas import CannedCreate, TeamPublic, TeamSettings
from core.statistics import PeriodOverlaps, TableOut, UnknownPeriod, check_reader
from core.statistics import label as stats_label
from core.teams import (
    LEAD_ROLES,
    NotAllowed,
    TeamError,
    acting_in,
    change_team,
    create_team,
    end_membership,
    get_settings,
    list_members,
    list_teams,
    update_settings,
)
from core.web import integrity_hashes, require_same_origin
from counsellor_console.auth import (
    LEAD_INVITES,
    InvitationError,
    create_invitation,
    invitation_url,
)
from counsellor_console.deps import get_services, optional_login
from referral.records import FEDERAL_STATES

HERE = Path(__file__).parent
LANGUAGES = ("de", "en")


def hours_from_form(fields: dict[str, str]) -> dict[str, list[str]] | None:
    """ "09:00-13:00, 14:00-18:00" per weekday field; empty days are closed; no day at all
    means no hours set."""
    hours = {
        day: [span.strip() for span in fields.get(day, "").split(",") if span.strip()]
        for day in WEEKDAYS
    }
    return {day: spans for day, spans in hours.items() if spans} or None


def create_router() -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)
    templates = Jinja2Templates(directory=HERE / "templates")
    integrity = integrity_hashes(HERE / "static")

    async def lead(request: Request) -> tuple[Counsellor, ConsoleSession] | Response:
        """The lead's login; for an admin, in the team `?team=SLUG` names (their own without)."""
        login = await optional_login(request)
        if login is None:
            return RedirectResponse("/console/second-factor", status_code=303)
        slug = request.query_params.get("team")
        if login[0].role == "admin" and slug:
            chosen = next((t for t in await admin_teams(request) if t.slug == slug), None)
            if chosen is None:
                return render(request, login, "team.html", 404, forbidden=True, unknown=True)
            login = (acting_in(login[0], chosen.id), login[1])
        if login[0].role not in LEAD_ROLES or login[0].team_id is None:
            return render(request, login, "team.html", 403, forbidden=True)
        return login

    async def admin_teams(request: Request) -> list[TeamPublic]:
        return await list_teams(sessions=get_services(request).sessions)

    def back_to(request: Request, login: tuple[Counsellor, ConsoleSession], done: str) -> str:
        """Where a form's answer sends the browser: the same team's page again."""
        slug = request.query_params.get("team")
        team = f"&team={quote(slug)}" if login[0].role == "admin" and slug else ""
        return f"/console/team?done={done}{team}"

    def render(
        request: Request,
        login: tuple[Counsellor, ConsoleSession],
        name: str,
        status: int = 200,
        **context: object,
    ) -> Response:
        catalogue = get_services(request).catalogue
        context.update(
            t=lambda key: catalogue.text("de", key),
            sri=integrity,
            counsellor=login[0],
            csrf=login[1].csrf_token,
            weekdays=[
                (day, catalogue.text("de", f"weekday.{i}")) for i, day in enumerate(WEEKDAYS)
            ],
            languages=LANGUAGES,
            state_codes=FEDERAL_STATES,
        )
        return templates.TemplateResponse(request, name, context, status_code=status)

    async def page(
        request: Request,
        login: tuple[Counsellor, ConsoleSession],
        *,
        status: int = 200,
        error: str | None = None,
        hours_input: dict[str, str] | None = None,
        invitation: tuple[str, str, str] | None = None,
    ) -> Response:
        services = get_services(request)
        settings = await get_settings(sessions=services.sessions, counsellor=login[0])
        members = await list_members(sessions=services.sessions, lead=login[0])
        texts = await canned.list_for(
            sessions=services.sessions, counsellor=login[0], filled=False
        )
        shown_hours = hours_input or {
            day: ", ".join((settings.opening_hours or {}).get(day, [])) for day in WEEKDAYS
        }
        teams = await admin_teams(request) if login[0].role == "admin" else []
        current = next((t for t in teams if t.id == login[0].team_id), None)
        return render(
            request,
            login,
            "team.html",
            status,
            teams=teams,
            current_team=current,
            team_query=f"?team={quote(current.slug)}" if current else "",
            hours=shown_hours,
            away=settings.out_of_office,
            canned=texts,
            error=error,
            done=request.query_params.get("done"),
            members=members,
            invite_roles=LEAD_INVITES,
            invitation=invitation,
        )

    def checked(login: tuple[Counsellor, ConsoleSession], csrf: str) -> bool:
        return constant_time_equal(csrf, login[1].csrf_token)

    async def lead_form(
        request: Request, csrf: str
    ) -> tuple[Counsellor, ConsoleSession] | Response:
        """A lead's form post: the login, or the answer that refuses it (no lead, bad CSRF)."""
        login = await lead(request)
        if isinstance(login, Response):
            return login
        if not checked(login, csrf):
            return await page(request, login, status=403, error="curation.csrf_failed")
        return login

    @router.get("/team")
    async def team(request: Request) -> Response:
        login = await lead(request)
        return login if isinstance(login, Response) else await page(request, login)

    @router.post("/team/settings", dependencies=[Depends(require_same_origin)])
    async def save_settings(request: Request) -> Response:
        login = await lead(request)
        if isinstance(login, Response):
            return login
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not checked(login, form.get("csrf", "")):
            return await page(request, login, status=403, error="curation.csrf_failed")
        try:
            settings = TeamSettings(
                opening_hours=hours_from_form(form),
                out_of_office={lang: form.get(f"away_{lang}", "") for lang in LANGUAGES},
            )
            await update_settings(
                sessions=get_services(request).sessions, counsellor=login[0], settings=settings
            )
        except (InvalidHours, ValidationError):
            return await page(
                request, login, status=422, error="console.team.hours_invalid", hours_input=form
            )
        return RedirectResponse(back_to(request, login, "settings"), status_code=303)

    @router.post("/team/canned", dependencies=[Depends(require_same_origin)])
    async def save_canned(
        request: Request,
        csrf: Annotated[str, Form(max_length=100)],
        title: Annotated[str, Form(max_length=200)] = "",
        body: Annotated[str, Form(max_length=5000)] = "",
        language: Annotated[str, Form(max_length=8)] = "de",
        canned_id: Annotated[str, Form(max_length=40)] = "",
        delete: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        login = await lead_form(request, csrf)
        if isinstance(login, Response):
            return login
        services = get_services(request)
        try:
            target = uuid.UUID(canned_id) if canned_id else None
            if delete and target is not None:
                await canned.remove(
                    sessions=services.sessions, counsellor=login[0], canned_id=target
                )
            else:
                await canned.save(
                    sessions=services.sessions,
                    clock=services.clock,
                    counsellor=login[0],
                    data=CannedCreate(language=language, title=title, body=body),
                    canned_id=target,
                )
        except (ValueError, ValidationError, canned.CannedNotFound):
            return await page(request, login, status=422, error="console.team.canned_invalid")
        return RedirectResponse(back_to(request, login, "canned"), status_code=303)

    @router.post("/team/invite", dependencies=[Depends(require_same_origin)])
    async def invite(
        request: Request,
        csrf: Annotated[str, Form(max_length=100)],
        display_name: Annotated[str, Form(max_length=200)] = "",
        role: Annotated[str, Form(max_length=20)] = "counsellor",
    ) -> Response:
        """A one-time link for a new member of the lead's own team, shown once on the page
        that answers (no redirect: the link is in no URL and no later page)."""
        login = await lead_form(request, csrf)
        if isinstance(login, Response):
            return login
        services = get_services(request)
        name = display_name.strip()
        if not name or "\x00" in name or role not in LEAD_INVITES:
            return await page(request, login, status=422, error="console.team.invite_invalid")
        try:
            async with transaction(services.sessions) as session:
                token, expires_at = await create_invitation(
                    session,
                    creator=login[0],
                    role=role,
                    team_id=login[0].team_id,
                    display_name=name,
                    clock=services.clock,
                )
        except InvitationError:
            return await page(request, login, status=422, error="console.team.invite_invalid")
        url = invitation_url(str(request.base_url), token)
        until = expires_at.astimezone(TIMEZONE).strftime("%d.%m.%Y %H:%M")
        return await page(request, login, invitation=(name[:100], url, until))

    @router.post("/team/members/{member_id}/leave", dependencies=[Depends(require_same_origin)])
    async def end_access(
        request: Request,
        member_id: uuid.UUID,
        csrf: Annotated[str, Form(max_length=100)],
        confirm: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        login = await lead_form(request, csrf)
        if isinstance(login, Response):
            return login
        if confirm != "yes":
            return await page(request, login, status=422, error="console.team.end_unconfirmed")
        try:
            await end_membership(
                sessions=get_services(request).sessions, lead=login[0], member_id=member_id
            )
        except NotAllowed:
            return await page(request, login, status=403, error="console.team.end_invalid")
        return RedirectResponse(back_to(request, login, "left"), status_code=303)

    async def admin_form(
        request: Request,
    ) -> tuple[tuple[Counsellor, ConsoleSession], FormData] | Response:
        """An admin's team definition form: the login (in the chosen team) and the form, or
        the answer that refuses it."""
        login = await lead(request)
        if isinstance(login, Response):
            return login
        form = await request.form()
        if not checked(login, str(form.get("csrf", ""))):
            return await page(request, login, status=403, error="curation.csrf_failed")
        if login[0].role != "admin":
            return await page(request, login, status=403, error="console.team.admin_only")
        return login, form

    def definition(form: FormData) -> dict[str, Any]:
        languages = str(form.get("languages", ""))
        return {
            "name": str(form.get("name", "")),
            "federal_states": [str(v) for v in form.getlist("states")],
            "languages": [c.strip() for c in languages.split(",") if c.strip()],
        }

    @router.post("/team/definition", dependencies=[Depends(require_same_origin)])
    async def save_definition(request: Request) -> Response:
        """An admin changes the chosen team's name, states and languages (the routing)."""
        answer = await admin_form(request)
        if isinstance(answer, Response):
            return answer
        login, form = answer
        services = get_services(request)
        slug = next(t.slug for t in await admin_teams(request) if t.id == login[0].team_id)
        try:
            await change_team(sessions=services.sessions, slug=slug, **definition(form))
        except TeamError as error:
            return await page(request, login, status=422, error=f"console.team.error.{error.code}")
        return RedirectResponse(back_to(request, login, "definition"), status_code=303)

    @router.post("/team/create", dependencies=[Depends(require_same_origin)])
    async def create(request: Request) -> Response:
        """An admin adds a team; its page is shown next, to invite its first lead."""
        answer = await admin_form(request)
        if isinstance(answer, Response):
            return answer
        login, form = answer
        services = get_services(request)
        try:
            team = await create_team(
                sessions=services.sessions,
                clock=services.clock,
                slug=str(form.get("slug", "")).strip(),
                **definition(form),
            )
        except TeamError as error:
            return await page(request, login, status=422, error=f"console.team.error.{error.code}")
        return RedirectResponse(
            f"/console/team?done=created&team={quote(team.slug)}", status_code=303
        )

    @router.get("/statistics")
    async def statistics(request: Request, period: str | None = None) -> Response:
        login = await optional_login(request)
        if login is None:
            return RedirectResponse("/console/second-factor", status_code=303)
        try:
            check_reader(login[0])
        except NotAllowed:
            return render(request, login, "statistics.html", 403, forbidden=True)
        services = get_services(request)
        stats = services.statistics
        periods = await stats.periods()
        chosen = periods[0] if periods else None
        if period and periods:
            try:
                chosen = stats.parse(period)
            except UnknownPeriod:
                return render(request, login, "statistics.html", 404, missing=period)
        try:
            report = await stats.report(chosen) if chosen is not None else None
        except PeriodOverlaps:
            return render(request, login, "statistics.html", 409, overlap=True)
        catalogue = services.catalogue

        def name(dimension: str, value: str) -> str:
            return stats_label(catalogue, "de", dimension, value)

        return render(
            request,
            login,
            "statistics.html",
            current=stats.current().key,
            periods=[p.key for p in periods],
            report=report,
            charts={t.id: bar_chart(t) for t in report.tables} if report else {},
            trend=await stats.trend(periods[:8]),
            label=name,
        )

    return router


# In the chart's 960-unit width: labels up to 356, bars from 364, the figure after the bar.
BAR_WIDTH = 520


def bar_chart(table: TableOut) -> list[tuple[str, str, int]]:
    """(row value, display, bar length in px) per row total: a small count gets no bar, only
    its "<5" (the chart shows nothing the table does not)."""
    shown = [row.total.value for row in table.rows if row.total.value is not None]
    top = max(shown, default=0) or 1
    return [
        (
            row.value,
            row.total.display,
            round(BAR_WIDTH * row.total.value / top) if row.total.value is not None else 0,
        )
        for row in table.rows
    ]
