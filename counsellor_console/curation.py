"""Directory curation pages under /console/directory, for directory editors and admins: search,
edit, publish and check offers and prisons, with each record's change history.

Server-rendered forms without script (the CSP allows none inline). Each POST carries the
session's CSRF token as a hidden field and passes the same-origin check. Routes parse the form
and call directory.curation; after a change they rebuild the referral index so the bot sees it
at once, and redirect (post/redirect/get). A refused form is shown again with the editor's
input and a message next to each field.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Coroutine
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from core.crypto import constant_time_equal
from core.db import transaction
from core.i18n import Catalogue
from core.models import ConsoleSession, Counsellor
from core.web import integrity_hashes, require_same_origin
from counsellor_console.deps import get_services, optional_login
from directory import curation, freshness, vocab
from directory.curation import (
    EDITOR_ROLES,
    ChangePublic,
    CurationInvalid,
    NotFound,
    PrisonDetail,
    ServiceDetail,
    StatusFilter,
)
from referral.api import refresh_referral_index

HERE = Path(__file__).parent
PREFIX = "/console/directory"
PAGE_SIZE = 50
Action = Literal["save", "verify", "publish", "withdraw"]
Done = Literal["saved", "verified", "published", "withdrawn", "unchanged"]
# What each button does besides saving the form: (check date today?, publish?).
ACTIONS: dict[str, tuple[bool, bool | None]] = {
    "save": (False, None),
    "verify": (True, None),
    "publish": (False, True),
    "withdraw": (False, False),
}
DONE: dict[str, Done] = {
    "save": "saved",
    "verify": "verified",
    "publish": "published",
    "withdraw": "withdrawn",
}
SERVICE_TEXT_FIELDS = (
    "name",
    "description",
    "url",
    "email",
    "status",
    "eligibility_description",
    "coverage",
    "source",
)
SERVICE_LIST_FIELDS = ("target_groups", "needs", "delivery", "coverage_states")
VISIT_FIELDS = (
    "regular_times",
    "booking",
    "booking_lead_time",
    "children_rules",
    "family_rooms",
    "family_days",
    "video_visits",
    "special_visits_minors",
)
VISIT_FLAGS = ("family_rooms", "video_visits")
# The order of the fields on each form: the error summary lists problems in the same order.
SERVICE_FORM = (
    "form",
    "name",
    "description",
    "target_groups",
    "needs",
    "delivery",
    "languages",
    "coverage",
    "radius_km",
    "coverage_states",
    "minimum_age",
    "maximum_age",
    "eligibility_description",
    "url",
    "email",
    "phones",
    "status",
    "source",
)
PRISON_FORM = (
    "form",
    "name",
    "prison_types",
    "website",
    "phone",
    *(f"visit_{name}" for name in VISIT_FIELDS),
    "status",
    "source",
)
EditorLogin = tuple[Counsellor, ConsoleSession]


def in_form_order(errors: dict[str, str], order: tuple[str, ...]) -> dict[str, str]:
    return dict(sorted(errors.items(), key=lambda item: _position(order, item[0])))


def _position(order: tuple[str, ...], field: str) -> int:
    return order.index(field) if field in order else len(order)


class _LoginRequired(Exception):
    pass


class _Refused(Exception):
    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status, self.key = status, key


async def editor_login(request: Request) -> EditorLogin:
    login = await optional_login(request)
    if login is None:
        raise _LoginRequired()
    if login[0].role not in EDITOR_ROLES:
        raise _Refused(403, "curation.forbidden")
    return login


Editor = Annotated[EditorLogin, Depends(editor_login)]


async def checked_form(request: Request, login: EditorLogin) -> FormData:
    """The posted form, once the origin and the session's CSRF token have been checked."""
    try:
        require_same_origin(request)
    except HTTPException:
        raise _Refused(403, "curation.csrf_failed") from None
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not constant_time_equal(sent, login[1].csrf_token):
        raise _Refused(403, "curation.csrf_failed")
    return form


# -- form values: what the page shows, and what the schemas get --------------------------------


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _blank_none(value: str) -> str | None:
    return value or None


def _number(value: str) -> str | None:
    # German keyboards type "12,5".
    return value.replace(",", ".") or None


def _phone_text(detail: ServiceDetail) -> str:
    return "\n".join(
        f"{phone.number} | {phone.description}" if phone.description else phone.number
        for phone in detail.phones
    )


