"""Operators' actions on alerts: ack, resolve, assign, and where they go.

One call for every front end::

    from closedloop.streams.app import actions
    via = actions.default_via()                        # the deployment's one setting
    request = actions.ActionRequest(alert_id, "resolve", note="located, home quarantine")
    result = actions.act(engine, caller, request, via=via)   # ActionRefused: exit 2 / HTTP 409
    result.effective_at, result.where

``via="ledger"`` records the action in the ledger (its audit, and the alert's status) and
contacts no broker: the embedded deployment, where the ledger is the system of record and
``replay --ledger`` feeds these actions back to the engine. ``via="kafka"`` publishes it to
the ``action`` topic: the worker decides, and ``closedloop sink`` records it. Either way the
action must pass the one rule of ``agents/actions.py`` (the alert exists for this caller, its
subject is the action's, it is not closed), checked here before anything is written or sent.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Engine

from closedloop.agents.actions import ACTIONS, REASONS, refusal
from closedloop.schemas.decode import Rejection, validate_event
from closedloop.schemas.ids import spell_digit_runs
from closedloop.streams.app.caller import Caller, Forbidden
from closedloop.streams.ledger import queries, store

if TYPE_CHECKING:
    from closedloop.streams.kafka.settings import KafkaSettings

__all__ = [
    "ACTIONS",
    "VIA",
    "VIA_ENV",
    "ActionError",
    "ActionRefused",
    "ActionRequest",
    "ActionResult",
    "KafkaUnreachable",
    "act",
    "act_many",
    "check_request",
    "default_via",
    "parse_action",
]

VIA: Final = ("ledger", "kafka")
VIA_ENV: Final = "CLOSEDLOOP_ACTIONS_VIA"
KAFKA_DEADLINE: Final = 4.0
"""Seconds to publish an action before saying the broker is unreachable (the promise is one
line within 5 s of the command's start: a caller that started earlier passes a deadline)."""


class ActionError(Exception):
    """An action not done; the message is one line for the operator, naming no raw
    identifier."""


class ActionRefused(ActionError):
    """The action breaks a rule (unknown alert, closed alert, another subject, a bad request,
    a role that may not act): nothing was written or sent. ``reason`` is a name of
    ``agents/actions.py``'s REASONS, or ``bad_request`` / ``forbidden``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class KafkaUnreachable(ActionError):
    """No broker answered (``--via kafka``); the message names ``--via ledger``. A client
    still waiting on a silent address is left in a daemon thread: it holds nothing the
    caller needs and does not keep the process from ending."""


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """What the operator asks: ``subject`` None means the alert's own (looked up)."""

    alert_id: str
    action: str  # ack | resolve | assign
    note: str | None = None
    assignee: str | None = None  # required for assign, refused otherwise
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class ActionResult:
    alert_id: str
    action: str
    subject: str
    via: str
    event_id: str
    acted_at: datetime
    effective_at: datetime  # when the engine applies it (event time)
    where: str  # "the ledger", or the topic, partition and offset it was published at


def default_via(environ: Mapping[str, str] | None = None) -> str:
    """Where actions go by default: ``$CLOSEDLOOP_ACTIONS_VIA`` (ledger or kafka) if set,
    else ``kafka`` when ``$CLOSEDLOOP_KAFKA`` is set, else ``ledger``. ValueError (one line
    naming the variable) for any other value."""
    env = os.environ if environ is None else environ
    value = env.get(VIA_ENV)
    if value is not None:
        if value not in VIA:
            raise ValueError(f"{VIA_ENV} must be ledger or kafka, not {_shown(value)}")
        return value
    return "kafka" if env.get("CLOSEDLOOP_KAFKA") else "ledger"


def _shown(value: str) -> str:
    from closedloop.schemas.identifiers import loggable

    return repr(loggable(value))


def parse_action(name: str) -> str:
    """``name`` if it is an action; else ActionRefused listing the valid ones."""
    if name not in ACTIONS:
        raise ActionRefused("bad_request", f"{_shown(name)} is not an action: use "
                            f"{', '.join(ACTIONS)} (ack: acknowledge)")
    return name


def _event(caller: Caller, request: ActionRequest, subject: str, at: datetime
           ) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": spell_digit_runs(f"act-{uuid.uuid4().hex}"), "occurred_at": at.isoformat(),
        "alert_id": request.alert_id, "subject": subject, "action": request.action,
        "operator_id": caller.operator_id,
    }
    if request.note is not None:
        event["note"] = request.note
    if request.assignee is not None:
        event["assignee"] = request.assignee
    return event


