"""``closedloop bench console``: the console's pages on a PostgreSQL ledger of a million alerts.

It fills a private schema of the ledger (``--ledger URL``, default
``$CLOSEDLOOP_TEST_DATABASE_URL``) with N alerts spread as a city's are (16 districts, kinds
weighted as they occur: many follow-ups and tests missed, few positives; 60 days; the old ones
resolved or caught up, the last two days' mostly open, some escalated), their audit, daily and
round reports, by COPY; then serves the console on it in this process and times, over HTTP
with keep-alive, ``/today`` and a filtered ``/alerts`` page (a district, open, a kind) for a
city-level account and for a district's, printing each page's 50th and 95th percentile and
the ``/health`` answer's as the floor measured in the same run. The schema is dropped at the
end (``--keep`` keeps it). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

__all__ = ["run"]

DISTRICTS: Final = ("huangpu", "xuhui", "changning", "jingan", "putuo", "hongkou", "yangpu",
                    "minhang", "baoshan", "jiading", "pudong", "jinshan", "songjiang",
                    "qingpu", "fengxian", "chongming")
KIND_WEIGHTS: Final = (("followup_overdue", 30), ("test_missed", 25), ("round_missed", 20),
                       ("lab_sla_breached", 8), ("unlocated", 5), ("landing_test_missed", 4),
                       ("sentinel_untested", 3), ("retest_missed", 2), ("orphan_result", 1),
                       ("identity_suspect", 1), ("entry_without_proof", 0.5),
                       ("pool_positive", 0.3), ("positive", 0.2))
DAYS: Final = 60
END: Final = datetime(2022, 11, 30, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
PASSWORD: Final = "bench-console-password"


def run(args: argparse.Namespace) -> int:
    from sqlalchemy import create_engine, make_url, text

    url = args.ledger or os.environ.get("CLOSEDLOOP_TEST_DATABASE_URL")
    if not url or make_url(url).get_backend_name() != "postgresql":
        print("closedloop bench console: --ledger postgresql+psycopg://… (or "
              "$CLOSEDLOOP_TEST_DATABASE_URL): the figure that matters is PostgreSQL's",
              file=sys.stderr)
        return 2
    schema = f"bench_console_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    scoped_url = scoped.render_as_string(hide_password=False)
    try:
        return _bench(scoped_url, args)
    finally:
        if args.keep:
            print(f"kept schema {schema}", file=sys.stderr)
        else:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _bench(url: str, args: argparse.Namespace) -> int:
    from closedloop.streams.ledger.engine import custom_plans, open_engine
    from closedloop.streams.ledger.migrate import upgrade

    upgrade(url)
    engine = custom_plans(open_engine(url))  # as `closedloop console serve` opens it
    try:
        started = time.perf_counter()
        counts = fill(engine, args.alerts, args.seed)
        _say(f"filled {counts['alert']:,} alerts, {counts['alert_action']:,} actions, "
             f"{counts['daily_report']:,} daily reports in {time.perf_counter() - started:,.0f} s")
        visible = _visible_share(engine)
        _say(f"{visible:.0%} of the alert table's pages are all-visible after VACUUM"
             + ("" if visible > 0.9 else
                " (a transaction open elsewhere holds vacuum back: index-only scans read "
                "the table too, and the pages are slower than a running ledger's)"))
        results, where = measure(engine, args.requests, args.seed)
    finally:
        engine.dispose()
    floor = results.pop("/health (floor)")
    print(f"{'page':<46} {'p50':>8} {'p95':>8} {'max':>8}   p95/floor")
    print(f"{'/health (floor: the server, no query)':<46} {_ms(floor, 50)} {_ms(floor, 95)} "
          f"{_ms(floor, 100)}")
    for page, times in results.items():
        ratio = _pct(times, 95) / _pct(floor, 95)
        verdict = "under 300 ms" if _pct(times, 95) < 0.3 else "OVER 300 ms"
        print(f"{page:<46} {_ms(times, 50)} {_ms(times, 95)} {_ms(times, 100)}   "
              f"x{ratio:,.1f}  ({verdict})")
    print(f"{args.alerts:,} alerts in PostgreSQL; {args.requests} requests a page after "
          "a warm-up; milliseconds")
    for page, said in where.items():
        print(f"  {page}: {said}")
    return 0


def _visible_share(engine: Any) -> float:
    """The share of the alert table's pages the visibility map marks all-visible: the
    condition under which a count is answered from an index alone."""
    from sqlalchemy import text

    with engine.connect() as connection:
        pages, visible = connection.execute(text(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = 'alert'::regclass")).one()
    return float(visible) / pages if pages else 0.0


def _pct(times: list[float], p: int) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _ms(times: list[float], p: int) -> str:
    return f"{_pct(times, p) * 1000:8.1f}"


def _kinds(rng: random.Random, n: int) -> list[str]:
    names = [k for k, _ in KIND_WEIGHTS]
    return rng.choices(names, weights=[w for _, w in KIND_WEIGHTS], k=n)


def _alert_rows(n: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """(alert_id, kind, subject, person_id, tube_id, district, due_at, raised_at, details,
    state, acknowledged_at, acknowledged_by, resolved_at, resolved_by, caught_up_at,
    escalation_level, escalated_at) rows, oldest first."""
    import orjson

    rng = random.Random(seed)
    span = DAYS * 86400
    kinds = _kinds(rng, n)
    start = END - timedelta(seconds=span)
    for i in range(n):
        due = start + timedelta(seconds=span * i / n + rng.random())
        kind = kinds[i]
        district = None if kind == "orphan_result" else rng.choice(DISTRICTS)
        tube = kind in ("lab_sla_breached", "orphan_result")
        subject = f"tb-{rng.getrandbits(40):010x}" if tube else f"p:{rng.getrandbits(48):012x}"
        age = (END - due).total_seconds() / 3600  # hours
        # most of what is older than two days is closed; today's is mostly open
        closed_share = 0.97 if age > 48 else 0.4 if age > 12 else 0.1
        state = "raised"
        acked = resolved = caught = None
        by = None
        if rng.random() < closed_share:
            if kind == "round_missed" and rng.random() < 0.7:
                state, caught = "caught_up", due + timedelta(hours=rng.uniform(1, 24))
            else:
                state, resolved = "resolved", due + timedelta(hours=rng.uniform(0.2, 30))
                by = f"op-{rng.randrange(40):03d}"
        elif rng.random() < 0.3:
            state, acked = "acknowledged", due + timedelta(minutes=rng.uniform(5, 120))
            by = f"op-{rng.randrange(40):03d}"
        level = escalated = None
        if state in ("raised", "resolved") and rng.random() < 0.12:
            level = 3 if rng.random() < 0.3 else 2
            escalated = due + timedelta(hours=2 * (level - 1))
        details: dict[str, Any] = {}
        if kind == "round_missed":
            week = int((END - due).days // 7)
            details = {"rounds": [f"round-w{week:02d}"], "grid": f"g-{rng.randrange(200):03d}"}
        yield (f"al-{rng.getrandbits(128):032x}", kind, subject, None if tube else subject,
               subject if tube else None, district, due, due, orjson.dumps(details).decode(),
               state, acked, by if acked else None, resolved, by if resolved else None, caught,
               level, escalated)


def fill(engine: Any, n: int, seed: int) -> dict[str, int]:
    """Bulk-load the ledger by COPY; returns the rows per table."""
    from closedloop.streams.console import accounts

    columns = ("alert_id", "kind", "subject", "person_id", "tube_id", "district", "due_at",
               "raised_at", "details", "state", "acknowledged_at", "acknowledged_by",
               "resolved_at", "resolved_by", "caught_up_at", "escalation_level",
               "escalated_at")
    counts = {"alert": 0, "alert_action": 0, "daily_report": 0}
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        actions: list[tuple[Any, ...]] = []
        with cursor.copy(f"COPY alert ({', '.join(columns)}) FROM STDIN") as copy:
            for row in _alert_rows(n, seed):
                copy.write_row(row)
                counts["alert"] += 1
                if row[12] is not None and len(actions) < n // 10:  # resolved: its audit row
                    actions.append((f"act-{row[0]}", row[0], row[2], "resolve", row[13],
                                    row[12], row[12], "ledger", "applied"))
                if counts["alert"] % 200_000 == 0:
                    _say(f"  {counts['alert']:,} alerts …")
        with cursor.copy("COPY alert_action (event_id, alert_id, subject, action, "
                         "operator_id, acted_at, effective_at, via, outcome) FROM STDIN") as copy:
            for action in actions:
                copy.write_row(action)
        counts["alert_action"] = len(actions)
        rng = random.Random(seed)
        with cursor.copy("COPY daily_report (district, date, pushed, located, under_control, "
                         "followup_overdue_open, tests_missed, positives) FROM STDIN") as copy:
            for back in range(DAYS):
                day = date(2022, 11, 30) - timedelta(days=back)
                for district in DISTRICTS:
                    pushed = rng.randrange(20, 200)
                    copy.write_row((district, day, pushed, pushed - rng.randrange(0, 5),
                                    rng.randrange(200, 2000), rng.randrange(0, 60),
                                    rng.randrange(0, 40), rng.randrange(0, 3)))
                    counts["daily_report"] += 1
        raw.commit()
        # as autovacuum leaves a ledger that has been running: statistics, and the
        # visibility map that lets an index answer a count alone
        raw.driver_connection.autocommit = True
        raw.driver_connection.execute("VACUUM ANALYZE")
    finally:
        raw.close()
    with engine.begin() as connection:
        store_run(connection)
        accounts.add(connection, "bench-city", "operator", PASSWORD)
        accounts.add(connection, "bench-pudong", "operator", PASSWORD, ["pudong"])
    return counts


def store_run(connection: Any) -> None:
    from closedloop.streams.ledger import store

    store.record_run(connection, command="replay", started_at=END, finished_at=END,
                     clock=END, events_read=0, ledger_actions=0)


class Statements:
    """The time each SQL statement takes, by its first words, while a page is timed: where a
    slow page's time goes."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.spent: dict[str, list[float]] = {}
        self.started: dict[int, float] = {}

        @event.listens_for(engine, "before_cursor_execute")
        def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            self.started[id(cursor)] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            began = self.started.pop(id(cursor), None)
            if began is not None:
                shape = " ".join(statement.split())[:70]
                self.spent.setdefault(shape, []).append(time.perf_counter() - began)

    def slowest(self) -> str:
        """The statement with the most time in all, its share, and its p95; then clears."""
        if not self.spent:
            return "no SQL"
        total = sum(sum(times) for times in self.spent.values())
        shape, times = max(self.spent.items(), key=lambda item: sum(item[1]))
        self.spent.clear()
        return (f"{sum(times) / total:.0%} of its SQL time in `{shape}…` "
                f"(p95 {_pct(times, 95) * 1000:.1f} ms)")