def _phone_lines(text: str) -> list[dict[str, str | None]]:
    """One number per line, optionally followed by "| description"."""
    lines = []
    for line in text.splitlines():
        number, _, description = line.partition("|")
        if number.strip() or description.strip():
            lines.append({"number": number.strip(), "description": description.strip() or None})
    return lines


def service_state(detail: ServiceDetail) -> dict[str, Any]:
    """The form's values for a stored service (strings and lists of codes)."""
    service = detail.service
    state: dict[str, Any] = {name: getattr(service, name) or "" for name in SERVICE_TEXT_FIELDS}
    state.update({name: list(getattr(service, name)) for name in SERVICE_LIST_FIELDS})
    for name in ("minimum_age", "maximum_age", "radius_km"):
        value = getattr(service, name)
        state[name] = "" if value is None else f"{value:g}"
    state["languages"] = ", ".join(service.languages)
    state["phones"] = _phone_text(detail)
    return state


def service_state_from_form(form: FormData) -> dict[str, Any]:
    state: dict[str, Any] = {name: _text(form, name) for name in SERVICE_TEXT_FIELDS}
    for name in ("minimum_age", "maximum_age", "radius_km", "languages", "phones"):
        state[name] = _text(form, name)
    for name in SERVICE_LIST_FIELDS:
        state[name] = [value for value in form.getlist(name) if isinstance(value, str)]
    return state


def service_raw(state: dict[str, Any]) -> dict[str, Any]:
    """Form state -> the values ServiceUpdate validates."""
    raw = {name: state[name] for name in (*SERVICE_TEXT_FIELDS, *SERVICE_LIST_FIELDS)}
    raw["coverage"] = _blank_none(state["coverage"])
    for name in ("minimum_age", "maximum_age", "radius_km"):
        raw[name] = _number(state[name])
    raw["languages"] = [code for code in re.split(r"[\s,;]+", state["languages"]) if code]
    raw["phones"] = _phone_lines(state["phones"])
    return raw


