"""``closedloop alerts ack|resolve ALERT_ID --operator ID``: an operator handling an alert.

Publishes one ``action`` event (CONTRACT.md §3) to ``{prefix}.action.v1``, keyed by the
alert's subject so it reaches the partition that owns the alert. The engine closes the
alert's escalation (an unhandled alert escalates after the policy's ``escalation.after``,
default 2 h, and again one window later), and ``closedloop sink`` records the action on the
alert's ledger row.

The subject is ``--subject``, else looked up by alert_id in the ledger (``--ledger URL``,
else $CLOSEDLOOP_DATABASE_URL, else closedloop.db in the current directory: the ledger
``closedloop demo`` and ``closedloop replay FILE --ledger`` fill). The operator id and note go
through the same raw-identifier check as every input: a resident ID or mobile number is
refused (exit 2) and never echoed.

examples:
  closedloop alerts ack al-3f9c… --operator op-017 --subject pz:c4ca4238…
  closedloop alerts resolve al-3f9c… --operator op-017 --note "located, home quarantine"
  closedloop alerts ack al-3f9c… --operator op-017 --ledger postgresql+psycopg://u@db/ledger
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime
from typing import Any

import msgspec

from closedloop.schemas.decode import Rejection, validate_event
from closedloop.schemas.ids import spell_digit_runs
from closedloop.schemas.policy import Policy, PolicyError, load_policy
from closedloop.streams.kafka.settings import KafkaSettings
from closedloop.streams.kafka.topics import declare_topics, topic_name
from closedloop.streams.ledger import DEFAULT_HELP

__all__ = ["ACTIONS", "action_event", "add_action_parsers", "run_action", "send_action"]

ACTIONS = {"ack": "acknowledge an alert: someone is on it (stops its escalation)",
           "resolve": "resolve an alert: it is handled (ack first is not required)"}


class SubjectUnknown(Exception):
    """The subject could not be found: the user must pass ``--subject``."""


def add_action_parsers(sub: Any) -> None:
    """Add ``ack`` and ``resolve`` to the ``alerts`` sub-commands."""
    for name, summary in ACTIONS.items():
        parser = sub.add_parser(name, help=summary, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("alert_id", metavar="ALERT_ID", help="the alert's alert_id (al-…)")
        parser.add_argument("--operator", required=True, metavar="ID",
                            help="your operator id (a pseudonymous staff id, never a phone "
                            "number or resident ID)")
        parser.add_argument("--note", metavar="TEXT", help="free text kept with the alert")
        parser.add_argument("--subject", metavar="S",
                            help="the alert's subject (person_id or tube_id); default: looked "
                            "up in the ledger")
        parser.add_argument("--ledger", metavar="URL",
                            help=f"ledger to look the subject up in (default {DEFAULT_HELP})")
        parser.add_argument("--policy", metavar="FILE",
                            help="TOML policy, for its time zone (default: the contract's)")
        parser.add_argument("--prefix", help="topic prefix (default $CLOSEDLOOP_TOPIC_PREFIX)")


def action_event(
    alert_id: str, subject: str, action: str, operator_id: str, note: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The action event's JSON object: a fresh event_id, ``now`` (aware) as occurred_at."""
    event: dict[str, Any] = {
        "event_id": spell_digit_runs(f"act-{uuid.uuid4().hex}"), "occurred_at": now.isoformat(),
        "alert_id": alert_id, "subject": subject, "action": action, "operator_id": operator_id,
    }
    if note is not None:
        event["note"] = note
    return event


def lookup_subject(alert_id: str, url: str | None) -> str:
    """The alert's subject from the ledger; SubjectUnknown if there is none to ask or no row."""
    from sqlalchemy import select

    from closedloop.streams.ledger import models
    from closedloop.streams.ledger.errors import LedgerUnavailable, read_ledger

    table = models.Base.metadata.tables["alert"]
    try:
        subject = read_ledger(url, lambda connection: connection.execute(
            select(table.c.subject).where(table.c.alert_id == alert_id)).scalar_one_or_none())
    except LedgerUnavailable as exc:
        raise SubjectUnknown(str(exc)) from exc
    if subject is None:
        raise SubjectUnknown(f"alert {alert_id} is not in the ledger")
    return str(subject)


def send_action(settings: KafkaSettings, event: dict[str, Any]) -> tuple[int, int]:
    """Publish one action synchronously (acks=all); returns (partition, offset)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", **settings.kafka_python())
    try:
        future = producer.send(topic_name(settings.prefix, "action"),
                               key=event["subject"].encode(), value=msgspec.json.encode(event))
        metadata = future.get(timeout=30)
        producer.flush()
    finally:
        producer.close()
    return int(metadata.partition), int(metadata.offset)


def _refusal(event: dict[str, Any], policy: Policy) -> str | None:
    """Why the decoder would reject this action, or None: its message names the field and
    the rule, never the value (so a raw identifier is not echoed)."""
    checked = validate_event("action", event, policy.cohorts)
    return checked.message if isinstance(checked, Rejection) else None


def run_action(args: argparse.Namespace) -> int:
    command = f"closedloop alerts {args.alerts_command}"
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    now = datetime.now(policy.zone)
    # Operator id and note first (a stand-in subject), so a refusal never waits on the ledger.
    refused = _refusal(action_event(args.alert_id, args.subject or "subject-to-find",
                                    args.alerts_command, args.operator, args.note, now), policy)
    if refused is not None:
        print(f"{command}: refused: {refused}", file=sys.stderr)
        return 2
    subject = args.subject
    if subject is None:
        try:
            subject = lookup_subject(args.alert_id, args.ledger)
        except SubjectUnknown as exc:
            print(f"{command}: cannot find the subject of {args.alert_id} ({exc}); "
                  "pass --subject (the alert's person_id or tube_id)", file=sys.stderr)
            return 2
    event = action_event(args.alert_id, subject, args.alerts_command, args.operator, args.note,
                         now)
    refused = _refusal(event, policy)
    if refused is not None:
        print(f"{command}: refused: {refused}", file=sys.stderr)
        return 2
    settings = KafkaSettings.from_env(prefix=args.prefix)
    declare_topics(settings)  # as the worker would: never the broker's auto-create
    partition, offset = send_action(settings, event)
    print(f"{args.alerts_command} {args.alert_id} (subject {subject}) sent to "
          f"{topic_name(settings.prefix, 'action')}[{partition}]@{offset}", file=sys.stderr)
    return 0
