"""Charts drawn on the server as SVG: no script, no asset from elsewhere, text escaped.

- :func:`spark`: one district's daily values (a small chart per district: they stay legible
  on a phone, where one chart of many crossing lines does not); days without a report are a
  gap in the line, never a zero.
- :func:`lines`: several series over time on one shared 0–100 % scale (a round's coverage per
  district), with a legend.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from typing import Final

from markupsafe import Markup, escape

from closedloop.streams.console import i18n

__all__ = ["PALETTE", "lines", "spark"]

PALETTE: Final = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989",
                  "#0a7e8c", "#57606a")
"""Line colours; past eight, the same colours dashed."""
_DASHES: Final = ("", "6 3", "2 3")


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points with a value: a missing value breaks the line."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    return [run for run in runs if run]


def _path(run: list[tuple[float, float]]) -> str:
    return " ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in run)


def spark(values: Sequence[tuple[date, int | None]], lang: str, *, title: str,
          width: int = 200, height: int = 72) -> Markup:
    """A district's daily values as a small line chart: its maximum, first and last day,
    and its last value labelled."""
    left, right, top, bottom = 4, 30, 14, 16
    known = [v for _, v in values if v is not None]
    peak = max(known, default=0) or 1
    span = max(len(values) - 1, 1)

    def x(i: int) -> float:
        return left + (width - left - right) * i / span

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - v / peak)

    parts = [f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" '
             f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{left}" y1="{_fmt(y(0))}" x2="{width - right}" '
             f'y2="{_fmt(y(0))}"/>']
    for run in _segments([(x(i), None if v is None else y(v))
                          for i, (_, v) in enumerate(values)]):
        if len(run) == 1:
            parts.append(f'<circle class="dot" cx="{_fmt(run[0][0])}" cy="{_fmt(run[0][1])}" '
                         'r="2.5"/>')
        else:
            parts.append(f'<polyline class="line" points="{_path(run)}"/>')
    last = next(((i, v) for i, (_, v) in reversed(list(enumerate(values))) if v is not None),
                None)
    if last is not None:
        parts.append(f'<circle class="dot" cx="{_fmt(x(last[0]))}" cy="{_fmt(y(last[1]))}" '
                     'r="3"/>')
        parts.append(f'<text class="value" x="{_fmt(x(last[0]) + 6)}" '
                     f'y="{_fmt(y(last[1]) + 4)}">{escape(i18n.number(last[1]))}</text>')
    parts.append(f'<text class="label" x="{left}" y="10">'
                 f'{escape(i18n.text(lang, "chart.max", value=i18n.number(max(known, default=0))))}'
                 "</text>")
    if values:
        parts.append(f'<text class="label" x="{left}" y="{height - 3}">'
                     f"{escape(i18n.day(values[0][0], lang))}</text>")
        parts.append(f'<text class="label end" x="{width - right}" y="{height - 3}">'
                     f"{escape(i18n.day(values[-1][0], lang))}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def lines(series: dict[str, list[tuple[datetime, float | None]]], lang: str, zone: tzinfo, *,
          title: str, width: int = 760, height: int = 300) -> Markup:
    """Series of shares (0–1) over time, one line per name, with a legend below."""
    left, right, top, bottom = 44, 16, 12, 30
    instants = sorted({at for points in series.values() for at, _ in points})
    names = sorted(series)
    rows = (len(names) + 3) // 4
    legend_top = height
    total = height + 20 * rows
    if not instants:
        return Markup("")
    first, last = instants[0].timestamp(), instants[-1].timestamp()
    span = (last - first) or 1.0

    def x(at: datetime) -> float:
        return left + (width - left - right) * (at.timestamp() - first) / span

    def y(share: float) -> float:
        return top + (height - top - bottom) * (1 - share)

    parts = [f'<svg class="chart" viewBox="0 0 {width} {total}" role="img" '
             f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>"]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line class="grid" x1="{left}" y1="{_fmt(y(tick))}" '
                     f'x2="{width - right}" y2="{_fmt(y(tick))}"/>')
        parts.append(f'<text class="label end" x="{left - 6}" y="{_fmt(y(tick) + 4)}">'
                     f"{int(tick * 100)}%</text>")
    ticks = [instants[round(i * (len(instants) - 1) / 3)] for i in range(4)]
    for n, at in enumerate(dict.fromkeys(ticks)):  # up to four instants along the axis
        anchor = "" if n == 0 else " end" if at == instants[-1] else " middle"
        parts.append(f'<text class="label{anchor}" x="{_fmt(x(at))}" y="{height - 8}">'
                     f"{escape(i18n.instant(at, zone))}</text>")
    for n, name in enumerate(names):
        colour, dash = PALETTE[n % len(PALETTE)], _DASHES[n // len(PALETTE) % len(_DASHES)]
        style = f'stroke="{colour}"' + (f' stroke-dasharray="{dash}"' if dash else "")
        for run in _segments([(x(at), None if share is None else y(share))
                              for at, share in series[name]]):
            if len(run) == 1:
                parts.append(f'<circle cx="{_fmt(run[0][0])}" cy="{_fmt(run[0][1])}" r="3" '
                             f'fill="{colour}"/>')
            else:
                parts.append(f'<polyline class="series" {style} points="{_path(run)}"/>')
        lx = left + (n % 4) * (width - left) / 4
        ly = legend_top + 14 + 20 * (n // 4)
        parts.append(f'<line class="series" {style} x1="{_fmt(lx)}" y1="{_fmt(ly - 4)}" '
                     f'x2="{_fmt(lx + 22)}" y2="{_fmt(ly - 4)}"/>')
        parts.append(f'<text class="legend" x="{_fmt(lx + 28)}" y="{_fmt(ly)}">'
                     f"{escape(name)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))
