"""Handle an alert: acknowledge it (someone is on it), resolve it (done) or assign it to an
operator.

closedloop alerts ack|resolve|assign ALERT_ID --operator ID [--note TEXT] [--assignee ID]
    [--via ledger|kafka] [--ledger URL]

--via ledger records the action in the ledger (who, when, the note) and contacts no broker:
the deployment without Kafka, where the next `closedloop replay --ledger` also stops the
alert's escalation. --via kafka publishes it to the action topic: the worker stops the
escalation and `closedloop sink` records it in the ledger. The default is the deployment's
one setting: $CLOSEDLOOP_ACTIONS_VIA (ledger or kafka) if set, else kafka when
$CLOSEDLOOP_KAFKA is set, else ledger.

An unknown alert, a closed one (resolved, or caught up), or --subject naming another subject
than the alert's is refused (exit 2) and nothing is recorded or sent. The operator id, the
note and the assignee must not hold a resident ID or mobile number (refused, never echoed).

examples:
  closedloop alerts ack al-3f9c… --operator op-017
  closedloop alerts resolve al-3f9c… --operator op-017 --note "located, home quarantine"
  closedloop alerts assign al-3f9c… --operator op-017 --assignee op-022
  closedloop alerts ack al-3f9c… --operator op-017 --via kafka
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import datetime
from typing import Any, Final

from closedloop.schemas.ids import spell_digit_runs

__all__ = ["ACTIONS", "action_event", "add_action_parsers", "run_action"]

ACTIONS: Final = {
    "ack": "acknowledge an alert: someone is on it (stops its escalation)",
    "resolve": "resolve an alert: it is handled (ack first is not required)",
    "assign": "assign an alert to an operator (changes no escalation)",
}


def add_action_parsers(sub: Any) -> None:
    """Add ``ack``, ``resolve`` and ``assign`` to the ``alerts`` sub-commands."""
    from closedloop.streams.ledger.options import add_ledger

    for name, summary in ACTIONS.items():
        parser = sub.add_parser(name, help=summary, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("alert_id", metavar="ALERT_ID", help="the alert's alert_id (al-…)")
        parser.add_argument("--operator", required=True, metavar="ID",
                            help="your operator id (a pseudonymous staff id, never a phone "
                            "number or resident ID)")
        parser.add_argument("--note", metavar="TEXT", help="free text kept with the action")
        parser.add_argument("--assignee", metavar="ID", required=name == "assign",
                            help="the operator to assign the alert to" if name == "assign"
                            else argparse.SUPPRESS)
        parser.add_argument("--via", choices=("ledger", "kafka"),
                            help="where the action goes (default: $CLOSEDLOOP_ACTIONS_VIA, else "
                            "kafka when $CLOSEDLOOP_KAFKA is set, else ledger)")
        parser.add_argument("--subject", metavar="S",
                            help="the alert's subject (person or tube), checked against the "
                            "ledger's; needed with --via kafka when no ledger is at hand")
        add_ledger(parser)
        parser.add_argument("--prefix", help="topic prefix, with --via kafka (default "
                            "$CLOSEDLOOP_TOPIC_PREFIX)")
        parser.add_argument("--policy", metavar="FILE",
                            help="policy file: its time zone, for the action's instant")


def action_event(
    alert_id: str, subject: str, action: str, operator_id: str, note: str | None,
    now: datetime,
) -> dict[str, Any]:
    """An action event's JSON object: a fresh event_id, ``now`` (aware) as occurred_at."""
    event: dict[str, Any] = {
        "event_id": spell_digit_runs(f"act-{uuid.uuid4().hex}"), "occurred_at": now.isoformat(),
        "alert_id": alert_id, "subject": subject, "action": action, "operator_id": operator_id,
    }
    if note is not None:
        event["note"] = note
    return event


def run_action(args: argparse.Namespace) -> int:
    from closedloop.schemas.policy import PolicyError, load_policy
    from closedloop.streams.app import actions
    from closedloop.streams.app.caller import Caller

    command = f"closedloop alerts {args.alerts_command}"
    try:
        via = args.via or actions.default_via()
        caller = Caller.command_line(args.operator)
        zone = load_policy(args.policy).zone
    except (ValueError, PolicyError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    request = actions.ActionRequest(args.alert_id, args.alerts_command, note=args.note,
                                    assignee=args.assignee, subject=args.subject)
    try:
        actions.check_request(caller, request)  # before the ledger is even opened
        result = _act(args, caller, request, via, datetime.now(zone).replace(microsecond=0))
    except actions.ActionRefused as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    except actions.KafkaUnreachable as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    except actions.ActionError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    if isinstance(result, int):
        return result
    done = {"ack": "acknowledged", "resolve": "resolved", "assign": "assigned"}[result.action]
    to = f" to {args.assignee}" if result.action == "assign" else ""
    print(f"{args.alert_id} {done}{to} (subject {result.subject}); recorded in "
          f"{result.where}" if via == "ledger" else
          f"{args.alert_id} {done}{to} (subject {result.subject}); sent to {result.where}",
          file=sys.stderr)
    return 0


def _act(args: argparse.Namespace, caller: Any, request: Any, via: str, now: datetime
         ) -> Any:
    """The action's result, or the exit status after saying why there is none (1: no
    ledger to record it in; 2: no ledger to find the subject in, and no --subject)."""
    from closedloop.streams.app import actions
    from closedloop.streams.kafka.settings import KafkaSettings
    from closedloop.streams.ledger import database_url
    from closedloop.streams.ledger.errors import ledger_error

    command = f"closedloop alerts {args.alerts_command}"
    try:
        engine = _ledger(database_url(args.ledger), need=via == "ledger" or not args.subject)
    except Exception as exc:
        message = ledger_error(exc)
        if message is None:
            raise
        if via == "ledger":
            print(f"{command}: {message}", file=sys.stderr)
            return 1
        print(f"{command}: {message}; pass --subject (the alert's person or tube) to publish "
              "without the ledger", file=sys.stderr)
        return 2
    try:
        settings = None if via == "ledger" else KafkaSettings.from_env(prefix=args.prefix)
        from closedloop.streams.cli import started

        # one line within 5 s of the start, whatever the broker does: the interpreter takes
        # a few tenths of a second to start and to end around this budget
        return actions.act(engine, caller, request, via=via, kafka=settings, now=now,
                           deadline=started() + 3.3)
    finally:
        if engine is not None:
            engine.dispose()


def _ledger(url: str, need: bool) -> Any:
    """The ledger's engine, or None when it is not needed and absent."""
    from closedloop.streams.ledger.migrate import open_existing

    try:
        return open_existing(url)
    except Exception:
        if need:
            raise
        return None
