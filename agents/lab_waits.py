"""A tube's wait at its lab, told to the lab (CONTRACT.md v1.2 §4 ``lab_silent``).

A lab is silent at t when a tube it received at or before t - ``lab_silent_after`` has no
report at t, and it reported nothing in (t - ``lab_silent_after``, t]. So a tube *waits*
over [w, r): w its earliest ``received`` record + ``lab_silent_after``, r its earliest
``reported`` record (and at most ``state_retention`` after its receipt: a tube lost by its
lab must not keep the lab silent for ever, as no key is kept longer). The tube stage sees
every lab record of its tube; it tells the lab's key (:class:`~closedloop.agents.state.
LabTold`, keyed by lab_id) only how the lab's count of waiting tubes changes and the
instants of its reports, never the tube itself, so that the lab's state does not grow with
its tubes in flight.

A wait is told once the tube stage's clock has reached w (a ``wait`` deadline on the tube),
or at once when its records come later than that: the data-entry stage's clock never passes
the clock of a tube partition, so the lab knows every wait begun by its own clock, and holds
none ahead of what its upstream has read. A report ends it (told with the report); so does
the retention, once the clock reaches it. A record read later that moves either end (an
earlier receipt, an earlier report) tells the difference.

Once a tube of one lab has both records and nothing is left for the clock to tell, its
wait is settled and forgotten (most tubes: ~100 bytes each); a later report of it is still
told as a report, and a later ``received`` record of it changes nothing.
"""

from __future__ import annotations

from sys import intern

from closedloop.agents.requirements import Context, close_req, due_of, open_req
from closedloop.agents.state import LabTold, LabWait, TubeState
from closedloop.schemas.instants import shared

__all__ = ["lapse_wait", "on_lab_record"]

_Told = tuple[int, int | None] | None


def on_lab_record(ctx: Context, st: TubeState, lab_id: str, status: str, at: int,
                  settled: bool) -> None:
    """A ``received`` or ``reported`` record of the tube at ``lab_id`` (event time ``at``):
    tell the lab what changes. ``settled``: the tube's wait at that lab was settled (its
    first report came from it, and no wait is kept)."""
    if settled:
        if status == "reported":
            ctx.out.labs.append((lab_id, LabTold([], [], [at])))
        return
    if _one_wait(ctx, st, lab_id, status, at):
        return
    wait = _wait_of(st, lab_id)
    reported: list[int] = []
    if status == "received":
        if wait.got is not None and wait.got <= at:
            return  # an earlier receipt is known: nothing changes
        wait.got = at
    else:
        reported.append(at)
        if wait.rep is None or at < wait.rep:
            wait.rep = at
    _tell(ctx, wait, reported)
    _arm(ctx, st)
    if wait is st.wait and wait.more is None and wait.got is not None and (
            wait.rep is not None and due_of(st, "wait") is None):
        st.wait = None  # settled: nothing is left to tell of it


def _one_wait(ctx: Context, st: TubeState, lab_id: str, status: str, at: int) -> bool:
    """What :func:`on_lab_record` does for the records of a tube at one lab, in the order
    nearly every tube has them, without its general bookkeeping: the first ``received``
    record before its wait begins, and the first ``reported`` record before the wait
    begins or after it was told open. Returns False, changing nothing, for any other."""
    policy = ctx.policy
    wait = st.wait
    if wait is None:
        if status != "received":
            return False
        begins = at + policy.lab_silent_after
        if begins >= at + policy.state_retention or begins <= ctx.clock:
            return False
        st.wait = LabWait(intern(lab_id), at)
        open_req(st, "wait", begins)  # told when the clock reaches it
        return True
    got = wait.got
    if (status != "reported" or wait.more is not None or wait.lab != lab_id or got is None
            or wait.rep is not None):
        return False
    begins = got + policy.lab_silent_after
    if wait.told is None and at <= begins:
        stops = []  # reported before its wait could begin: the lab needs the report alone
    elif (wait.told == begins and wait.until is None and begins < at
          and begins <= ctx.clock and at < got + policy.state_retention):
        stops = [at]  # the wait told open ends at the report
    else:
        return False
    ctx.out.labs.append((wait.lab, LabTold([], stops, [at])))
    close_req(st, "wait")
    st.wait = None  # settled: nothing is left to tell of it
    return True


