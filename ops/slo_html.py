"""The stability report as one self-contained HTML page: the summary table and four timelines drawn here as
inline SVG (axes, one path per series, the target line, a legend), inline CSS, no script and no external
resource, so it opens from a file or a CI artifact as it is. Pure: data in, text out."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Literal

from ops.slo_plan import HEADER, Report, percent, rows, summary_line

Unit = Literal["ratio", "s", "count"]
WIDTH, HEIGHT = 1040, 260
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 14, 34
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
           "#393b79")
TARGET_COLOUR = "#d62728"
X_TICKS = 6
Y_TICKS = 5

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 6px}p.meta{color:#555;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f0f0f0}td.met{background:#e3f4e3}td.missed{background:#fbe0e0}td.nodata{background:#f3f3f3}
svg{display:block;background:#fcfcfc}svg text{font-size:11px;fill:#444}.axis{stroke:#888;stroke-width:1}
.grid{stroke:#e4e4e4;stroke-width:1}.data{fill:none;stroke-width:2.5;stroke-linecap:round;stroke-linejoin:round}.target{stroke:#d62728;stroke-width:1.5;
stroke-dasharray:6 4}ul.legend{list-style:none;padding:0;margin:4px 0 0 72px;font-size:12px}
ul.legend li{display:inline-block;margin-right:16px}ul.legend span{display:inline-block;width:14px;height:4px;
margin-right:5px;vertical-align:middle}"""


@dataclass(frozen=True)
class Line:
    name: str
    points: tuple[tuple[float, float], ...]  # (unix seconds, value), in time order


@dataclass(frozen=True)
class Timeline:
    name: str  # the objective it shows
    title: str
    unit: Unit
    target: float | None  # where the dashed target line goes (None: none)
    target_label: str
    lines: tuple[Line, ...]
    start: float
    end: float
    step: float  # seconds between two points; a longer gap breaks the path


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above value (1 for nothing above 0)."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power * (1 + 1e-9):
            return float(factor * power)
    return float(10 * power)


def value_text(value: float, unit: Unit) -> str:
    if unit == "ratio":
        return percent(value)
    text = f"{value:.3g}"
    return f"{text}s" if unit == "s" else text


def time_text(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%m-%d %H:%M")


def _xy(t: float, v: float, tl: Timeline, top: float) -> tuple[float, float]:
    span = (tl.end - tl.start) or 1.0
    x = LEFT + (t - tl.start) / span * (WIDTH - LEFT - RIGHT)
    y = TOP + (1 - v / top) * (HEIGHT - TOP - BOTTOM)
    return round(x, 1), round(y, 1)


def path_d(line: Line, tl: Timeline, top: float) -> str:
    """M/L commands through the points; a gap longer than 1.5 steps starts a new subpath, and a subpath of one
    point gets a zero-length segment (`h0`), drawn as a dot by the round line caps."""
    subpaths: list[list[str]] = []
    last: float | None = None
    for t, v in line.points:
        x, y = _xy(t, v, tl, top)
        if last is None or t - last > 1.5 * tl.step:
            subpaths.append([f"M{x:g},{y:g}"])
        else:
            subpaths[-1].append(f"L{x:g},{y:g}")
        last = t
    return " ".join(" ".join(p if len(p) > 1 else [*p, "h0"]) for p in subpaths)


def _top(tl: Timeline) -> float:
    values = [v for line in tl.lines for _, v in line.points]
    return nice_max(max([*values, tl.target or 0.0, 0.0]))


def svg(tl: Timeline) -> str:
    """One timeline: grid, axes with ticks, a path per line (class data), the target line (class target)."""
    top = _top(tl)
    bottom_y, right_x = HEIGHT - BOTTOM, WIDTH - RIGHT
    out = [f'<svg id="timeline-{escape(tl.name)}" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(tl.title)}">']
    for i in range(Y_TICKS + 1):
        value = top * i / Y_TICKS
        _, y = _xy(tl.start, value, tl, top)
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y:g}" x2="{right_x}" y2="{y:g}"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:g}" text-anchor="end">{escape(value_text(value, tl.unit))}</text>')
    for i in range(X_TICKS + 1):
        t = tl.start + (tl.end - tl.start) * i / X_TICKS
        x, _ = _xy(t, 0, tl, top)
        anchor = "start" if i == 0 else "end" if i == X_TICKS else "middle"
        out.append(f'<line class="axis" x1="{x:g}" y1="{bottom_y}" x2="{x:g}" y2="{bottom_y + 5}"/>'
                   f'<text x="{x:g}" y="{bottom_y + 18}" text-anchor="{anchor}">{time_text(t)}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom_y}"/>'
               f'<line class="axis" x1="{LEFT}" y1="{bottom_y}" x2="{right_x}" y2="{bottom_y}"/>')
    for i, line in enumerate(tl.lines):
        if line.points:
            out.append(f'<path class="data" stroke="{PALETTE[i % len(PALETTE)]}" d="{path_d(line, tl, top)}">'
                       f'<title>{escape(line.name)}</title></path>')
    if tl.target is not None:
        _, y = _xy(tl.start, tl.target, tl, top)
        out.append(f'<line class="target" x1="{LEFT}" y1="{y:g}" x2="{right_x}" y2="{y:g}"/>')
    if not any(line.points for line in tl.lines):
        out.append(f'<text x="{(LEFT + right_x) / 2:g}" y="{(TOP + bottom_y) / 2:g}" text-anchor="middle">'
                   "no data in the window</text>")
    out.append("</svg>")
    return "".join(out)


def legend(tl: Timeline) -> str:
    items = [f'<li><span style="background:{PALETTE[i % len(PALETTE)]}"></span>{escape(line.name)}</li>'
             for i, line in enumerate(tl.lines)]
    if tl.target is not None:
        items.append(f'<li><span style="background:{TARGET_COLOUR}"></span>{escape(tl.target_label)}</li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


def table(report: Report) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADER)
    body = []
    for row in rows(report):
        cells = [f'<td class="{row[5].replace(" ", "")}">{escape(c)}</td>' if i == 5 else f"<td>{escape(c)}</td>"
                 for i, c in enumerate(row)]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_page(report: Report, timelines: Sequence[Timeline]) -> str:
    """The whole page: title, when and where from, the verdict, the table, then each timeline with its legend."""
    sections = [f"<section><h2>{escape(tl.title)}</h2>{svg(tl)}{legend(tl)}</section>" for tl in timelines]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Stability report over {escape(report.window)}</title><style>{CSS}</style></head><body>"
            f"<h1>Stability report over {escape(report.window)}</h1>"
            f'<p class="meta">{escape(report.source)} at {escape(report.at)}</p>'
            f'<p class="verdict">{escape(summary_line(report))}</p>{table(report)}{"".join(sections)}'
            "</body></html>\n")
