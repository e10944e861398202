"""The reliability suite: each test reports figures, printed together at the end of the run.

`make test` (and CI) runs it at a short scale; `make reliability` runs the full one
(``TOLLGATE_RELIABILITY=full``) and prints the same figures at the scale they are quoted at.
A figure is what a test measured (rows that differ, events lost, requests that got a 5xx); the
test's assertions, not the figures, decide whether it passes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

FULL = os.environ.get("TOLLGATE_RELIABILITY", "").lower() == "full"


def at_scale(short: int, full: int) -> int:
    """How many (lifecycles, cases, writers...) to run: ``full`` under `make reliability`."""
    return full if FULL else short


@dataclass
class Figures:
    """The figures one test reports, in the order it reports them."""

    test: str
    lines: list[tuple[str, Any]] = field(default_factory=list)

    def add(self, name: str, value: Any) -> None:
        """Report ``name``: ``value`` under this test's name."""
        self.lines.append((name, value))


_REPORTED: list[Figures] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """Where a reliability test reports what it measured."""
    reported = Figures(request.node.name)
    yield reported
    if reported.lines:
        _REPORTED.append(reported)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures of every reliability test that ran, at the end of the run."""
    if not _REPORTED:
        return
    scale = "full" if FULL else "short (TOLLGATE_RELIABILITY=full for the full one)"
    terminalreporter.section(f"reliability figures, {scale} scale")
    for reported in _REPORTED:
        terminalreporter.write_line(reported.test)
        for name, value in reported.lines:
            shown = f"{value:,}" if isinstance(value, int) else str(value)
            terminalreporter.write_line(f"    {name}: {shown}")