def check_request(caller: Caller, request: ActionRequest) -> None:
    """The checks that need no ledger: the caller may act, the action exists, ``assignee``
    is given for assign only, and every field passes the decoder's rules for an ``action``
    event (a resident ID or mobile number in a note is refused, never echoed)."""
    try:
        caller.require_action()
    except Forbidden as exc:
        raise ActionRefused("forbidden", str(exc)) from None
    parse_action(request.action)
    if request.action == "assign" and not request.assignee:
        raise ActionRefused("bad_request", "assign needs the operator to assign the alert to "
                            "(--assignee ID)")
    if request.action != "assign" and request.assignee is not None:
        raise ActionRefused("bad_request", f"--assignee goes with assign, not {request.action}")
    checked = validate_event("action", _event(caller, request, request.subject or "subject",
                                              datetime.now(UTC)), {})
    if isinstance(checked, Rejection):
        raise ActionRefused("bad_request", f"refused: {checked.message}")


def _judge(caller: Caller, request: ActionRequest, alert: dict[str, Any] | None) -> str:
    """The alert's subject, or ActionRefused by the one rule."""
    if alert is None:
        raise ActionRefused("unknown_alert", f"alert {request.alert_id} is not in the ledger"
                            + ("" if caller.city_level else " (or not in your districts)"))
    subject = request.subject or str(alert["subject"])
    reason = refusal(str(alert["subject"]), str(alert["state"]), subject)
    if reason == "not_subjects_alert":
        raise ActionRefused(reason, f"alert {request.alert_id} is about {alert['subject']}, "
                            f"not {subject}: {REASONS[reason]}")
    if reason == "alert_closed":
        when = alert["resolved_at"] if alert["state"] == "resolved" else alert["caught_up_at"]
        since = f" since {when.isoformat(timespec='seconds')}" if when is not None else ""
        raise ActionRefused(reason, f"alert {request.alert_id} is {alert['state']}{since}: a "
                            "closed alert takes no action")
    return subject


def _find(connection: Connection, caller: Caller, alert_id: str) -> dict[str, Any] | None:
    rows, _ = queries.select_alerts(connection, queries.AlertCriteria(
        scope=caller.districts, alert_ids=(alert_id,)))
    return rows[0] if rows else None


def act(
    ledger: Engine | None,
    caller: Caller,
    request: ActionRequest,
    *,
    via: str,
    now: datetime | None = None,
    kafka: KafkaSettings | None = None,
    deadline: float | None = None,
) -> ActionResult:
    """Do ``request`` for ``caller`` ``via`` the ledger or Kafka; ActionRefused if a rule
    forbids it (nothing written or sent), KafkaUnreachable if no broker answers.

    ``ledger`` may be None only with Kafka and a ``request.subject``: the rule is then
    left to the worker and the sink. ``deadline`` (``time.monotonic()``) bounds the wait for
    the broker (default :data:`KAFKA_DEADLINE` from now).
    """
    check_request(caller, request)
    if via not in VIA:
        raise ActionRefused("bad_request", f"--via is ledger or kafka, not {_shown(via)}")
    at = now or datetime.now(UTC).replace(microsecond=0)
    if via == "ledger":
        if ledger is None:
            raise ActionRefused("bad_request", "--via ledger needs a ledger")
        return _in_ledger(ledger, caller, request, at)
    subject = request.subject
    if ledger is not None:
        with ledger.connect() as connection:
            subject = _judge(caller, request, _find(connection, caller, request.alert_id))
    if subject is None:
        raise ActionRefused("bad_request", "the alert's subject is needed to publish to Kafka")
    from closedloop.streams.kafka.settings import KafkaSettings

    settings = kafka or KafkaSettings.from_env()
    event = _event(caller, request, subject, at)
    where = publish(settings, event, deadline)
    return ActionResult(request.alert_id, request.action, subject, "kafka", event["event_id"],
                        at, at, where)