def _flag_text(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def prison_state(detail: PrisonDetail) -> dict[str, Any]:
    prison = detail.prison
    state: dict[str, Any] = {
        name: getattr(prison, name) or ""
        for name in ("name", "website", "phone", "source", "status")
    }
    state["prison_types"] = list(prison.prison_types)
    for name in VISIT_FIELDS:
        value = getattr(prison.visits, name)
        state[f"visit_{name}"] = _flag_text(value) if name in VISIT_FLAGS else value or ""
    return state


def prison_state_from_form(form: FormData) -> dict[str, Any]:
    state: dict[str, Any] = {
        name: _text(form, name) for name in ("name", "website", "phone", "source", "status")
    }
    state["prison_types"] = [v for v in form.getlist("prison_types") if isinstance(v, str)]
    for name in VISIT_FIELDS:
        state[f"visit_{name}"] = _text(form, f"visit_{name}")
    return state


def prison_raw(state: dict[str, Any]) -> dict[str, Any]:
    raw = {name: state[name] for name in ("name", "website", "phone", "source", "status")}
    raw["prison_types"] = state["prison_types"]
    visits: dict[str, Any] = {}
    for name in VISIT_FIELDS:
        value = state[f"visit_{name}"]
        # Unknown stays unknown: only an explicit yes or no becomes a fact.
        visits[name] = {"yes": True, "no": False}.get(value) if name in VISIT_FLAGS else value
    raw["visits"] = visits
    return raw


# -- history for display -----------------------------------------------------------------------


class Labels:
    """Display text for codes and field names, from the catalogue (German)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.known = catalogue.messages["de"]

    def t(self, key: str, **values: object) -> str:
        return self.catalogue.text("de", key, **values)

    def maybe(self, key: str, fallback: str) -> str:
        return self.t(key) if key in self.known else fallback

    def field(self, name: str) -> str:
        return self.maybe(f"curation.field.{name}", name)

    def code(self, field: str, code: str) -> str:
        if field == "coverage_states":
            return vocab.STATE_NAMES.get(code, code)
        prefix = {
            "target_groups": "curation.target_group",
            "needs": "need",
            "delivery": "curation.delivery",
            "coverage": "curation.coverage",
            "status": "curation.status",
            "publication_status": "curation.publication",
            "prison_types": "curation.prison_type",
        }.get(field)
        return self.maybe(f"{prefix}.{code.replace(' ', '_')}", code) if prefix else code

    def value(self, field: str, value: Any) -> str:
        """A history value as an editor reads it: "—" for nothing, dates in German."""
        if value in (None, "", []):
            return "—"
        if isinstance(value, bool):
            return self.t("curation.yes" if value else "curation.no")
        if isinstance(value, list):
            return "; ".join(self._item(field, item) for item in value)
        if field == "assured_date" and isinstance(value, str):
            return date.fromisoformat(value).strftime("%d.%m.%Y")
        return self.code(field, value) if isinstance(value, str) else str(value)

    def _item(self, field: str, item: Any) -> str:
        if isinstance(item, dict):
            text = str(item.get("number") or item.get("description") or item)
            if item.get("number") and item.get("description"):
                text += f" ({item['description']})"
            return text
        return self.code(field, str(item))

    def who(self, change: ChangePublic) -> str:
        if change.who:
            return change.who
        return self.maybe(f"curation.actor.{change.actor}", change.actor)

    def history(self, changes: list[ChangePublic]) -> list[dict[str, Any]]:
        return [
            {
                "who": self.who(change),
                "when": change.changed_at.astimezone(curation.local_zone()),
                "action": self.maybe(f"curation.action.{change.action}", change.action),
                # A created record lists everything it was created with: not a change to read.
                "fields": []
                if change.action == "create"
                else [
                    {
                        "label": self.field(item.field),
                        "old": self.value(item.field, item.old),
                        "new": self.value(item.field, item.new),
                    }
                    for item in change.changes
                ],
            }
            for change in changes
        ]


# -- the router --------------------------------------------------------------------------------


def create_router() -> APIRouter:
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["de_date"] = lambda value: value.strftime("%d.%m.%Y")
    templates.env.filters["de_datetime"] = lambda value: value.strftime("%d.%m.%Y, %H:%M")
    templates.env.globals["review_due"] = freshness.review_due
    templates.env.globals["review_months"] = freshness.REVIEW_AFTER_MONTHS
    integrity = integrity_hashes(HERE / "static")

    def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        labels = Labels(get_services(request).catalogue)
        context.update(t=labels.t, labels=labels, sri=integrity, prefix=PREFIX, vocab=vocab)
        return templates.TemplateResponse(request, name, context, status_code=status)

    class CurationRoute(APIRoute):
        """Answers refusals with a page (or the login redirect) instead of JSON."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except _LoginRequired:
                    return RedirectResponse("/console/login", status_code=303)
                except _Refused as refused:
                    return render(request, "curation_error.html", refused.status, key=refused.key)
                except NotFound:
                    return render(request, "curation_error.html", 404, key="curation.not_found")
                except RequestValidationError as error:
                    # A malformed id names no record; a malformed filter is a bad request.
                    in_path = any(e.get("loc", ("",))[0] == "path" for e in error.errors())
                    status, key = (404, "not_found") if in_path else (400, "bad_request")
                    return render(request, "curation_error.html", status, key=f"curation.{key}")

            return route

    router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=CurationRoute)

    @router.get("")
    async def services_list(
        request: Request,
        login: Editor,
        q: Annotated[str, Query(max_length=200)] = "",
        status: StatusFilter = "all",
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    ) -> Response:
        services = get_services(request)
        async with services.sessions() as session:
            found = await curation.search_services(
                session,
                query=q,
                status_filter=status,
                today=curation.local_today(services.clock),
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
            )
        return render(
            request,
            "curation_services.html",
            counsellor=login[0],
            section="services",
            found=found,
            q=q,
            status_filter=status,
            page=page,
        )

    @router.get("/review")
    async def review_list(request: Request, login: Editor) -> Response:
        """Offers and prisons not checked for more than twelve months, oldest first."""
        services = get_services(request)
        async with services.sessions() as session:
            overdue = await freshness.overdue_records(session, clock=services.clock)
        return render(
            request,
            "curation_review.html",
            counsellor=login[0],
            section="review",
            overdue=overdue,
            services_count=sum(item.kind == "service" for item in overdue),
            prisons_count=sum(item.kind == "prison" for item in overdue),
        )

    @router.get("/services/{service_id}")
    async def service_page(
        request: Request, service_id: uuid.UUID, login: Editor, done: Done | None = None
    ) -> Response:
        return await _service_page(request, service_id, login, done=done)

    @router.post("/services/{service_id}")
    async def service_save(request: Request, service_id: uuid.UUID, login: Editor) -> Response:
        form = await checked_form(request, login)
        action = _action(form)
        verified, published = ACTIONS[action]
        state = service_state_from_form(form)
        services = get_services(request)
        try:
            async with transaction(services.sessions) as session:
                changed = await curation.update_service(
                    session,
                    service_id=service_id,
                    changes=curation.parse_service_update(service_raw(state)),
                    editor=login[0],
                    clock=services.clock,
                    verified=verified,
                    published=published,
                    version=_text(form, "version") or None,
                )
        except CurationInvalid as invalid:
            errors = in_form_order(invalid.messages(services.catalogue), SERVICE_FORM)
            return await _service_page(request, service_id, login, state=state, errors=errors)
        return await _after_save(request, f"/services/{service_id}", action, changed)

    @router.get("/prisons")
    async def prisons_list(
        request: Request,
        login: Editor,
        q: Annotated[str, Query(max_length=200)] = "",
        status: StatusFilter = "all",
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    ) -> Response:
        services = get_services(request)
        async with services.sessions() as session:
            found = await curation.search_prisons(
                session,
                query=q,
                status_filter=status,
                today=curation.local_today(services.clock),
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
            )
        return render(
            request,
            "curation_prisons.html",
            counsellor=login[0],
            section="prisons",
            found=found,
            q=q,
            status_filter=status,
            page=page,
        )

    @router.get("/prisons/{prison_id}")
    async def prison_page(
        request: Request, prison_id: uuid.UUID, login: Editor, done: Done | None = None
    ) -> Response:
        return await _prison_page(request, prison_id, login, done=done)

    @router.post("/prisons/{prison_id}")
    async def prison_save(request: Request, prison_id: uuid.UUID, login: Editor) -> Response:
        form = await checked_form(request, login)
        action = _action(form)
        verified, published = ACTIONS[action]
        state = prison_state_from_form(form)
        services = get_services(request)
        try:
            async with transaction(services.sessions) as session:
                changed = await curation.update_prison(
                    session,
                    prison_id=prison_id,
                    changes=curation.parse_prison_update(prison_raw(state)),
                    editor=login[0],
                    clock=services.clock,
                    verified=verified,
                    published=published,
                    version=_text(form, "version") or None,
                )
        except CurationInvalid as invalid:
            errors = in_form_order(invalid.messages(services.catalogue), PRISON_FORM)
            return await _prison_page(request, prison_id, login, state=state, errors=errors)
        return await _after_save(request, f"/prisons/{prison_id}", action, changed)

    def _action(form: FormData) -> Action:
        action = _text(form, "action") or "save"
        if action not in ACTIONS:
            raise _Refused(400, "curation.bad_request")
        return action  # type: ignore[return-value]

    async def _after_save(request: Request, path: str, action: str, changed: bool) -> Response:
        if changed:
            # The bot ranks from an in-memory index: rebuild it so the change counts at once.
            await refresh_referral_index(get_services(request))
        done = DONE[action] if changed else "unchanged"
        return RedirectResponse(f"{PREFIX}{path}?done={done}", status_code=303)

    async def _service_page(
        request: Request,
        service_id: uuid.UUID,
        login: EditorLogin,
        *,
        state: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        done: str | None = None,
    ) -> Response:
        services = get_services(request)
        async with services.sessions() as session:
            detail = await curation.get_service(
                session, service_id=service_id, today=curation.local_today(services.clock)
            )
            changes = await curation.history(session, entity_type="service", entity_id=service_id)
        return render(
            request,
            "curation_service.html",
            422 if errors else 200,
            counsellor=login[0],
            csrf=login[1].csrf_token,
            section="services",
            detail=detail,
            state=state or service_state(detail),
            errors=errors or {},
            done=done,
            history=Labels(services.catalogue).history(changes),
        )

    async def _prison_page(
        request: Request,
        prison_id: uuid.UUID,
        login: EditorLogin,
        *,
        state: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        done: str | None = None,
    ) -> Response:
        services = get_services(request)
        async with services.sessions() as session:
            detail = await curation.get_prison(
                session, prison_id=prison_id, today=curation.local_today(services.clock)
            )
            changes = await curation.history(session, entity_type="prison", entity_id=prison_id)
        return render(
            request,
            "curation_prison.html",
            422 if errors else 200,
            counsellor=login[0],
            csrf=login[1].csrf_token,
            section="prisons",
            detail=detail,
            state=state or prison_state(detail),
            errors=errors or {},
            done=done,
            history=Labels(services.catalogue).history(changes),
        )

    return router


__all__ = ["PREFIX", "create_router"]
