"""The chart macros draw SVG from hand-made numbers: bars up and down from the zero line, in
proportion, stacked, labelled, and a message instead of a chart when there is nothing to draw."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask, render_template_string

from app.backoffice.charts import nice_step
from tests.web import visible_text

MACROS = '{% from "backoffice/_charts.html" import bar_chart, line_chart %}'


def render(app: Flask, call: str, **values: Any) -> str:
    with app.test_request_context():
        return render_template_string(MACROS + call, **values)


def svg_of(html: str) -> ET.Element:
    match = re.search(r"<svg viewBox.*?</svg>", html, re.S)
    assert match, "no chart drawn"
    return ET.fromstring(match.group(0))  # noqa: S314 (the app's own output, not untrusted)


def bars(svg: ET.Element) -> list[dict[str, Any]]:
    return [
        {
            "class": rect.get("class", "").split()[-1],
            "value": int(rect.get("data-value", "0")),
            "y": float(rect.get("y", "0")),
            "height": float(rect.get("height", "0")),
            "title": rect.findtext("title"),
        }
        for rect in svg.iter("rect")
    ]


def zero_line(svg: ET.Element) -> float:
    [line] = [line for line in svg.iter("line") if line.get("class") == "chart-zero"]
    return float(line.get("y1", "0"))


MOVEMENTS = [
    {"name": "New", "values": [10_000, 0, 5_000], "class": "movement-new"},
    {"name": "Churn", "values": [-5_000, 0, -10_000], "class": "movement-churn"},
]


def test_bars_go_up_for_gains_and_down_for_losses_in_proportion(app: Flask) -> None:
    html = render(
        app,
        '{{ bar_chart("moves", ["Jan", "Feb", "Mar"], series, format="usd") }}',
        series=MOVEMENTS,
    )
    svg = svg_of(html)
    zero = zero_line(svg)
    drawn = bars(svg)
    # Feb has nothing to draw: four segments, two each for Jan and Mar.
    assert [(bar["class"], bar["value"]) for bar in drawn] == [
        ("movement-new", 10_000),
        ("movement-churn", -5_000),
        ("movement-new", 5_000),
        ("movement-churn", -10_000),
    ]
    new_jan, churn_jan, new_mar, churn_mar = drawn
    for gain in (new_jan, new_mar):
        assert gain["y"] + gain["height"] == pytest.approx(zero)  # stands on the zero line
    for loss in (churn_jan, churn_mar):
        assert loss["y"] == pytest.approx(zero)  # hangs from it
    # $100 is twice as tall as $50, up or down.
    assert new_jan["height"] == pytest.approx(2 * churn_jan["height"])
    assert churn_mar["height"] == pytest.approx(new_jan["height"])
    assert new_jan["title"] == "Jan, New: $100"
    assert churn_mar["title"] == "Mar, Churn: -$100"


def test_a_bar_chart_names_itself_labels_its_months_and_has_a_legend(app: Flask) -> None:
    html = render(
        app,
        '{{ bar_chart("moves", ["Jan", "Feb", "Mar"], series, format="usd") }}',
        series=MOVEMENTS,
    )
    svg = svg_of(html)
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == "New, Churn"
    assert svg.findtext("title") == "New, Churn"
    assert svg.get("width") == "100%"
    assert svg.get("viewBox", "").startswith("0 0 ")
    labels = [t.text for t in svg.iter("text") if t.get("class") == "chart-label"]
    assert labels == ["Jan", "Feb", "Mar"]
    ticks = [t.text for t in svg.iter("text") if t.get("class") == "chart-tick"]
    assert ticks == ["-$100", "-$50", "$0", "$50", "$100"]
    legend = visible_text(html[html.index("<figcaption>") :])
    assert legend == "New Churn"


def test_stacked_segments_sit_on_one_another(app: Flask) -> None:
    series = [
        {"name": "New", "values": [30], "class": "movement-new"},
        {"name": "Expansion", "values": [20], "class": "movement-expansion"},
        {"name": "Contraction", "values": [-10], "class": "movement-contraction"},
        {"name": "Churn", "values": [-15], "class": "movement-churn"},
    ]
    svg = svg_of(render(app, '{{ bar_chart("stack", ["May"], series) }}', series=series))
    new, expansion, contraction, churn = bars(svg)
    assert expansion["y"] + expansion["height"] == pytest.approx(new["y"])
    assert churn["y"] == pytest.approx(contraction["y"] + contraction["height"])
    assert new["height"] / 30 == pytest.approx(expansion["height"] / 20)
    assert churn["height"] / 15 == pytest.approx(new["height"] / 30)
    assert expansion["title"] == "May, Expansion: 20"


def test_a_series_without_a_class_gets_one_by_its_place(app: Flask) -> None:
    series = [{"name": "A", "values": [1]}, {"name": "B", "values": [2]}]
    svg = svg_of(render(app, '{{ bar_chart("plain", ["x"], series) }}', series=series))
    assert [bar["class"] for bar in bars(svg)] == ["chart-c1", "chart-c2"]


@pytest.mark.parametrize(
    ("labels", "series"),
    [
        ([], []),
        ([], [{"name": "New", "values": [], "class": "movement-new"}]),
        (["Jan", "Feb"], [{"name": "New", "values": [0, 0], "class": "movement-new"}]),
    ],
)
def test_a_bar_chart_with_nothing_to_draw_says_so(
    app: Flask, labels: list[str], series: list[dict[str, Any]]
) -> None:
    html = render(app, '{{ bar_chart("none", labels, series) }}', labels=labels, series=series)
    assert "<svg" not in html
    assert "<rect" not in html
    assert visible_text(html) == "No data yet."


def test_many_labels_are_thinned_so_they_do_not_touch(app: Flask) -> None:
    labels = [f"Month {n:02}" for n in range(1, 25)]
    series = [{"name": "New", "values": list(range(1, 25)), "class": "movement-new"}]
    svg = svg_of(
        render(app, '{{ bar_chart("many", labels, series) }}', labels=labels, series=series)
    )
    shown = [t.text for t in svg.iter("text") if t.get("class") == "chart-label"]
    assert len(bars(svg)) == 24
    assert shown[0] == "Month 01"
    assert 1 < len(shown) < 24


def test_a_line_chart_draws_a_running_total(app: Flask) -> None:
    html = render(
        app,
        '{{ line_chart("mrr", ["Jan", "Feb", "Mar"], [10000, 25000, 20000], format="usd", '
        'name="MRR") }}',
    )
    svg = svg_of(html)
    assert svg.get("aria-label") == "MRR"
    points = list(svg.iter("circle"))
    assert [int(p.get("data-value", "0")) for p in points] == [10_000, 25_000, 20_000]
    heights = [float(p.get("cy", "0")) for p in points]
    assert heights[1] < heights[2] < heights[0]  # higher values are drawn higher up
    assert [p.findtext("title") for p in points] == ["Jan: $100", "Feb: $250", "Mar: $200"]
    [line] = list(svg.iter("polyline"))
    assert len(line.get("points", "").split()) == 3
    assert "MRR" in visible_text(html[html.index("<figcaption>") :])


def test_a_line_chart_without_values_says_so(app: Flask) -> None:
    html = render(app, '{{ line_chart("mrr", [], []) }}')
    assert "<svg" not in html
    assert visible_text(html) == "No data yet."


@pytest.mark.parametrize(
    ("span", "step"), [(0, 1), (3, 1), (40, 10), (200, 50), (15_000, 5_000), (70_000, 20_000)]
)
def test_gridlines_fall_on_round_steps(span: int, step: int) -> None:
    assert nice_step(span) == step
