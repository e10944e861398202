"""Waiting for something another thread or process makes true, by watching for it to be true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How often the condition is asked, at most: often enough that a wait ends within a few
# milliseconds of the condition holding, rarely enough not to starve the thread making it true.
LONGEST_PAUSE = 0.02


def wait_until(condition: Callable[[], T], timeout: float = 5.0, failure: str = "") -> T:
    """``condition()``'s first true answer; fails the test if none comes within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        answer = condition()
        if answer:
            return answer
        assert time.monotonic() < deadline, failure or f"still not true after {timeout} s"
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, LONGEST_PAUSE)
