"""The typed per-key state of the three stages, and the messages that flow between them.

The field names and shapes are those of the JSON dicts and lists state used to be, so a
changelog written before still decodes, and so do forwards and contributions in flight.

A city's roster (~10 million persons) lives in the person stage's table, so state is compact:
instants are epoch seconds (``int``), small records are ``array_like`` (a JSON array in the
changelog, no field names), containers a key rarely needs default to ``None`` (no empty dict
per person), the records a person seldom adds to (samplings, roster entries) are tuples (with
one record 48 bytes, where a list took 80 to 96; the same JSON array), and no state object
takes part in a reference cycle (``gc=False``: no GC header, never scanned by the
collector). Everything here is plain ``msgspec.Struct``: mypy sees every field, and the
worker encodes a key's state to bytes for its table with ``msgspec.json``.

Requirement names stay strings (``test:2022-09-06``, ``esc:<alert_id>``, …) in the ``req``
map: :func:`split_name` is the one place that parses them. The one requirement nearly every
key has, ``gc`` (forget the key once idle), is kept apart as ``gc_due``, so most keys own no
``req`` dict at all (~190 bytes a person); a state changelogged before that, with ``gc`` in
``req``, is moved over when read (:func:`upgraded`).

Likewise the fields of the loops only a few persons enter (a push and its follow-up records,
gauges, cohorts, retests, identity, entries, visits) live in one :class:`PersonLoops`,
``PersonState.loops``, None for a testing round's typical person (one slot, not thirteen:
~96 bytes a person). A person changelogged before, with those fields at the top level, is
read by :func:`changelog_decoder` (the worker's one way to read a changelog) into ``loops``.

A sample holds its place (site, coordinates, district) as one :class:`Site` shared by the
samples taken there, and a tube its members as a tuple of person ids with a tuple of their
swab times beside it: samples changelogged with their place inline and tubes with a dict of
members are read by :func:`changelog_decoder` into these forms.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from typing import Final

import msgspec

__all__ = [
    "FORWARD_TYPES",
    "Change",
    "Contribution",
    "Entry",
    "Escalate",
    "EscalationEntry",
    "FollowupChain",
    "Forward",
    "Interval",
    "Keyed",
    "LabReport",
    "LabTold",
    "LabWait",
    "LastResult",
    "Membership",
    "PersonLoops",
    "PersonState",
    "Push",
    "ReportState",
    "Result",
    "Retest",
    "RetestNeed",
    "RosterEntry",
    "RoundPart",
    "Sample",
    "Sampled",
    "Site",
    "TubeState",
    "Visit",
    "changelog_batch_decoder",
    "changelog_decoder",
    "changelog_exact_decoder",
    "is_blank",
    "legacy_ids",
    "loops_of",
    "sampled_between",
    "split_name",
    "upgraded",
]


def split_name(name: str) -> tuple[str, str]:
    """A requirement name's kind and argument: ``test:2022-09-06`` -> ("test", "2022-09-06");
    ``gc`` -> ("gc", ""). The kind picks the lapse handler."""
    kind, _, argument = name.partition(":")
    return kind, argument


# -- small records ----------------------------------------------------------------------------


class Site(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Where a swab was taken: one object for every sample taken there (a city's samples
    come from a few hundred sites; agents/person.py shares them)."""

    site: str  # identity: two sites too far apart for the time between them
    lat: float | None
    lon: float | None
    district: str  # the district of an identity_suspect alert


