"""ops.slo_html: the page is one self-contained document (no script, no external resource) with the table and
one SVG timeline per objective, each with axes, a data path per series, the target line and a legend."""

from __future__ import annotations

import re

from components.slo import SloSpec, objectives
from ops import slo_html as sh
from ops import slo_plan as sp

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def timeline(name: str = "error-ratio", lines: tuple[sh.Line, ...] = (), target: float | None = 0.01
             ) -> sh.Timeline:
    return sh.Timeline(name, f"{name} over time", "ratio", target, "target: at most 1 %", lines, T0, T0 + 600, 100)


def test_a_path_breaks_at_gaps_and_draws_a_lone_point_as_a_dot():
    line = sh.Line("api", ((T0, 0.0), (T0 + 100, 0.02), (T0 + 200, 0.01), (T0 + 500, 0.005)))
    tl = timeline(lines=(line,))
    # x: 72 + t/600 * 952; y: 14 + (1 - v/0.02) * 212 (top = nice_max(0.02))
    assert sh.path_d(line, tl, 0.02) == "M72,226 L230.7,14 L389.3,120 M865.3,173 h0"


def test_nice_max():
    assert [sh.nice_max(v) for v in (0.0, 0.013, 0.02, 0.3, 1.0, 114.0, 7.0)] == [1.0, 0.02, 0.02, 0.5, 1.0, 200.0,
                                                                                   10.0]


def test_the_svg_has_axes_ticks_the_target_line_and_a_path_per_series():
    tl = timeline(lines=(sh.Line("api", ((T0, 0.02), (T0 + 100, 0.0))), sh.Line("web", ((T0, 0.0),)),
                         sh.Line("idle", ())))
    svg = sh.svg(tl)
    assert svg.startswith('<svg id="timeline-error-ratio" width="1040" height="260"') and svg.endswith("</svg>")
    assert re.findall(r'<path class="data" stroke="([^"]+)"', svg) == ["#1f77b4", "#2ca02c"]
    assert svg.count('class="target"') == 1 and 'y1="120"' in svg  # 1 % of a 2 % axis: half-way
    assert re.findall(r'text-anchor="end">([^<]+)</text>', svg)[:6] == ["0 %", "0.4 %", "0.8 %", "1.2 %", "1.6 %",
                                                                        "2 %"]
    assert ">01-01 00:00</text>" in svg and ">01-01 00:10</text>" in svg
    assert sh.legend(tl) == ('<ul class="legend"><li><span style="background:#1f77b4"></span>api</li><li><span '
                             'style="background:#2ca02c"></span>web</li><li><span style="background:#9467bd"></span>'
                             'idle</li><li><span style="background:#d62728"></span>target: at most 1 %</li></ul>')
    assert "no data in the window" in sh.svg(timeline(lines=()))


def test_the_page_is_self_contained_with_the_table_and_four_timelines():
    objs = objectives(SloSpec())
    report = sp.evaluate(objs, {("error-ratio", "bad"): {"api": 30.0}, ("error-ratio", "total"): {"api": 1000.0}},
                         window="7d", source="http://127.0.0.1:9390", at="2026-01-08T00:00:00Z")
    series = (sh.Line("api", ((T0, 0.03), (T0 + 100, 0.03))),)
    page = sh.render_page(report, [timeline(o.name, series) for o in objs])
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Stability report "
                           "over 7d</title><style>")
    for external in ("<script", "src=", "href=", "url(", "@import", "<link"):
        assert external not in page
    assert re.findall(r'<svg id="timeline-([a-z-]+)"', page) == [o.name for o in objs]
    assert len(re.findall(r'<path class="data"', page)) == 4 and page.count('class="target"') == 4
    assert '<td class="missed">missed</td>' in page and '<td class="nodata">no data</td>' in page
    assert "<p class=\"verdict\">stability targets over 7d: MISSED error-ratio; no data for rollout-success, " \
           "pull-latency, trace-coverage (neither met nor missed)</p>" in page