def act_many(
    ledger: Engine | None,
    caller: Caller,
    requests: Sequence[ActionRequest],
    *,
    via: str,
    now: datetime | None = None,
    kafka: KafkaSettings | None = None,
) -> list[ActionResult | ActionError]:
    """:func:`act` for each request in turn (one alert or many at once, as a console's bulk
    update does): each is judged and recorded on its own, so a closed or unknown alert among
    them is refused (its ActionRefused in its place of the result) and the others are done.
    An unreachable broker refuses the rest too, with the same KafkaUnreachable."""
    results: list[ActionResult | ActionError] = []
    for request in requests:
        try:
            results.append(act(ledger, caller, request, via=via, now=now, kafka=kafka))
        except KafkaUnreachable as exc:
            results.extend(exc for _ in range(len(requests) - len(results)))
            break
        except ActionError as exc:
            results.append(exc)
    return results


def _in_ledger(engine: Engine, caller: Caller, request: ActionRequest, at: datetime
               ) -> ActionResult:
    with engine.begin() as connection:
        subject = _judge(caller, request, _find(connection, caller, request.alert_id))
        clock = queries.ledger_clock(connection)
        # The engine judges actions in event time: an operator acting now on a city
        # replayed from another year must not move its clock (it would fire every deadline
        # in between), yet must stop the alert's escalation in later runs.
        effective = at if clock is None or clock > at else clock
        event = _event(caller, request, subject, at)
        record = store.ActionRecord(
            event_id=event["event_id"], alert_id=request.alert_id, subject=subject,
            action=request.action, operator_id=caller.operator_id, note=request.note,
            assignee=request.assignee, acted_at=at, effective_at=effective, via="ledger")
        _, reason = store.apply_action(connection, record)
        if reason is not None:  # changed between the check and the write: nothing stays
            raise ActionRefused(reason, f"alert {request.alert_id}: {REASONS[reason]}")
    return ActionResult(request.alert_id, request.action, subject, "ledger", record.event_id,
                        at, effective, "the ledger")


def _reachable(bootstrap: str, deadline: float) -> bool:
    """Whether any bootstrap server accepts a TCP connection within ``deadline`` seconds."""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port or 9092)),
                                          timeout=deadline):
                return True
        except (OSError, ValueError):
            continue
    return False


def publish(settings: KafkaSettings, event: dict[str, Any], deadline: float | None = None
            ) -> str:
    """Publish one action (acks=all), keyed by its subject; returns where it went.

    A broker that does not answer is one line within seconds (KafkaUnreachable), naming
    ``--via ledger``, instead of the client's half-minute of retries: the whole of it, from
    the first connection to the acknowledgement, must end by ``deadline``
    (``time.monotonic()``; default :data:`KAFKA_DEADLINE` from now).
    """
    import threading
    import time

    def unreachable(why: str) -> KafkaUnreachable:
        return KafkaUnreachable(
            f"Kafka at {settings.bootstrap} {why}; to record the action without Kafka, "
            "use --via ledger (or set CLOSEDLOOP_ACTIONS_VIA=ledger)")

    if deadline is None:
        deadline = time.monotonic() + KAFKA_DEADLINE
    if not _reachable(settings.bootstrap, max(0.1, (deadline - time.monotonic()) / 2)):
        raise unreachable("is not reachable")
    outcome: list[str | BaseException] = []
    # The client's own timeouts do not bound every step (an address that accepts the
    # connection and never answers holds it half a minute): it runs aside, and is given up
    # on at the deadline (a daemon thread: it ends with the command).
    sender = threading.Thread(target=_send, args=(settings, event, outcome), daemon=True)
    sender.start()
    sender.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise unreachable("did not answer in time")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise unreachable(f"did not take the action ({type(result).__name__})")
    return result


def _send(settings: KafkaSettings, event: dict[str, Any], outcome: list[str | BaseException]
          ) -> None:
    """Declare the topics, send ``event`` and wait for it; the result (where it went, or
    the exception) goes into ``outcome``."""
    import msgspec
    from kafka import KafkaProducer

    from closedloop.streams.kafka.topics import declare_topics, topic_name

    try:
        declare_topics(settings)  # as the worker would: never the broker's auto-create
        producer = KafkaProducer(acks="all", max_block_ms=int(KAFKA_DEADLINE * 1000),
                                 **settings.kafka_python())
        try:
            topic = topic_name(settings.prefix, "action")
            future = producer.send(topic, key=event["subject"].encode(),
                                   value=msgspec.json.encode(event))
            metadata = future.get(timeout=KAFKA_DEADLINE)
            producer.flush(timeout=KAFKA_DEADLINE)
        finally:
            producer.close(timeout=1)
        outcome.append(f"{topic}[{metadata.partition}]@{metadata.offset}")
    except Exception as exc:  # handed to the caller, which says it in one line
        outcome.append(exc)