def _one_begun(ctx: Context, st: TubeState) -> int | None:
    """What :func:`lapse_wait` does when the clock reaches the beginning of a tube's one
    wait, not yet told and unreported (nearly every wait told): tell it open, and return
    its retention, the next deadline. None, changing nothing, in any other case."""
    wait = st.wait
    if wait is None or wait.more is not None or wait.told is not None or wait.rep is not None:
        return None
    got = wait.got
    if got is None:
        return None
    begins = got + ctx.policy.lab_silent_after
    retained = got + ctx.policy.state_retention
    if not begins <= ctx.clock < retained:
        return None
    ctx.out.labs.append((wait.lab, LabTold([begins], [], [])))
    wait.told = shared(begins)
    return retained


def lapse_wait(ctx: Context, st: TubeState, tube_id: str, name: str, due: int) -> int | None:
    """The clock reached a wait's beginning or its retention: tell the lab."""
    retained = _one_begun(ctx, st)
    if retained is not None:
        return retained
    wait: LabWait | None = st.wait
    while wait is not None:
        _tell(ctx, wait, [])
        wait = _next(st, wait)
    return _due(ctx, st)


def _wait_of(st: TubeState, lab_id: str) -> LabWait:
    wait = st.wait
    if wait is None:
        st.wait = wait = LabWait(intern(lab_id))  # a city's labs are few: one string each
        return wait
    if wait.lab == lab_id:
        return wait
    for other in wait.more or ():
        if other.lab == lab_id:
            return other
    other = LabWait(intern(lab_id))
    wait.more = (*(wait.more or ()), other)
    return other


def _next(st: TubeState, wait: LabWait) -> LabWait | None:
    """The tube's waits in order: its first lab's, then the others'."""
    first = st.wait
    if first is None:
        return None
    more = first.more or ()
    if wait is first:
        return more[0] if more else None
    at = more.index(wait) + 1
    return more[at] if at < len(more) else None


def _target(ctx: Context, wait: LabWait) -> _Told:
    """The interval the lab should count the tube waiting over, as far as the clock has
    reached: None before it begins (or when it never does)."""
    got = wait.got
    if got is None:
        return None
    policy = ctx.policy
    begins = got + policy.lab_silent_after
    retained = got + policy.state_retention
    rep = wait.rep
    ends = retained if rep is None or rep > retained else rep
    if begins >= ends or begins > ctx.clock:
        return None
    # a report's end is a fact read; the retention's is told once the clock reaches it
    return begins, (ends if rep is not None or ends <= ctx.clock else None)


def _tell(ctx: Context, wait: LabWait, reported: list[int]) -> None:
    """Send the lab the difference between what it counts and what it should, and
    ``reported``."""
    now = _target(ctx, wait)
    before: _Told = None if wait.told is None else (wait.told, wait.until)
    starts: list[int] = []
    stops: list[int] = []
    if before != now:
        if before is not None:
            stops.append(before[0])
            if before[1] is not None:
                starts.append(before[1])
        if now is not None:
            starts.append(now[0])
            if now[1] is not None:
                stops.append(now[1])
        for instant in [instant for instant in starts if instant in stops]:
            starts.remove(instant)
            stops.remove(instant)
        # instants as shared ints: a tube in flight keeps them (32 bytes each otherwise)
        wait.told, wait.until = (None, None) if now is None else (
            shared(now[0]), None if now[1] is None else shared(now[1]))
    if starts or stops or reported:
        ctx.out.labs.append((wait.lab, LabTold(starts, stops, reported)))


def _arm(ctx: Context, st: TubeState) -> None:
    due = _due(ctx, st)
    if due is None:
        close_req(st, "wait")
    else:
        open_req(st, "wait", due)


def _due(ctx: Context, st: TubeState) -> int | None:
    """The next instant the clock changes what a lab should count of the tube: a wait's
    beginning, or the retention of a wait told open."""
    policy = ctx.policy
    due: int | None = None
    wait: LabWait | None = st.wait
    while wait is not None:
        got = wait.got
        if got is not None:
            begins = got + policy.lab_silent_after
            retained = got + policy.state_retention
            ends = retained if wait.rep is None or wait.rep > retained else wait.rep
            instant = None
            if begins < ends:
                if wait.told is None and begins > ctx.clock:
                    instant = begins
                elif wait.told is not None and wait.until is None:
                    instant = retained
            if instant is not None and (due is None or instant < due):
                due = instant
        wait = _next(st, wait)
    return due
