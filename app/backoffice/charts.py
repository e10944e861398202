"""Where the back office's SVG charts put their marks (templates/backoffice/_charts.html draws
them): plain arithmetic over the numbers, so the templates only write the SVG."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The drawing's own units (its viewBox); the SVG scales to the width of its container.
# Narrow on purpose: at a phone's 360 pixels the 10-unit text is still 9 pixels high.
WIDTH = 400
HEIGHT = 220
LEFT = 56  # room for the value axis' labels
RIGHT = 6
TOP = 8
BOTTOM = 24  # room for the category labels
# About how wide a character of the 10-unit label text is, to thin out labels that would touch.
CHAR_WIDTH = 6
TICKS = 4


@dataclass(frozen=True)
class Bar:
    """One segment of a stacked bar: a series' value at one label."""

    x: float
    y: float
    width: float
    height: float
    css_class: str
    label: str
    series: str
    value: int


@dataclass(frozen=True)
class Point:
    """One value of a line chart, where it is drawn."""

    x: float
    y: float
    label: str
    value: int


@dataclass(frozen=True)
class Tick:
    """A gridline of the value axis."""

    y: float
    value: int


@dataclass(frozen=True)
class Label:
    """A category label under the plot."""

    x: float
    text: str


@dataclass(frozen=True)
class Frame:
    """The plot's scale, gridlines and labels, shared by both kinds of chart."""

    ticks: list[Tick]
    labels: list[Label]
    zero_y: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    label_y: int = HEIGHT - 8


@dataclass(frozen=True)
class BarChart:
    """A stacked bar chart laid out; ``empty`` when there is nothing to draw."""

    frame: Frame | None
    bars: list[Bar]
    # Each series' name and colour class, in the order given.
    legend: list[tuple[str, str]]

    @property
    def empty(self) -> bool:
        """Nothing but zeros, or no labels at all."""
        return self.frame is None


@dataclass(frozen=True)
class LineChart:
    """A line chart laid out; ``empty`` without values."""

    frame: Frame | None
    points: list[Point]

    @property
    def empty(self) -> bool:
        """No values at all."""
        return self.frame is None

    @property
    def polyline(self) -> str:
        """The points as an SVG ``points`` attribute."""
        return " ".join(f"{point.x},{point.y}" for point in self.points)


def nice_step(span: float) -> int:
    """A gridline step of 1, 2 or 5 times a power of ten that splits ``span`` into about four."""
    raw = max(span / TICKS, 1)
    magnitude: int = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def bar_chart_layout(labels: Sequence[str], series: Sequence[Mapping[str, Any]]) -> BarChart:
    """Stacked bars, one per label: each series' positive values stack up from the zero line,
    its negative ones down from it, in the order the series are given."""
    legend = [
        (one["name"], one.get("class") or f"chart-c{number + 1}")
        for number, one in enumerate(series)
    ]
    tops = [sum(max(s["values"][i], 0) for s in series) for i in range(len(labels))]
    bottoms = [sum(min(s["values"][i], 0) for s in series) for i in range(len(labels))]
    if not any(tops) and not any(bottoms):
        return BarChart(None, [], legend)
    frame, y_of = _frame(labels, min(bottoms), max(tops))
    slot = _slot(labels)
    bars = []
    for index, label in enumerate(labels):
        up = down = 0
        for number, one in enumerate(series):
            value = one["values"][index]
            if value == 0:
                continue
            start = up if value > 0 else down
            end = start + value
            if value > 0:
                up = end
            else:
                down = end
            top, bottom = y_of(max(start, end)), y_of(min(start, end))
            bars.append(
                Bar(
                    x=round(LEFT + index * slot + slot * 0.15, 1),
                    y=top,
                    width=round(slot * 0.7, 1),
                    height=round(bottom - top, 1),
                    css_class=legend[number][1],
                    label=label,
                    series=one["name"],
                    value=value,
                )
            )
    return BarChart(frame, bars, legend)


def line_chart_layout(labels: Sequence[str], values: Sequence[int | None]) -> LineChart:
    """A line through one value per label (a running total, such as MRR month by month); a
    label without a value (None: a ratio with nothing to divide by) gets no point."""
    present = [value for value in values if value is not None]
    if not present:
        return LineChart(None, [])
    frame, y_of = _frame(labels, min(present), max(present))
    slot = _slot(labels)
    points = [
        Point(round(LEFT + (index + 0.5) * slot, 1), y_of(value), label, value)
        for index, (label, value) in enumerate(zip(labels, values, strict=True))
        if value is not None
    ]
    return LineChart(frame, points)


def _slot(labels: Sequence[str]) -> float:
    return (WIDTH - RIGHT - LEFT) / len(labels)


def _frame(labels: Sequence[str], low: int, high: int) -> tuple[Frame, Callable[[int], float]]:
    """The value axis from zero (or below it) to the highest value, on whole gridline steps."""
    low, high = min(low, 0), max(high, 0)
    step = nice_step(high - low)
    bottom = math.floor(low / step) * step
    top = max(math.ceil(high / step) * step, bottom + step)
    plot_height = HEIGHT - TOP - BOTTOM

    def y_of(value: int) -> float:
        return round(TOP + (top - value) / (top - bottom) * plot_height, 1)

    slot = _slot(labels)
    widest = max((len(label) for label in labels), default=1) * CHAR_WIDTH + 4
    every = max(math.ceil(widest / slot), 1)
    frame = Frame(
        ticks=[Tick(y_of(value), value) for value in range(bottom, top + 1, step)],
        labels=[
            Label(round(LEFT + (index + 0.5) * slot, 1), label)
            for index, label in enumerate(labels)
            if index % every == 0
        ],
        zero_y=y_of(0),
    )
    return frame, y_of
