"""What validation costs on top of JSON parsing: the numbers behind the choice of validator.

Measured side by side in one run, on the same realistic events, and reported as a ratio to
parse-only (``orjson.loads``), because absolute times say more about the machine than about
the code. Variants:

(a) ``orjson.loads`` alone, the baseline;
(b) orjson + the project's decoder (``validate_event``: raw-identifier check + msgspec), and
    (b') ``decode_event``, the project's decoder from bytes (msgspec fast path, (b) on failure);
(c) orjson + pydantic v2 models with the same constraints (defined here; pydantic is only a
    dev dependency), and, for reference, pydantic parsing the JSON itself;
(d) ``msgspec.json`` decoding the bytes straight into the Struct (no raw-identifier check);
(e) (d) plus the raw-identifier check: what a decoder using (d) as its fast path would cost.

Run ``python -m closedloop.streams.bench.decode [-n EVENTS]``. Nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import orjson

from closedloop.schemas.decode import IDENTITY_FIELDS, Rejection, decode_event, validate_event
from closedloop.schemas.events import (
    PSEUDONYM_PATTERN,
    REF_PATTERN,
    Sampling,
    Travel,
)
from closedloop.schemas.identifiers import looks_raw

__all__ = ["format_table", "main", "print_decode_bench", "run_decode_bench"]

REPEATS: Final = 100
BATCH: Final = 2_000
BENCH_TOPICS: Final = ("sampling", "travel")


def _events(topic: str, n: int) -> list[bytes]:
    """``n`` distinct, realistic message values of ``topic`` (as a producer would send)."""
    out: list[bytes] = []
    for i in range(n):
        if topic == "sampling":
            event: dict[str, Any] = {
                "event_id": f"smp-20220906-{i:08d}",
                "occurred_at": f"2022-09-06T09:{i % 60:02d}:{(i * 7) % 60:02d}+08:00",
                "person_id": f"pz:{(i * 2654435761) % 2**128:032x}",
                "tube_id": f"T2022090600{i:06d}",
                "site_id": f"site-hd-{i % 500:04d}",
                "district": "海淀区",
                "pool_size": 10 if i % 4 else 1,
                "site_lat": 39.959 + (i % 100) / 10_000,
                "site_lon": 116.298 + (i % 100) / 10_000,
                "reason": "routine",
            }
        else:
            event = {
                "event_id": f"trv-20220906-{i:08d}",
                "occurred_at": "2022-09-06T08:15:00+08:00",
                "person_id": f"pz:{(i * 40503) % 2**128:032x}",
                "district": "朝阳区",
                "arrived_at": f"2022-09-05T{i % 24:02d}:40:00+08:00",
                "origin": "上海市浦东新区",
                "risk": ("high", "medium", "outside_province", "inside_province")[i % 4],
            }
        out.append(orjson.dumps(event))
    return out


def _naive(payload: bytes) -> bytes:
    """The same event with a naive ``occurred_at``: every validator must refuse it."""
    event = orjson.loads(payload)
    event["occurred_at"] = event["occurred_at"][:19]
    return orjson.dumps(event)


def _pydantic_variants() -> dict[str, dict[str, Callable[[bytes], object]]] | None:
    """Pydantic equivalents of Sampling and Travel, or None when pydantic is not installed."""
    try:
        from typing import Annotated, Literal

        from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter
    except ImportError:
        return None

    person_id = Annotated[str, Field(pattern=PSEUDONYM_PATTERN)]
    ref = Annotated[str, Field(pattern=REF_PATTERN)]
    name = Annotated[str, Field(min_length=1, max_length=200)]
    # strict ints, as msgspec: "10" and true are not a pool size
    pool_size = Annotated[int, Field(strict=True, ge=1, le=100)]

    class PSampling(BaseModel):
        model_config = ConfigDict(frozen=True, extra="ignore")
        event_id: name
        occurred_at: AwareDatetime
        person_id: person_id
        tube_id: ref
        site_id: ref
        district: name
        pool_size: pool_size
        site_lat: Annotated[float, Field(ge=-90.0, le=90.0)] | None = None
        site_lon: Annotated[float, Field(ge=-180.0, le=180.0)] | None = None
        reason: name | None = None

    class PTravel(BaseModel):
        model_config = ConfigDict(frozen=True, extra="ignore")
        event_id: name
        occurred_at: AwareDatetime
        person_id: person_id
        district: name
        arrived_at: AwareDatetime
        origin: name
        risk: Literal["high", "medium", "outside_province", "inside_province"]

    def after_orjson(adapter: TypeAdapter[BaseModel]) -> Callable[[bytes], object]:
        def decode(raw: bytes) -> object:
            return adapter.validate_python(orjson.loads(raw))

        return decode

    variants: dict[str, dict[str, Callable[[bytes], object]]] = {}
    for topic, model in (("sampling", PSampling), ("travel", PTravel)):
        adapter: TypeAdapter[BaseModel] = TypeAdapter(model)
        variants[topic] = {
            "(c) orjson + pydantic v2": after_orjson(adapter),
            "(c') pydantic v2 validate_json": adapter.validate_json,
        }
    return variants


def _project_decoder(topic: str) -> Callable[[bytes], object]:
    def decode(raw: bytes) -> object:
        result = validate_event(topic, orjson.loads(raw))
        if isinstance(result, Rejection):
            raise ValueError(result.reason)
        return result

    return decode


def _project_bytes_decoder(topic: str) -> Callable[[bytes], object]:
    def decode(raw: bytes) -> object:
        result = decode_event(topic, raw)
        if isinstance(result, Rejection):
            raise ValueError(result.reason)
        return result

    return decode


def _variants(topic: str) -> dict[str, Callable[[bytes], object]]:
    model: type[Sampling] | type[Travel] = Sampling if topic == "sampling" else Travel
    decoder = msgspec.json.Decoder(model)
    variants: dict[str, Callable[[bytes], object]] = {
        "(a) orjson.loads (parse only)": orjson.loads,
        "(b) orjson + validate_event": _project_decoder(topic),
        "(b') decode_event (from bytes)": _project_bytes_decoder(topic),
    }
    pydantic = _pydantic_variants()
    if pydantic is not None:
        variants.update(pydantic[topic])
    variants["(d) msgspec.json.decode to Struct"] = decoder.decode
    variants["(e) (d) + raw-identifier check"] = _fast_path(model)
    return variants


def _fast_path(model: type[Sampling] | type[Travel]) -> Callable[[bytes], object]:
    """What a decoder taking (d) as its happy path would cost (falling back on failure)."""
    decoder = msgspec.json.Decoder(model)
    fields = [field for field in IDENTITY_FIELDS if field in model.__struct_fields__]

    def decode(raw: bytes) -> object:
        event = decoder.decode(raw)
        for field in fields:
            value = getattr(event, field)
            if isinstance(value, str) and looks_raw(value):
                raise ValueError("raw_identifier")
        return event

    return decode


def _check_equivalent(name: str, decode: Callable[[bytes], object], sample: bytes) -> None:
    """A variant that accepts a naive timestamp is not doing the same work: refuse to time it."""
    decode(sample)
    if name.startswith("(a)"):
        return
    try:
        decode(_naive(sample))
    except (ValueError, msgspec.ValidationError):
        return
    raise RuntimeError(f"{name} accepted a naive timestamp: not an equivalent validator")


def _batch_time(decode: Callable[[bytes], object], payloads: Sequence[bytes]) -> float:
    start = time.perf_counter()
    for payload in payloads:
        decode(payload)
    return time.perf_counter() - start


def _best_times(
    variants: dict[str, Callable[[bytes], object]], payloads: Sequence[bytes], repeats: int
) -> dict[str, float]:
    """Best batch time per variant. Variants take turns within each repeat, so a load spike
    on this (shared) machine hits them alike rather than skewing one of them."""
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeats):
        for name, decode in variants.items():
            best[name] = min(best[name], _batch_time(decode, payloads))
    return best


def run_decode_bench(n: int = BATCH, repeats: int = REPEATS) -> dict[str, Any]:
    """Time every variant on a batch of ``n`` events per topic; the best of ``repeats`` counts.

    Short batches and many repeats: on a shared machine the best short batch is the one
    least disturbed, which makes the ratios reproducible where a few long runs are not.
    """
    results: dict[str, Any] = {
        "n": n,
        "repeats": repeats,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "versions": _versions(),
        "notes": [],
        "topics": {},
    }
    for topic in BENCH_TOPICS:
        payloads = _events(topic, n)
        variants = _variants(topic)
        if not any("pydantic" in name for name in variants) and not results["notes"]:
            results["notes"].append("pydantic is not installed: variant (c) skipped")
        for name, decode in variants.items():
            _check_equivalent(name, decode, payloads[0])
            _batch_time(decode, payloads[:1000])  # warm-up
        rows: list[dict[str, Any]] = [
            {"variant": name, "per_event_us": seconds / n * 1e6, "events_per_s": n / seconds}
            for name, seconds in _best_times(variants, payloads, repeats).items()
        ]
        baseline = rows[0]["per_event_us"]
        for row in rows:
            row["ratio"] = row["per_event_us"] / baseline
        results["topics"][topic] = rows
    return results


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for package in ("orjson", "msgspec", "pydantic"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def format_table(results: dict[str, Any]) -> str:
    """A markdown table of the results (it reads as plain text too)."""
    lines = [
        "| event | variant | µs/event | events/s | × parse-only |",
        "|---|---|---:|---:|---:|",
    ]
    for topic, rows in results["topics"].items():
        for row in rows:
            lines.append(
                f"| {topic} | {row['variant']} | {row['per_event_us']:.2f} | "
                f"{row['events_per_s']:,.0f} | {row['ratio']:.2f} |"
            )
    versions = ", ".join(f"{k} {v}" for k, v in results["versions"].items())
    lines.append("")
    load = "" if results["load"] is None else f", load average {results['load']:.1f}"
    lines.append(
        f"Best of {results['repeats']} batches of {results['n']:,} events per topic; Python "
        f"{results['python']}, {results['cpus']} CPU(s){load}; {versions}."
    )
    lines.extend(f"Note: {note}" for note in results["notes"])
    return "\n".join(lines)


def print_decode_bench(n: int = BATCH, repeats: int = REPEATS) -> None:
    """Run the benchmark and print its table (for ``closedloop bench`` and ``__main__``)."""
    print(format_table(run_decode_bench(n, repeats)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m closedloop.streams.bench.decode",
        description="Validation cost per event, as a ratio to JSON parsing alone.",
    )
    parser.add_argument("-n", "--events", type=int, default=BATCH, help="events per batch")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="batches; the best counts")
    args = parser.parse_args(argv)
    print_decode_bench(args.events, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
