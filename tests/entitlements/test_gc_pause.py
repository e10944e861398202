"""The collector pause of large requests: off while any of them runs, back on after the last."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from app.entitlements.fastpath import gc_pause
from app.entitlements.fastpath.gc_pause import collector_paused


@pytest.fixture(autouse=True)
def collector_running() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_collector_stays_paused_until_the_last_overlapping_block_ends() -> None:
    first_in, second_in, first_out, second_may_leave = (threading.Event() for _ in range(4))
    seen: dict[str, bool] = {}

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second() -> None:
        first_in.wait(5)
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["after the first left"] = gc.isenabled()
            second_may_leave.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    first_out.wait(5)
    assert not gc.isenabled()
    second_may_leave.set()
    for thread in threads:
        thread.join(5)
    assert seen == {"after the first left": False}
    assert gc.isenabled()


def _fail_while_paused(seen: list[bool]) -> None:
    with collector_paused():
        seen.append(gc.isenabled())
        raise RuntimeError("the request failed")


def test_collector_resumes_when_the_block_fails() -> None:
    seen: list[bool] = []
    with pytest.raises(RuntimeError):
        _fail_while_paused(seen)
    assert seen == [False]
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


class _Node:
    """Something that can be made into a cycle."""

    other: _Node | None = None


def test_cycles_are_collected_while_paused_requests_overlap_without_a_break(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gc_pause, "MAX_PAUSE_SECONDS", 0.0)
    with collector_paused():  # a request that is still in flight throughout
        with collector_paused():
            node = _Node()
            node.other = node  # garbage only the collector can free
            gone = weakref.ref(node)
            del node
        # The inner request ended after the pause had lasted long enough: it collected.
        assert gone() is None
        assert not gc.isenabled()
    assert gc.isenabled()