class Sample(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One swab of a person, as the person's loops need it (tests, retests, identity).

    Four slots, its place shared: 48 bytes a sample, where seven slots took 80.
    """

    at: int  # collection time
    tube: str  # a retest must be in another tube
    pool: int  # pool_size: a pooled positive's retest must be a single tube
    place: Site

    @property
    def site(self) -> str:
        return self.place.site

    @property
    def lat(self) -> float | None:
        return self.place.lat

    @property
    def lon(self) -> float | None:
        return self.place.lon

    @property
    def district(self) -> str:
        return self.place.district


class _FlatSample(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A sample as changelogged before :class:`Site`: its place's four fields inline."""

    at: int
    tube: str
    pool: int
    site: str
    lat: float | None
    lon: float | None
    district: str

    def upgraded(self) -> Sample:
        return Sample(self.at, self.tube, self.pool,
                      Site(self.site, self.lat, self.lon, self.district))


class LabReport(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A tube's first report: its result (later reports are ignored)."""

    at: int
    result: str  # negative | positive | invalid
    lab_id: str


class LabWait(msgspec.Struct, array_like=True, omit_defaults=True, gc=False):
    """What a tube's lab must know of its wait (CONTRACT.md v1.2 §4 ``lab_silent``): the
    earliest ``received`` and ``reported`` records of the tube at ``lab`` (event time), and
    the interval [``told``, ``until``) over which that lab counts the tube waiting (``until``
    None: open), as told so far. ``more``: the same for another lab's records of the tube
    (a tube nearly always has one lab)."""

    lab: str
    got: int | None = None
    rep: int | None = None
    told: int | None = None
    until: int | None = None
    more: tuple[LabWait, ...] | None = None


class LastResult(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """The person's latest result, for person-status."""

    at: int
    result: str


class EscalationEntry(msgspec.Struct, array_like=True, gc=False):
    """What an open escalation remembers of its alert (it lives at most two windows)."""

    kind: str  # the alert's kind: how it can be satisfied
    level: int  # the next level to raise (2, then 3)
    due: int  # the alert's due instant: facts after it may satisfy the requirement
    hint: str | None  # a test requirement, a lab stage or a retest's tube: which facts count
    person_id: str | None
    tube_id: str | None
    district: str | None
    acted: int | None = None  # the earliest operator action (ack or resolve) on the alert


class FollowupChain(msgspec.Struct, kw_only=True, gc=False):
    """The daily clearance chain of a located push."""

    anchor: int  # the last clearance: the next lapse is anchor + followup_every
    floor: int  # the last instant judged: clearances at or before it are spent


class Push(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """A travel push (or a checkpoint's) and the regimen it opened."""

    pushed_at: int  # a newer push replaces this one (ties: the larger event_id)
    event_id: str
    arrived_at: int  # located/released records count from it on
    risk: str  # the regimen
    district: str  # where the push's alerts and counts go
    origin: str
    ends_at: int  # end of the regimen's last day (a replaced push: its replacement)
    first_day: str  # local date of arrival (regimen day 1), ISO
    fu: FollowupChain | None = None  # set once located
    source: str = "travel"  # v1.1: "checkpoint" for a push a risk-area entry made


class Entry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A checkpoint record, kept until its proof, counties and landing test are judged."""

    at: int
    checkpoint: str
    district: str
    role: str
    proof: int | None  # proof_sampled_at
    visited: list[str]


class Visit(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A sentinel visit, kept until its test window is judged."""

    at: int
    facility: str
    kind: str  # facility_kind: picks the window
    district: str
    reason: str


class Interval(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """The key's interval [start, end) in one daily-report gauge (end None: still open)."""

    district: str | None
    start: int
    end: int | None


class Change(msgspec.Struct, array_like=True, frozen=True, order=True, gc=False):
    """A roster change; ordered like the contract wants (a leave before a join at an instant)."""

    at: int
    active: bool
    district: str


class Membership(msgspec.Struct, kw_only=True, gc=False):
    """A person's membership in one cohort and its testing chain."""

    district: str  # of the latest join
    changes: list[Change]  # sorted, the latest KEEP_CHANGES: membership in any arrival order
    since: int | None = None  # the chain's interval [since, until)
    until: int | None = None
    anchor: int | None = None  # the last sampling counted (or since): next due is + test_every
    floor: int | None = None  # the last instant judged


class RetestNeed(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A retest a tube's result asks of the person."""

    reported: int  # the window opens at the report
    single: bool  # a pooled positive needs a single tube; an invalid result any tube
    result: str
    district: str | None


class RosterEntry(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A ``population`` record (the roster, agents/roster.py); sorted by (at, event_id)."""

    at: int
    event_id: str
    district: str
    grid: str | None
    status: str  # resident | floating | left


# -- per-key state ----------------------------------------------------------------------------


class Keyed(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """What every stage's key holds: its deadlines, the alerts it raised, their escalations."""

    last: int = 0  # the latest activity: ``gc`` forgets a key idle for state_retention
    # requirement name -> due instant (the index wants the minimum); None: none open
    req: dict[str, int] | None = None
    gc_due: int | None = None  # the ``gc`` requirement's due (agents/requirements.keep_alive)
    sent: dict[str, int] | None = None  # alert ids raised -> due: never twice, pruned by due
    esc: dict[str, EscalationEntry] | None = None  # open escalations by alert id
    acts: dict[str, int] | None = None  # actions that came before their alert, by alert id


class TubeState(Keyed, kw_only=True, omit_defaults=True, gc=False):
    """The tube join: its members' swabs and its lab records."""

    # its members (interned person ids, in arrival order) and, beside them, their swab times:
    # two tuples a tube, where a dict took ~230 bytes (a round's ~3 members a tube)
    persons: tuple[str, ...] | None = None
    swabbed: tuple[int, ...] | None = None  # swabbed[i]: when persons[i] was swabbed
    pool: int | None = None  # pool_size, fixed by the first sampling
    district: str | None = None  # of the first sampling
    first: int | None = None  # the earliest collection: the SLAs count from it
    # lab stages already judged (once per tube and stage): one shared tuple per combination
    sla: tuple[str, ...] | None = None
    recv: int | None = None  # the earliest lab record
    rep: LabReport | None = None
    wait: LabWait | None = None  # what its lab counts of it (agents/lab_waits.py)


class _DictTubeState(TubeState, kw_only=True, omit_defaults=True, gc=False):
    """A changelogged tube as written before ``persons``/``swabbed``: its members in a dict,
    person_id -> swab time (in arrival order, as JSON keeps it). Read, then moved into the
    tuples (:func:`_untangled`); never kept."""

    members: dict[str, int] | None = None


class PersonLoops(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """What a person's occasional loops keep: travel pushes and their follow-up records,
    report gauges, cohorts, retests, identity alerts, checkpoint entries, sentinel visits.

    A testing round's typical person (on the roster, swabbed, a result) has none of these:
    kept apart, they cost such a person one slot (``PersonState.loops`` None) instead of
    thirteen (~96 bytes a person of a 10-million roster). Made on a loop's first write
    (:func:`loops_of`); once made it stays, even emptied (a few persons).
    """

    push: Push | None = None  # the current regimen
    prevs: dict[int, Push] | None = None  # replaced pushes that still owe a lapse, by pushed_at
    prev_push: Push | None = None  # the one replaced push of states written before ``prevs``
    located: list[int] | None = None  # sorted followup records, by kind
    clears: list[int] | None = None  # located or visit
    released: list[int] | None = None
    located_done: list[int] | None = None  # located instants counted for an earlier journey
    iv: dict[str, Interval] | None = None  # gauge -> the key's interval in it
    cohorts: dict[str, Membership] | None = None
    retests: dict[str, RetestNeed] | None = None  # by the tube that asked
    id_days: list[str] | None = None  # local days (ISO) with an identity_suspect already
    entries: dict[str, Entry] | None = None  # v1.1 checkpoint records by event_id
    visits: dict[str, Visit] | None = None  # v1.1 sentinel visits by event_id


class PersonState(Keyed, kw_only=True, omit_defaults=True, gc=False):
    """Every per-person loop: travel push, cohorts, retests, identity (in ``loops``), and
    what a round's every person has: samplings, latest result, roster entries."""

    district: str | None = None  # the latest known, for person-status
    samples: tuple[Sample, ...] | None = None  # sorted by (at, tube), pruned by state_retention
    last_result: LastResult | None = None
    loops: PersonLoops | None = None  # None until a loop of a few persons writes (loops_of)
    roster: tuple[RosterEntry, ...] | None = None  # population records, the latest few (roster.py)


def loops_of(st: PersonState) -> PersonLoops:
    """The person's :class:`PersonLoops`, made on first use: for a loop about to write.
    (A read tests ``st.loops is None``, so a person only looked at gets none.)"""
    loops = st.loops
    if loops is None:
        st.loops = loops = PersonLoops()
    return loops


class _FlatPersonState(PersonState, kw_only=True, omit_defaults=True, gc=False):
    """A changelogged person as written before :class:`PersonLoops`, its fields at the top
    level (the new shape decodes too): read, then moved into ``loops`` (:func:`_unflattened`).
    Never kept: its thirteen extra slots are what ``loops`` saves. The shape of old records:
    a field added to :class:`PersonLoops` later has no flat form to read."""

    push: Push | None = None
    prevs: dict[int, Push] | None = None
    prev_push: Push | None = None
    located: list[int] | None = None
    clears: list[int] | None = None
    released: list[int] | None = None
    located_done: list[int] | None = None
    iv: dict[str, Interval] | None = None
    cohorts: dict[str, Membership] | None = None
    retests: dict[str, RetestNeed] | None = None
    id_days: list[str] | None = None
    entries: dict[str, Entry] | None = None
    visits: dict[str, Visit] | None = None


class _FlatSamplesPersonState(PersonState, kw_only=True, omit_defaults=True, gc=False):
    """A changelogged person whose samples hold their place inline (before :class:`Site`)."""

    samples: tuple[_FlatSample, ...] | None = None  # type: ignore[assignment]


class _FlatAllPersonState(_FlatPersonState, kw_only=True, omit_defaults=True, gc=False):
    """A person changelogged with its loops flat and its samples' places inline."""

    samples: tuple[_FlatSample, ...] | None = None  # type: ignore[assignment]


class ReportState(Keyed, kw_only=True, omit_defaults=True, gc=False):
    """A district's daily-report buckets."""

    days: dict[str, dict[str, int]] | None = None  # report day (ISO) -> field -> count
    gauges: dict[str, int] | None = None  # running totals of the gauges
    reported: str | None = None  # the last day reported
    lags: dict[str, list[int]] | None = None  # report day (ISO) -> entry lags (v1.2), seconds
    # the key of a testing round (streams: ``round_sum_key``): its reports' shares so far,
    # by "stage:as_of" then person partition (agents/round_sum.py)
    rparts: dict[str, dict[int, RoundPart]] | None = None
    # per report stage, the as_of of the latest report made: every earlier one of that stage
    # is made too, since each partition sends its shares in as_of order. One number a stage,
    # where a list of every report made grew by one a report and was searched for each share.
    made_through: dict[int, int] | None = None
    rdone: list[str] | None = None  # the reports made, "stage:as_of", as older changelogs hold


def sampled_between(st: PersonState, since: int, until: int,
                    other_than: str | None = None) -> bool:
    """Was the person swabbed in [since, until] (into a tube other than ``other_than``)?"""
    return any(since <= s.at <= until and s.tube != other_than for s in st.samples or ())


def is_blank(st: Keyed) -> bool:
    """Is this a fresh state nothing was recorded in? (Such a state is never stored.)

    A ``req`` emptied in place counts as none, and so do a person's ``loops`` left empty.
    """
    if st.req or st.gc_due is not None or st.last != 0:
        return False
    if st.req is not None:
        st = msgspec.structs.replace(st, req=None)
    if isinstance(st, PersonState) and st.loops is not None and st.loops == _NO_LOOPS:
        st = msgspec.structs.replace(st, loops=None)
    return st == type(st)()


_NO_LOOPS: Final = PersonLoops()  # compared with, never written to


def upgraded(st: Keyed) -> Keyed:
    """``st`` as decoded from a changelog, with a ``gc`` requirement written before
    ``gc_due`` existed (``"req": {"gc": due}``) moved to ``gc_due``; the same object."""
    req = st.req
    if req is not None:
        due = req.pop("gc", None)
        if due is not None:
            st.gc_due = due
        if not req:
            st.req = None
    return st


_PERSON_FIELDS: Final = PersonState.__struct_fields__
_FLAT_FIELDS: Final = tuple(
    name for name in _FlatPersonState.__struct_fields__ if name not in _PERSON_FIELDS)
# a flat field's name as a JSON key anywhere: a person written without is decoded as it is
_FLAT_KEY: Final = re.compile(b'"(?:' + b"|".join(n.encode() for n in _FLAT_FIELDS) + b')"')


def changelog_decoder(state: type[Keyed]) -> Callable[[bytes], Keyed]:
    """Reads a changelogged state of ``state``'s stage, whatever version wrote it
    (:func:`upgraded`; a person with its loops flat, as before :class:`PersonLoops`, gets
    them moved into ``loops``: msgspec would drop the unknown keys silently).

    Raises :class:`msgspec.DecodeError` on a record it cannot read.
    """
    decode = msgspec.json.Decoder(state).decode
    if state is TubeState:
        decode_dict = msgspec.json.Decoder(_DictTubeState).decode

        def tube(raw: bytes) -> Keyed:
            if _MEMBERS_KEY not in raw:
                return upgraded(decode(raw))
            return upgraded(_untangled(decode_dict(raw)))

        return tube
    if state is not PersonState:
        return lambda raw: upgraded(decode(raw))
    decode_flat = msgspec.json.Decoder(_FlatPersonState).decode
    decode_inline = msgspec.json.Decoder(_FlatSamplesPersonState).decode
    decode_both = msgspec.json.Decoder(_FlatAllPersonState).decode

    def person(raw: bytes) -> Keyed:
        flat = _FLAT_KEY.search(raw) is not None
        if _INLINE_SAMPLE.search(raw) is None:
            if not flat:  # the usual person: no loop, in either shape
                return upgraded(decode(raw))
            return upgraded(_unflattened(decode_flat(raw)))
        if flat:
            return upgraded(_unflattened(_placed(decode_both(raw))))
        return upgraded(_unflattened(_placed(decode_inline(raw))))

    return person


def changelog_batch_decoder(
    state: type[Keyed],
) -> tuple[Callable[[bytes], bool], Callable[[bytes], list[Keyed] | None]]:
    """(``older``, ``decode``): ``older(raw)`` is false for a changelogged state of ``state``'s
    stage that :func:`changelog_decoder` reads as it is, :func:`upgraded` at most (not a flat
    person, no event ids of its own), and for a JSON array of such states (it looks for the
    older shapes' keys anywhere: one call answers for a whole restore, as a rule, and one
    by one only when it finds some); ``decode`` reads a JSON array of such states in one
    call (a restore's millions of records would cost a call each), or gives None when one of
    them cannot be read: then read them one by one.
    """
    decode = msgspec.json.Decoder(list[state]).decode  # type: ignore[valid-type]
    flat = _FLAT_KEY.search if state is PersonState else None
    tube = state is TubeState

    def older(raw: bytes) -> bool:
        return (b'"ids"' in raw or (tube and _MEMBERS_KEY in raw) or (flat is not None and (
            flat(raw) is not None or _INLINE_SAMPLE.search(raw) is not None)))

    return older, _array_reader(decode)


def changelog_exact_decoder(state: type[Keyed]) -> Callable[[bytes], list[Keyed] | None]:
    """Reads a JSON array of ``state``'s changelogged states in one call when every one of
    them has this version's shape exactly, else gives None (then :func:`changelog_batch_decoder`
    tells the shapes apart). A restore's records almost all have it, and telling older shapes
    apart by their keys costs more than reading: a person's loops hold keys that an older
    person had at its top level, so a search of the bytes finds them in every person with a
    loop.

    Exactly: no key at the top level that the state has no field for (an older shape's
    field, or its own event ids, or a later version's), and every value of its field's type
    (a sample with its place inline is not). The states are decoded as a subclass that
    forbids unknown fields, then made ``state`` again: the same slots, so the class is all
    that changes.
    """
    exact = types.new_class(f"_Exact{state.__name__}", (state,), {
        "forbid_unknown_fields": True, "kw_only": True, "omit_defaults": True, "gc": False})
    return _array_reader(msgspec.json.Decoder(list[exact]).decode,  # type: ignore[valid-type]
                         made=state)


def _array_reader(decode: Callable[[bytes], list[Keyed]], made: type[Keyed] | None = None
                  ) -> Callable[[bytes], list[Keyed] | None]:
    """A JSON array of states read by ``decode``, each :func:`upgraded` (and made of class
    ``made``), or None when the array cannot be read."""

    def states(array: bytes) -> list[Keyed] | None:
        try:
            decoded = decode(array)
        except msgspec.DecodeError:
            return None
        for st in decoded:
            if made is not None:
                st.__class__ = made
            if st.req is not None:
                upgraded(st)
        return decoded

    return states


class _Remembered(msgspec.Struct):
    ids: dict[str, int] | None = None


_decode_remembered = msgspec.json.Decoder(_Remembered).decode


def legacy_ids(raw: bytes) -> dict[str, int] | None:
    """The event ids a changelogged state remembered itself (``"ids"``: ``topic:event_id``
    -> event time), as states did before each partition kept its own; None for the rest.
    The state decoders leave the field out: it is the partition's now."""
    if b'"ids"' not in raw:
        return None
    return _decode_remembered(raw).ids


# a sample changelogged with its place inline: its fourth item is the site's id, a string
# (a tube id, like a site id, has no quote in it: the contract's identifier pattern)
_INLINE_SAMPLE: Final = re.compile(
    rb'"samples"\s*:\s*\[\s*\[\s*-?\d+\s*,\s*"[^"]*"\s*,\s*-?\d+\s*,\s*"')


def _placed(old: PersonState) -> PersonState:
    """``old``, decoded with its samples' places inline, with samples of this version."""
    inline: tuple[_FlatSample, ...] | None = old.samples  # type: ignore[assignment]
    if inline is not None:
        old.samples = tuple(sample.upgraded() for sample in inline)
    return old


_MEMBERS_KEY: Final = b'"members"'  # a tube's members as a dict: no other state has the key
_TUBE_FIELDS: Final = TubeState.__struct_fields__


def _untangled(old: _DictTubeState) -> TubeState:
    """``old`` as a :class:`TubeState`, its members' dict as ``persons`` and ``swabbed``."""
    fields = {name: getattr(old, name) for name in _TUBE_FIELDS}
    if old.members:
        fields["persons"] = tuple(old.members)
        fields["swabbed"] = tuple(old.members.values())
    return TubeState(**fields)


def _unflattened(old: PersonState) -> PersonState:
    """``old`` (a subclass, as decoded) as a :class:`PersonState`, its flat loop fields (if
    any) in ``loops``."""
    flat = {name: value for name in _FLAT_FIELDS
            if (value := getattr(old, name, None)) is not None}
    loops = old.loops
    if flat:
        loops = PersonLoops(**flat) if loops is None else msgspec.structs.replace(loops, **flat)
    fields = {name: getattr(old, name) for name in _PERSON_FIELDS}
    fields["loops"] = loops
    return PersonState(**fields)


# -- messages between stages ------------------------------------------------------------------


class Sampled(msgspec.Struct, tag="sampled", tag_field="type", gc=False):
    """Tube -> person: the person was swabbed into a tube (the fields of a :class:`Sample`)."""

    at: int
    tube: str
    pool: int
    site: str
    lat: float | None
    lon: float | None
    district: str


class Result(msgspec.Struct, tag="result", tag_field="type", gc=False):
    """Tube -> person: the result of a tube the person is in."""

    at: int
    tube: str
    result: str


class Retest(msgspec.Struct, tag="retest", tag_field="type", gc=False):
    """Tube -> person: a pooled positive or an invalid result asks for a new sampling."""

    tube: str
    reported: int
    result: str
    single: bool
    district: str | None


class Escalate(msgspec.Struct, tag="escalate", tag_field="type", gc=False):
    """Tube -> person: a single tube's positive is the person's to escalate."""

    at: int
    alert: str
    entry: EscalationEntry


Forward = Sampled | Result | Retest | Escalate
FORWARD_TYPES: Final = (Sampled, Result, Retest, Escalate)


class RoundPart(msgspec.Struct, tag="rpart", tag_field="type", gc=False):
    """Person -> report: one person partition's share of a testing round's report.

    ``counts`` (district -> [in_scope, sampled, not_on_roster]) are that partition's persons'
    as of ``at``; ``delays`` (final only: district -> catch-up delays in seconds) what the
    median needs. The report is made once the shares of all ``of`` partitions are in.
    """

    round_id: str
    stage: int  # 0 progress, 1 close, 2 final (agents/rounds.py STAGES)
    at: int  # as_of
    counts: dict[str, list[int]]
    delays: dict[str, list[int]] = {}
    source: int = 0  # the person partition
    of: int = 1  # how many person partitions send a share


class LabTold(msgspec.Struct, tag="lab_told", tag_field="type", gc=False):
    """Tube -> data-entry stage, keyed by lab_id: how the lab's count of waiting tubes
    changes (+1 at each of ``starts``, -1 at each of ``stops``, event time) and the instants
    of its ``reported`` records. Never a tube id: the lab's state must not grow with its
    tubes in flight."""

    starts: list[int]
    stops: list[int]
    reports: list[int]


class Contribution(msgspec.Struct, tag="part", tag_field="type", gc=False):
    """Tube/person -> report: count ``d`` in ``field`` of ``district``'s report at ``at``."""

    district: str
    at: int
    field: str
    d: int