def measure(engine: Any, requests: int, seed: int
            ) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Serve the console in this process and time its pages over HTTP; also, for each page,
    the SQL statement it spends most time in."""
    import uvicorn

    from closedloop.schemas.policy import default_policy
    from closedloop.streams.console.command import listen
    from closedloop.streams.console.web import Settings, create_app

    app = create_app(Settings(engine=engine, policy=default_policy(),
                              secret=secrets.token_bytes(32)))
    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    rng = random.Random(seed)
    statements = Statements(engine)
    where: dict[str, str] = {}
    try:
        results: dict[str, list[float]] = {}
        health = _client(port, None)
        results["/health (floor)"] = _time(lambda: health("/health"), requests)
        for account, label in (("bench-city", "city"), ("bench-pudong", "pudong")):
            get = _client(port, account)

            def alerts(get: Callable[[str], None] = get, label: str = label) -> None:
                district = "pudong" if label == "pudong" else rng.choice(DISTRICTS)
                kind = rng.choice(("followup_overdue", "test_missed", "lab_sla_breached"))
                get("/alerts?" + urlencode({"district": district, "status": "open",
                                            "kind": kind}))

            def page(path: str, get: Callable[[str], None] = get) -> Callable[[], None]:
                return lambda: get(path)

            for name, call in ((f"/today ({label} account)", page("/today")),
                               (f"/alerts?district&status=open&kind ({label})", alerts),
                               (f"/alerts, default: open, newest ({label})",
                                page("/alerts"))):
                statements.slowest()
                results[name] = _time(call, requests)
                where[name] = statements.slowest()
        return results, where
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _client(port: int, account: str | None) -> Callable[[str], None]:
    """A keep-alive client, signed in as ``account``: GET a path, 200 or an error."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    cookies: dict[str, str] = {}

    def request(method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
                   "Accept-Language": "zh-CN"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
        return response.status, text

    if account is not None:
        _, form = request("GET", "/login")
        token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        status, _ = request("POST", "/login", urlencode({
            "csrf": token, "username": account, "password": PASSWORD, "next": "/today"}))
        if status != 303:
            raise RuntimeError(f"signing in as {account} answered {status}")

    def get(path: str) -> None:
        status, _ = request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")

    return get


def _time(call: Callable[[], None], requests: int) -> list[float]:
    for _ in range(max(5, requests // 10)):  # warm-up: caches, plans, connections
        call()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times
