"""Simulate a small city for a few days and run it through the embedded engine.

No services needed: this is the same engine code the Kafka worker runs, driven in-process.
It prints alerts by kind, an example of each kind, the last daily closure report (with its
gates, sentinel clinics, supervision rounds, 督导检查, and data entry, 录入及时: the day's late
sources and the run's silent labs; its sources enter records with their habits, as
``simulate --receipts`` writes them) and the city-wide testing round of the second day
(close and final: who was missed, who was caught up); with ``--out DIR`` it
also keeps the city, alerts, reports, round reports and dead letters as JSON Lines there.

It fills the default SQL ledger ($CLOSEDLOOP_DATABASE_URL, else closedloop.db in the current
directory; ``--ledger URL`` for another), the one ``closedloop alerts list`` and
``closedloop report daily`` / ``report round`` read when given no URL, so they can be tried
next. Running the demo again with the same seed adds nothing; another seed adds its alerts
beside the first.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from closedloop.schemas.identifiers import redact_text
from closedloop.schemas.policy import default_policy
from closedloop.streams.app.replay import Extra, replay_lines
from closedloop.streams.cli.arguments import positive
from closedloop.streams.cli.replay import summary
from closedloop.streams.ledger import DEFAULT_HELP, database_url

__all__ = ["add_parser", "run"]


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--people", type=positive, default=3000, help="persons (default 3000)")
    parser.add_argument("--days", type=positive, default=4, help="days simulated (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    parser.add_argument("--out", metavar="DIR", help="keep city, alerts, reports, dead letters")
    parser.add_argument(
        "--ledger", "--url", dest="ledger", metavar="URL",
        help=f"the SQL ledger to fill (default {DEFAULT_HELP})",
    )


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Aligned by display width: a Chinese district name takes two columns a character."""
    from closedloop.streams.ledger.formats import display_width, pad

    widths = [max(display_width(c), *(display_width(str(r[c])) for r in rows)) for c in columns]
    lines = ["  ".join(pad(c, w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(pad(str(r[c]), w) for c, w in zip(columns, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def brief(details: dict[str, Any], width: int = 100) -> str:
    """``details`` as JSON in about ``width`` characters, never cut inside a value: a long
    list shows its first items and how many more, and keys that do not fit are counted."""
    def shown(value: Any) -> str:
        if isinstance(value, list) and len(value) > 3:
            head = ", ".join(json.dumps(v, ensure_ascii=False) for v in value[:2])
            return f"[{head}, … {len(value) - 2} more]"
        return json.dumps(value, ensure_ascii=False)

    parts: list[str] = []
    for number, (key, value) in enumerate(details.items()):
        part = f"{json.dumps(key, ensure_ascii=False)}: {shown(value)}"
        left = len(details) - number
        if parts and len(", ".join([*parts, part])) + 2 > width:
            parts.append(f"… {left} more")
            break
        parts.append(part)
    return "{" + ", ".join(parts) + "}"


def run(args: argparse.Namespace) -> int:
    from closedloop.streams.sim.feed import CityConfig, simulate

    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        print(f"closedloop demo: --out {args.out}: exists and is not a directory",
              file=sys.stderr)
        return 2
    config = CityConfig(seed=args.seed, people=args.people, days=args.days, round=True,
                        inspections=True, receipts=True)
    started = time.perf_counter()
    city: Iterable[bytes] = list(simulate(config))
    policy = default_policy()
    until = int((config.start + timedelta(days=args.days)).timestamp())
    alerts, reports, letters = io.BytesIO(), io.BytesIO(), io.BytesIO()
    rounds = io.BytesIO()
    ledger_url = database_url(args.ledger)
    from closedloop.streams.ledger.embedded import open_for_command

    ledger = open_for_command(ledger_url, "demo")
    if ledger is None:
        return 1
    try:
        # the actions operators recorded in this ledger since an earlier demo: so an alert
        # acknowledged there escalates no further, as with replay --ledger
        extra = [Extra(at, "action", event) for at, event in ledger.own_actions()]
        result = replay_lines(
            city, policy, until=until, alerts_out=alerts, reports_out=reports,
            deadletter_out=letters, round_reports_out=rounds, ledger=ledger, extra=extra,
        )
    finally:
        ledger.close()
    new_alerts = ledger.alerts_new
    elapsed = time.perf_counter() - started
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "city.jsonl").write_bytes(b"".join(line + b"\n" for line in city))
        (out / "alerts.jsonl").write_bytes(alerts.getvalue())
        (out / "reports.jsonl").write_bytes(reports.getvalue())
        (out / "deadletter.jsonl").write_bytes(letters.getvalue())
        (out / "round-reports.jsonl").write_bytes(rounds.getvalue())

    print(f"closedloop demo: a simulated city of {args.people:,} people over {args.days} days "
          f"(seed {args.seed}), replayed through the engine in {elapsed:.1f} s\n")
    print(summary(result, policy, deadletter_kept=bool(args.out),
                  escalations_kept=["levels recorded in the ledger"],
                  keep_deadletter="--out DIR"))
    examples: dict[str, dict[str, Any]] = {}
    for line in alerts.getvalue().splitlines():
        alert = orjson.loads(line)
        examples.setdefault(alert["kind"], alert)
    if examples:
        print("\nan example of each alert kind:")
        width = max(len(kind) for kind in examples)
        for kind in sorted(examples):
            alert = examples[kind]
            print(f"  {kind:<{width}}  subject {alert['subject']}  due {alert['due_at']}  "
                  f"district {alert['district']}")
            print(f"  {'':<{width}}  {brief(alert['details'])}")
        after = f"{policy.escalate_after / 3600:g} h"
        print(f"\nescalations are not alerts of their own: an alert nobody acknowledged, "
              f"resolved or\nsatisfied within {after} goes up to the district command "
              f"(level 2), {after} later to the\ncity command (level 3); `closedloop alerts "
              "list` shows each alert's level")
    rows = [orjson.loads(line) for line in reports.getvalue().splitlines()]
    last: str | None = max((r["date"] for r in rows), default=None)
    if last is not None:
        print(f"\ndaily closure report (日清日结) for {last}, cut-off "
              f"{policy.daily_cutoff // 3600:02d}:{policy.daily_cutoff % 3600 // 60:02d}:")
        from closedloop.streams.app.reports import totals

        today = [r for r in rows if r["date"] == last]
        for title, columns in (
                (None, ["pushed", "located", "under_control", "followup_overdue_open",
                        "tests_missed", "positives"]),
                ("the same day at the gates (查验关) and sentinel clinics (哨点):",
                 ["checkpoint_entries", "entries_without_proof", "landing_tests_missed",
                  "sentinel_visits", "sentinel_untested"]),
                ("the same day's supervision loop (督导检查: findings, rectification, "
                 "look-back):",
                 ["findings_new", "findings_open", "rectifications_overdue",
                  "rechecks_failed", "repeat_offenders"]),
                ("the same day's data entry (录入及时: records of known entry lag, late, "
                 "rejected):", ["entries", "entries_late", "entries_rejected"])):
            if title:
                print(title)
            print(_table([*today, totals(today, columns)], ["district", *columns]))
    entry_alerts = [orjson.loads(line) for line in alerts.getvalue().splitlines()]
    _print_entry(entry_alerts, last, policy)
    round_reports = [orjson.loads(line) for line in rounds.getvalue().splitlines()]
    round_id = _print_round(round_reports)
    print(_ledger_note(ledger_url, args.ledger, new_alerts, last, round_id))
    print(_console_note(ledger_url, args.ledger))
    if args.out:
        folder = redact_text(args.out)  # a folder named by a mobile number is not echoed
        print(f"\nwritten to {folder}/: city.jsonl alerts.jsonl reports.jsonl "
              "round-reports.jsonl deadletter.jsonl"
              f"\nreplay it yourself: closedloop replay {folder}/city.jsonl --until "
              f"{policy_iso(until, policy)}")
    sys.stdout.flush()
    return 0


LATE_COLUMNS = ["source", "district", "entries", "late", "late_share", "lag_p90_minutes",
                "worst_lag_minutes"]
SILENT_COLUMNS = ["lab", "silent_from", "pending_tubes", "last_reported_at"]


def _print_entry(alerts: list[dict[str, Any]], day: str | None, policy: Any) -> None:
    """The day's late sources (late_entries at its cut-off) and every silent lab of the run
    (lab_silent), as tables."""
    late = [a for a in alerts if a["kind"] == "late_entries"
            and day is not None and a["due_at"][:10] == day]
    if late:
        print(f"\nlate sources (录入不及时) at the {day} cut-off: at least "
              f"{policy.late_entries_min} records, {float(policy.late_share):.0%} or more "
              "entered late")
        print(_table([{"source": a["subject"], "district": a["district"] or "-",
                       **{c: a["details"][c] for c in LATE_COLUMNS[2:]}} for a in late],
                     LATE_COLUMNS))
    silent = [a for a in alerts if a["kind"] == "lab_silent"]
    if silent:
        print(f"\nsilent labs (检测机构停报): tubes waiting and no report for "
              f"{policy.lab_silent_after / 3600:g} h")
        print(_table([{"lab": a["subject"], "silent_from": a["due_at"],
                       "pending_tubes": a["details"]["pending_tubes"],
                       "last_reported_at": a["details"]["last_reported_at"] or "-"}
                      for a in silent], SILENT_COLUMNS))


ROUND_COLUMNS = ["district", "in_scope", "sampled", "missed", "caught_up", "not_on_roster",
                 "catchup_median_hours"]


def _print_round(reports: list[dict[str, Any]]) -> str | None:
    """The first round's table: sampled and missed at the close, caught up at the final report
    (as of the close when the replayed days end before it). Returns its round_id."""
    closes = [r for r in reports if r["stage"] == "close"]
    if not closes:
        return None
    close = closes[0]
    round_id = close["round_id"]
    final = next((r for r in reports if r["round_id"] == round_id and r["stage"] == "final"),
                 None)
    shown = final or close
    rows = [dict(row, catchup_median_hours=row["catchup_median_hours"] or "-")
            for row in shown["rows"]]
    total = {c: sum(row[c] for row in shown["rows"]) for c in ROUND_COLUMNS[1:-1]}
    rows.append({"district": "total", **total, "catchup_median_hours": ""})
    when = (f"caught up by the final report, {final['as_of']}" if final is not None else
            f"no final report within the replayed days, so as of the close, {close['as_of']}")
    print(f"\ntesting round {round_id} (区域核酸): missed at the close, {when}:")
    print(_table(rows, ROUND_COLUMNS))
    return str(round_id)


def _shown(url: str) -> str:
    """The ledger's URL as printed: no password, and no identifier in a file's name."""
    from sqlalchemy import make_url

    return redact_text(make_url(url).render_as_string(hide_password=True))


def _ledger_note(url: str, given: str | None, new_alerts: int, day: str | None,
                 round_id: str | None = None) -> str:
    """Where the ledger is and the commands that read it; ``--url`` only when it is not the
    default, which those commands find by themselves."""
    shown = _shown(url)
    option = f" --ledger {shown}" if given and given != database_url(None) else ""
    lines = [f"ledger (SQL): {shown} ({new_alerts:,} new alerts)",
             f"  closedloop alerts list --open --sort severity{option}",
             f"  closedloop alerts ack ALERT_ID --operator op-017{option}   # recorded in the "
             "ledger, no broker needed"]
    if day is not None:
        lines.append(f"  closedloop report daily{option}   # the latest day, {day}")
    if round_id is not None:
        lines.append(f"  closedloop report round {round_id}{option}")
        lines.append(f"  closedloop alerts list --kind round_missed --round {round_id} "
                     f"--pending --format csv{option} > catchup.csv   # who to catch up")
    return "\n" + "\n".join(lines)


def _console_note(url: str, given: str | None) -> str:
    """How to open the web console on this ledger: with a demo account made for it in an
    embedded ledger (its password printed here, once), else the command to make one."""
    from closedloop.streams.console.accounts import demo_account
    from closedloop.streams.ledger.engine import open_engine

    option = f" --ledger {_shown(url)}" if given and given != database_url(None) else ""
    engine = open_engine(url)
    try:
        account = demo_account(engine)
    finally:
        engine.dispose()
    lines = ["\nthe web console (指挥部) on this ledger, in Chinese or English:",
             f"  closedloop console serve{option}   # then open http://127.0.0.1:8080/"]
    if account is None:
        lines.append(f"  sign in with an account: closedloop console user add NAME --role "
                     f"operator{option} (the password is read from standard input)")
    else:
        lines.append(f"  sign in as {account[0]}, password {account[1]}")
        lines.append("  (an account of this demo ledger only, given a new password by each demo)")
    return "\n".join(lines)


def policy_iso(epoch: int, policy: Any) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch, policy.zone).isoformat()
