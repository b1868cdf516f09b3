"""The console's pages: each a thin handler over the application layer, rendered on the server.

Every page but ``/login`` and ``/health`` needs a session; every query and action goes
through ``closedloop.streams.app`` with the signed-in account as the caller, so an alert or a
subject of another district is "not found" (404) by the same SQL the command line runs.
Handlers that read or write the ledger are plain functions: Starlette runs them in its thread
pool, so the application layer's synchronous SQLAlchemy calls never block the event loop.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from closedloop.schemas.identifiers import contains_raw, loggable
from closedloop.schemas.policy import Policy
from closedloop.streams.app import actions, alerts, catchup, reports, timeline, today
from closedloop.streams.app.caller import Caller
from closedloop.streams.console import accounts, charts, i18n, security
from closedloop.streams.ledger import formats
from closedloop.streams.ledger.migrate import current_revision

__all__ = ["PAGE_SIZE", "Settings", "create_app"]

HERE: Final = Path(__file__).parent
PAGE_SIZE: Final = 50
COUNT_LIMIT: Final = 10_000
"""A list counts its matches up to this many, then says "more than": counting every match of
a ledger of millions on each page would cost more than the page itself."""
CSV_LIMIT: Final = 100_000
CSV_COLUMNS: Final = ("alert_id", "kind", "subject", "district", "due_at", "raised_at", "state",
                      "level", "assignee", "last_action", "last_by", "note")
STATUS: Final = ("open", "all", "raised", "acknowledged", "resolved", "caught_up")
SORTS: Final = ("newest", "severity", "due")
TREND_DAYS: Final = 14

SECURITY_HEADERS: Final = (
    (b"content-security-policy",
     b"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)
"""No script may run on any page (the console has none), nothing loads from elsewhere, no
other site may frame it, and pages holding personal data are not cached."""


@dataclass(frozen=True)
class Settings:
    """How the console runs. ``secret`` signs its cookies (sessions survive a restart only if
    it is kept, e.g. in ``$CLOSEDLOOP_CONSOLE_SECRET``); ``secure_cookies`` when it is
    served over HTTPS (behind a TLS proxy): cookies then carry ``Secure`` and the
    ``__Host-`` prefix."""

    engine: Engine
    policy: Policy
    secret: bytes
    secure_cookies: bool = False
    via: str = "ledger"
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


class PageError(Exception):
    """An answer other than the page: ``status`` and a text for people."""

    def __init__(self, status: int, key: str, **values: object) -> None:
        super().__init__(key)
        self.status, self.key, self.values = status, key, values


@dataclass
class Visit:
    """One request as the pages see it: language, who is signed in, the CSRF token of its
    forms, and the cookies to set on the answer."""

    request: Request
    settings: Settings
    lang: str
    caller: Caller | None
    csrf: str
    session_token: str | None
    set_cookies: list[tuple[str, str, int | None]] = field(default_factory=list)
    flash: list[str] = field(default_factory=list)

    def t(self, key: str, **values: object) -> str:
        return i18n.text(self.lang, key, **values)

    def markup(self, key: str, **values: object) -> Markup:
        """The text of ``key`` with ``values`` put in as markup: escaped, unless they are
        Markup already (e.g. a ``<code>`` the page builds)."""
        english, chinese = i18n.MESSAGES[key]
        return Markup(escape(chinese if self.lang == "zh" else english)).format(**values)


def _cookie_names(secure: bool) -> dict[str, str]:
    prefix = "__Host-" if secure else ""
    return {name: f"{prefix}closedloop_{name}" for name in ("session", "pre", "lang", "flash")}


def create_app(settings: Settings) -> Starlette:
    """The console as an ASGI application on ``settings.engine``."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True,
                      # a name the page does not have is an error, never an empty cell
                      undefined=StrictUndefined)
    names = _cookie_names(settings.secure_cookies)
    secret = settings.secret

    def visit(request: Request) -> Visit:
        lang = i18n.choose(request.cookies.get(names["lang"]),
                           request.headers.get("accept-language"))
        token = security.unsign(secret, "session", request.cookies.get(names["session"]))
        caller = None
        if token is not None:
            with settings.engine.connect() as connection:
                caller = accounts.signed_in(connection, token, now=settings.now())
        if caller is None:
            token = None
        pre = security.unsign(secret, "pre", request.cookies.get(names["pre"]))
        v = Visit(request, settings, lang, caller, "", token)
        if token is None and pre is None:
            pre = security.new_token()
            v.set_cookies.append((names["pre"], security.sign(secret, "pre", pre), None))
        v.csrf = security.csrf_token(secret, token or pre or "")
        flash = security.unsign(secret, "flash", request.cookies.get(names["flash"]))
        if flash:
            try:
                v.flash = [str(line) for line in json.loads(unquote(flash))][:20]
            except ValueError:
                v.flash = []
            v.set_cookies.append((names["flash"], "", 0))
        return v

    def render(v: Visit, template: str, status: int = 200, **context: Any) -> Response:
        page = env.get_template(template).render(
            v=v, t=v.t, lang=v.lang, caller=v.caller, csrf=v.csrf, path=v.request.url.path,
            here=_here(v.request), kind=lambda k: i18n.kind_name(v.lang, k),
            n=i18n.number, at=lambda d: i18n.instant(d, settings.policy.zone),
            role=lambda r: v.t(f"role.{r}"), tm=v.markup, code=_code, **context)
        return _finish(v, HTMLResponse(page, status_code=status))

    def _finish(v: Visit, response: Response) -> Response:
        for name, value, age in v.set_cookies:
            response.set_cookie(name, value, max_age=age, path="/", httponly=True,
                                samesite="lax", secure=settings.secure_cookies)
        return response

    def error(v: Visit, exc: PageError) -> Response:
        values = dict(exc.values)
        if f"field.{values.get('field')}" in i18n.MESSAGES:  # a filter's name, in words
            values["field"] = v.t(f"field.{values['field']}")
        return render(v, "error.html", status=exc.status, message=v.t(exc.key, **values))

    def page(need: str = "reader") -> Callable[[Callable[..., Response]],
                                                Callable[[Request], Awaitable[Response]]]:
        """A page handler: ``need`` is ``none`` (anyone), ``reader`` (signed in) or
        ``actor`` (an operator or admin). The handler runs in the thread pool with the visit
        and, for a POST, the form whose CSRF token was checked."""
        def wrap(handler: Callable[..., Response]) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                form = await request.form() if request.method == "POST" else None
                return await run_in_threadpool(run, request, form)

            def run(request: Request, form: FormData | None) -> Response:
                v = visit(request)
                try:
                    if form is not None and not security.same(str(form.get("csrf") or ""),
                                                              v.csrf):
                        raise PageError(403, "error.403")
                    if need != "none" and v.caller is None:
                        if request.method == "POST":
                            raise PageError(403, "error.403")
                        target = "/login?" + urlencode({"next": _here(request)})
                        return _finish(v, RedirectResponse(target, status_code=303))
                    if need == "actor" and v.caller is not None and not v.caller.may_act():
                        raise PageError(403, "error.403_role")
                    return handler(v, form) if form is not None else handler(v)
                except PageError as exc:
                    return error(v, exc)

            endpoint.__name__ = handler.__name__
            return endpoint
        return wrap

    def redirect(v: Visit, target: str, flash: Sequence[str] = ()) -> Response:
        if flash:
            value = quote(json.dumps(list(flash), ensure_ascii=False))
            v.set_cookies.append((names["flash"], security.sign(secret, "flash", value), 60))
        return _finish(v, RedirectResponse(target, status_code=303))

    # --- signing in and out, language ---------------------------------------------------

    @page("none")
    def login_form(v: Visit) -> Response:
        if v.caller is not None:
            return redirect(v, _safe_next(v.request.query_params.get("next")))
        return render(v, "login.html", next=_safe_next(v.request.query_params.get("next")),
                      message=None)

    @page("none")
    def login(v: Visit, form: FormData) -> Response:
        target = _safe_next(str(form.get("next") or ""))
        address = v.request.client.host if v.request.client else "unknown"
        try:
            session = accounts.sign_in(settings.engine, str(form.get("username") or ""),
                                       str(form.get("password") or ""), address,
                                       now=settings.now())
        except accounts.SignInRefused as exc:
            if exc.until is not None:
                message = v.t("login.locked", until=i18n.instant(exc.until,
                                                                 settings.policy.zone))
                return render(v, "login.html", status=429, next=target, message=message)
            return render(v, "login.html", status=401, next=target,
                          message=v.t("login.failed"))
        v.set_cookies.append((names["session"], security.sign(secret, "session",
                                                              session.token), None))
        v.set_cookies.append((names["pre"], "", 0))
        return redirect(v, target)

    @page("none")
    def logout(v: Visit, form: FormData) -> Response:
        if v.session_token is not None:
            with settings.engine.begin() as connection:
                accounts.sign_out(connection, v.session_token)
        v.set_cookies.append((names["session"], "", 0))
        return redirect(v, "/login")

    @page("none")
    def language(v: Visit, form: FormData) -> Response:
        lang = str(form.get("lang") or "")
        if lang not in i18n.LANGS:
            raise PageError(400, "error.400", detail="lang")
        v.set_cookies.append((names["lang"], lang, 365 * 24 * 3600))
        return redirect(v, _safe_next(str(form.get("next") or "")))

    # --- pages ----------------------------------------------------------------------------

    @page()
    def home(v: Visit) -> Response:
        return redirect(v, "/today")

    @page()
    def today_page(v: Visit) -> Response:
        assert v.caller is not None
        with settings.engine.connect() as connection:
            board = today.board(connection, v.caller, settings.policy, days=TREND_DAYS)
        ranked = [row["district"] for row in board.rows if row["district"] in board.trend]
        sparks = {district: charts.spark(board.trend[district], v.lang, title=v.t(
                      "today.trend", days=TREND_DAYS) + f" — {district}")
                  for district in [*ranked, *sorted(set(board.trend) - set(ranked))]}
        return render(v, "today.html", board=board, sparks=sparks, days=TREND_DAYS,
                      severities=today.SEVERITIES, supervision=today.SUPERVISION,
                      cutoff=i18n.instant(board.cutoff, settings.policy.zone)
                      if board.cutoff else None)

    def listing(v: Visit, *, paged: bool, limit: int) -> tuple[_AlertQuery, alerts.AlertPage]:
        """The alerts the query string asks for: its page of them (``paged``) or from the
        first, at most ``limit``, counted up to what is shown ("more than" beyond)."""
        assert v.caller is not None
        query = _AlertQuery.parse(v.request.query_params, settings.policy)
        offset = (query.page - 1) * PAGE_SIZE if paged else 0
        with settings.engine.connect() as connection:
            _check(connection, v.caller, query.wanted)
            listed = alerts.list_alerts(connection, v.caller, query.wanted, sort=query.sort,
                                        offset=offset, limit=limit,
                                        count_limit=COUNT_LIMIT if paged else limit)
        return query, listed

    @page()
    def alerts_page(v: Visit) -> Response:
        assert v.caller is not None
        query, listed = listing(v, paged=True, limit=PAGE_SIZE)
        with settings.engine.connect() as connection:
            known = {name: alerts.known_values(connection, v.caller, name)
                     for name in ("kind", "district")}
            # the rounds with a report: reading every round_missed alert's details for the
            # few rounds only alerts name would cost more than the page
            known["round"] = alerts.reported_rounds(connection)
            assignees = _assignees(connection, v.caller)
        first = (query.page - 1) * PAGE_SIZE + 1
        return render(v, "alerts.html", q=query, listed=listed, known=known,
                      first=first, last=first + len(listed.rows) - 1,
                      has_next=first - 1 + len(listed.rows) < listed.total or listed.more,
                      csv=f"/alerts.csv?{query.urlencode()}", prev_page=query.link(-1),
                      next_page=query.link(+1), statuses=STATUS, sorts=SORTS,
                      assignees=assignees,
                      via=v.t("via." + settings.via))

    @page()
    def alerts_csv(v: Visit) -> Response:
        _, listed = listing(v, paged=False, limit=CSV_LIMIT)
        if listed.more:
            raise PageError(400, "alerts.csv_too_many", limit=i18n.number(CSV_LIMIT))
        out = io.BytesIO()
        formats.write_csv(listed.rows, CSV_COLUMNS, out, settings.policy.zone,
                          fields=CSV_COLUMNS, lang=v.lang)
        return _finish(v, _download(out.getvalue(), "alerts.csv", "text/csv; charset=utf-8"))

    @page()
    def alert_page(v: Visit) -> Response:
        assert v.caller is not None
        alert_id = v.request.path_params["alert_id"]
        with settings.engine.connect() as connection:
            found = alerts.find_alert(connection, v.caller, alert_id)
            assignees = _assignees(connection, v.caller)
        if found is None:
            raise PageError(404, "error.404_alert", alert_id=loggable(alert_id))
        details = json.dumps(found["details"] or {}, ensure_ascii=False, indent=2,
                             sort_keys=True)
        return render(v, "alert.html", a=found, details=details, assignees=assignees,
                      closed=found["state"] not in alerts.OPEN,
                      via=v.t("via." + settings.via))

    @page("actor")
    def act(v: Visit, form: FormData) -> Response:
        assert v.caller is not None
        back = _safe_next(str(form.get("back") or ""), default="/alerts")
        ids = [str(value) for value in form.getlist("alert_id") if str(value)]
        if not ids:
            return redirect(v, back, [v.t("flash.none_selected")])
        action = str(form.get("action") or "")
        note = str(form.get("note") or "").strip() or None
        assignee = str(form.get("assignee") or "").strip() or None
        if action != "assign":
            assignee = None
        requests = [actions.ActionRequest(alert_id, action, note=note, assignee=assignee)
                    for alert_id in ids[:PAGE_SIZE * 4]]
        results = actions.act_many(settings.engine, v.caller, requests, via=settings.via,
                                   kafka=None)
        done = [r for r in results if isinstance(r, actions.ActionResult)]
        lines = []
        if done:
            lines.append(v.t("flash.done", action=v.t(f"action.{action}"), count=len(done)))
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, actions.ActionError):
                lines.append(v.t("flash.refused", alert=loggable(request.alert_id),
                                 reason=_reason(v, result)))
        return redirect(v, back, lines)

    @page()
    def rounds_page(v: Visit) -> Response:
        assert v.caller is not None
        with settings.engine.connect() as connection:
            found = reports.rounds(connection, v.caller)
        return render(v, "rounds.html", rounds=found)

    def _round(v: Visit, pending: bool) -> tuple[str, Any, list[catchup.GridList]]:
        assert v.caller is not None
        round_id = v.request.path_params["round_id"]
        with settings.engine.connect() as connection:
            try:
                table = reports.round_table(connection, v.caller, round_id)
            except reports.NoReport:
                table = None
            grids = catchup.catchup_list(connection, v.caller, (round_id,), pending=pending)
            if table is None and not grids and round_id not in alerts.known_values(
                    connection, v.caller, "round"):
                raise PageError(404, "error.404_round", round_id=loggable(round_id))
        return round_id, table, grids

    @page()
    def round_page(v: Visit) -> Response:
        assert v.caller is not None
        pending = v.request.query_params.get("all") != "1"
        round_id, table, grids = _round(v, pending)
        with settings.engine.connect() as connection:
            coverage = reports.round_coverage(connection, v.caller, round_id)
        series = {district: [(at, share) for at, _, share in points]
                  for district, points in coverage.items()}
        chart = charts.lines(series, v.lang, settings.policy.zone, title=v.t("round.chart"))
        return render(v, "round.html", round_id=round_id, table=table, grids=grids,
                      pending=pending, chart=chart,
                      as_of=i18n.instant(table.as_of, settings.policy.zone) if table else None)

    def catchup_download(v: Visit, kind: str) -> Response:
        pending = v.request.query_params.get("all") != "1"
        round_id, _, grids = _round(v, pending)
        out = io.BytesIO()
        zone = settings.policy.zone
        rows = [row for grid in grids for row in grid.rows]
        stem = "catch-up-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in round_id)
        if kind == "csv":
            formats.write_csv(rows, catchup.COLUMNS, out, zone, fields=catchup.COLUMNS,
                              lang=v.lang)
            return _finish(v, _download(out.getvalue(), f"{stem}.csv",
                                        "text/csv; charset=utf-8"))
        formats.write_xlsx(catchup.sheets(grids), catchup.COLUMNS, out, zone, lang=v.lang)
        return _finish(v, _download(
            out.getvalue(), f"{stem}.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))

    @page()
    def catchup_csv(v: Visit) -> Response:
        return catchup_download(v, "csv")

    @page()
    def catchup_xlsx(v: Visit) -> Response:
        return catchup_download(v, "xlsx")

    @page()
    def timeline_search(v: Visit) -> Response:
        subject = (v.request.query_params.get("subject") or "").strip()
        if not subject:
            return redirect(v, "/today")
        if contains_raw(subject):
            raise PageError(404, "error.raw_id")
        return redirect(v, "/timeline/" + quote(subject, safe=":"))

    @page()
    def timeline_page(v: Visit) -> Response:
        assert v.caller is not None
        subject = v.request.path_params["subject"]
        if contains_raw(subject):  # never looked up, never kept in the audit
            raise PageError(404, "error.raw_id")
        with settings.engine.begin() as connection:
            entries = timeline.view(connection, v.caller, subject, settings.policy.zone,
                                    via="console", at=settings.now())
        if not entries:
            raise PageError(404, "error.404_subject", subject=subject)
        shown = [(entry, _entry_text(v, entry)) for entry in entries]
        return render(v, "timeline.html", subject=subject, entries=shown)

    def health(request: Request) -> Response:
        """For a load balancer or a probe: no session, no data, the ledger reachable."""
        try:
            revision = current_revision(settings.engine)
        except Exception:  # the answer says unavailable; the details stay in the server
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", "ledger_revision": revision})

    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/lang", language, methods=["POST"]),
        Route("/today", today_page),
        Route("/alerts", alerts_page),
        Route("/alerts.csv", alerts_csv),
        Route("/alerts/act", act, methods=["POST"]),
        Route("/alerts/{alert_id}", alert_page),
        Route("/rounds", rounds_page),
        Route("/rounds/{round_id}", round_page),
        Route("/rounds/{round_id}/catch-up.csv", catchup_csv),
        Route("/rounds/{round_id}/catch-up.xlsx", catchup_xlsx),
        Route("/timeline", timeline_search),
        Route("/timeline/{subject}", timeline_page),
        Route("/health", run_in_thread(health)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return await run_in_threadpool(lambda: error(visit(request), PageError(404,
                                                                              "error.404")))

    app = Starlette(routes=routes, exception_handlers={404: not_found})
    app.add_middleware(_SecurityHeaders)
    return app


def run_in_thread(handler: Callable[[Request], Response]
                  ) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await run_in_threadpool(handler, request)
    return endpoint


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every answer, pages, downloads and files alike."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((k, v) for k, v in SECURITY_HEADERS
                                        if k not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass(frozen=True)
class _AlertQuery:
    """The alerts page's query string: filters, order and page, as the application layer's
    AlertFilter (a malformed value is a 400)."""

    params: Mapping[str, str]
    wanted: alerts.AlertFilter
    sort: str
    page: int

    @classmethod
    def parse(cls, query: QueryParams, policy: Policy) -> _AlertQuery:
        def one(name: str) -> str:
            return (query.get(name) or "").strip()

        status = one("status") or "open"
        if status not in STATUS:
            raise PageError(404, "error.unknown_value", field="status", value=loggable(status),
                            known=", ".join(STATUS))
        states = alerts.OPEN if status == "open" else () if status == "all" else (status,)
        sort = one("sort") or "newest"
        if sort not in SORTS:
            raise PageError(400, "error.400", detail="sort: " + ", ".join(SORTS))
        try:
            levels = tuple(int(value) for value in query.getlist("level") if value)
            page = int(one("page") or 1)
            due_from = _day_start(one("from"), policy, 0)
            due_to = _day_start(one("to"), policy, 1)
        except ValueError:
            raise PageError(400, "error.400", detail="level, page: a number; from, to: "
                            "YYYY-MM-DD") from None
        if page < 1 or page > COUNT_LIMIT // PAGE_SIZE + 1:
            raise PageError(400, "error.400", detail="page")
        rounds = tuple(v for v in query.getlist("round") if v)
        kinds = tuple(v for v in query.getlist("kind") if v)
        if rounds and kinds and set(kinds) != {"round_missed"}:
            raise PageError(400, "error.400", detail="round goes with kind round_missed")
        wanted = alerts.AlertFilter(
            kinds=kinds, districts=tuple(v for v in query.getlist("district") if v),
            states=states, levels=levels, rounds=rounds, due_from=due_from, due_to=due_to)
        params = {name: one(name) for name in ("kind", "district", "status", "round", "level",
                                               "from", "to", "sort") if one(name)}
        return cls(params, wanted, sort, page)

    def urlencode(self, **changes: object) -> str:
        return urlencode({**self.params, **{k: str(v) for k, v in changes.items()}})

    def link(self, step: int) -> str:
        return f"/alerts?{self.urlencode(page=self.page + step)}"


def _day_start(text: str, policy: Policy, plus: int) -> datetime | None:
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text) + timedelta(days=plus),
                            datetime.min.time(), policy.zone)


def _check(connection: Any, caller: Caller, wanted: alerts.AlertFilter) -> None:
    """An unknown filter value is a 404 naming the values there are: another district's name,
    for an account of one district, is not found like a typo."""
    try:
        alerts.check_filters(connection, caller, wanted)
    except alerts.UnknownValue as exc:
        raise PageError(404, "error.unknown_value", field=exc.field,
                        value=loggable(exc.value),
                        known=", ".join(exc.known[:12]) or "–") from None


def _assignees(connection: Any, caller: Caller) -> list[str]:
    """Accounts an alert may be assigned to: enabled operators and admins (suggestions of
    the assign form; any operator id is accepted)."""
    if not caller.may_act():
        return []
    return [row["name"] for row in accounts.listing(connection)
            if row["disabled_at"] is None and row["role"] in ("operator", "admin")]


def _reason(v: Visit, error: actions.ActionError) -> str:
    if isinstance(error, actions.KafkaUnreachable):
        return v.t("reason.kafka", detail=str(error))
    reason = getattr(error, "reason", "bad_request")
    if reason in ("bad_request",):
        return v.t("reason.bad_request", detail=str(error))
    return v.t(f"reason.{reason}") if f"reason.{reason}" in i18n.MESSAGES else str(error)


def _entry_text(v: Visit, entry: timeline.Entry) -> str:
    """A timeline entry worded in the page's language, from its facts."""
    facts, zone = entry.facts, v.settings.policy.zone
    if entry.what == "alert":
        return v.t("tl.alert", kind=i18n.kind_name(v.lang, str(facts["kind"])),
                   due=i18n.instant(facts["due_at"], zone),
                   district=facts["district"] or v.t("no_district"))
    if entry.what == "caught_up":
        return v.t("tl.caught_up", kind=i18n.kind_name(v.lang, str(facts["kind"])))
    if entry.what == "escalation":
        return v.t("tl.escalation3" if int(facts["level"]) >= 3 else "tl.escalation2")
    if entry.what in ("action", "action_ignored"):
        action = str(facts["action"])
        done = v.t(f"done.{action}") if f"done.{action}" in i18n.MESSAGES else action
        if facts.get("assignee"):
            done += v.t("tl.assignee", assignee=facts["assignee"])
        via = v.t(f"via_short.{facts['via']}") if f"via_short.{facts['via']}" in (
            i18n.MESSAGES) else str(facts["via"])
        text = v.t("tl.action", done=done, operator=facts["operator"])
        text += (v.t("tl.effective", via=via, at=i18n.instant(facts["effective_at"], zone))
                 if facts.get("effective_at") else v.t("tl.via", via=via))
        if entry.what == "action_ignored":
            key = f"reason.{facts.get('reason')}"
            text += v.t("tl.ignored", reason=v.t(key) if key in i18n.MESSAGES
                        else str(facts.get("reason")))
        if facts.get("note"):
            text += v.t("tl.note", note=facts["note"])
        return text
    if entry.what == "finding":
        return v.t("tl.finding", finding_id=facts["finding_id"], category=facts["category"],
                   severity=v.t(f"severity.{facts['severity']}"),
                   unit_kind=facts["unit_kind"], district=facts["district"],
                   state=v.t("tl.finding_open" if facts["state"] == "open"
                             else "tl.finding_closed"))
    if entry.what == "rectified":
        return v.t("tl.rectified", finding_id=facts["finding_id"])
    if entry.what == "recheck":
        return v.t("tl.recheck_pass" if facts["result"] == "pass" else "tl.recheck_fail",
                   finding_id=facts["finding_id"])
    if entry.what == "rejected":
        where = (v.t("tl.line", line=facts["line"]) if facts.get("line") is not None
                 else f"{facts.get('topic')}[{facts.get('partition')}]@{facts.get('offset')}")
        return v.t("tl.rejected", topic=facts.get("topic") or "-", reason=facts["reason"],
                   where=where, message=facts["message"])
    return entry.text


def _code(text: str) -> Markup:
    return Markup("<code>{}</code>").format(text)


def _download(body: bytes, filename: str, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers={
        "content-disposition": f"attachment; filename=\"{filename}\""})


def _here(request: Request) -> str:
    """This page's path and query, to come back to after a form."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(target: str | None, default: str = "/today") -> str:
    """A local path to go to after a form: never another site (``//host``, ``http:``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


