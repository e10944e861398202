"""Single usage events that arrive at once are recorded together (a group commit): each caller
still gets its own answer, exactly as if it had been alone."""

from __future__ import annotations

import threading
from unittest.mock import ANY

import httpx
import pytest

from app.entitlements.fastpath.combining import GroupCommit
from tests.entitlements.helpers import run_at_once
from tests.waiting import wait_until


def _event(key: str, customer: str, units: int = 1) -> dict:
    return {
        "eventIdempotencyKey": key,
        "eventName": "api.call",
        "customerReferenceId": customer,
        "featureKey": "api_calls",
        "usageUnits": units,
    }


def test_events_sent_at_once_each_get_their_own_answer(
    api: httpx.Client, free_customer: str, enterprise_customer: str
) -> None:
    sent = [
        _event("a-1", free_customer, 10),
        _event("b-1", enterprise_customer, 20),
        _event("a-2", free_customer, 30),
        _event("nobody-1", "nobody", 1),
        _event("b-2", enterprise_customer, 40),
        _event("a-3", free_customer, 2_000),  # past the free plan's hard limit of 1,000
        _event("b-1", enterprise_customer, 99),  # b-1's key again, with another body
        _event("a-1", free_customer, 10),  # a-1 again, the same: a retry
    ]
    answers: dict[int, httpx.Response] = {}

    def send(n: int) -> None:
        answers[n] = api.post("/events", json=sent[n])

    for round_ in range(3):  # rounds of callers at once, so that some of them share a group
        answers.clear()
        run_at_once(send, len(sent))
        assert answers[3].status_code == 404
        assert answers[3].json()["error"]["code"] == "customer_not_found"
        assert answers[5].status_code == 403
        assert answers[5].json()["error"]["code"] == "limit_exceeded"
        for n in (2, 4):
            assert answers[n].status_code == (201 if round_ == 0 else 200), answers[n].text
        # a-1 twice, alike: recorded once, the other answer its replay.
        assert sorted([answers[0].status_code, answers[7].status_code]) == (
            [200, 201] if round_ == 0 else [200, 200]
        )
        assert answers[0].json()["data"] == {**answers[7].json()["data"], "replayed": ANY}
        # b-1 with two bodies: one recorded (or replayed), the other refused.
        assert sorted([answers[1].status_code, answers[6].status_code]) == (
            [201, 409] if round_ == 0 else [200, 409]
        )
    counted = api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"]
    assert counted == 40  # a-1 and a-2 once each, whatever the rounds and retries
    used = api.get(f"/entitlements/{enterprise_customer}/api_calls").json()["data"]["usage"]["used"]
    assert used == 40 + (20 if answers[1].status_code == 200 else 99)


def test_a_failure_reaches_every_caller_of_its_group_and_the_next_group_goes_on() -> None:
    group: GroupCommit[int, int] = GroupCommit(limit=100)
    started, release = threading.Event(), threading.Event()
    outcomes: dict[int, int | str] = {}

    def record(items: list[int]) -> list[int]:
        if 0 in items:  # the first group: held until the others wait behind it
            started.set()
            release.wait(5)
        elif 13 in items:
            raise RuntimeError("the database went away")
        return [item * 10 for item in items]

    def submit(n: int) -> None:
        try:
            outcomes[n] = group.submit(n, record)
        except RuntimeError as exc:
            outcomes[n] = str(exc)

    first = threading.Thread(target=submit, args=(0,))
    first.start()
    assert started.wait(5)
    waiting = [threading.Thread(target=submit, args=(n,)) for n in (11, 12, 13)]
    for thread in waiting:
        thread.start()
    # Until the three wait behind the first group.
    wait_until(lambda: len(group._queue) == 3, failure="the callers never queued")
    release.set()
    for thread in [first, *waiting]:
        thread.join(5)
    failed = "the database went away"
    assert outcomes == {0: 0, 11: failed, 12: failed, 13: failed}
    assert group.submit(5, record) == 50  # the next group records as usual


@pytest.mark.parametrize("limit", [1, 3])
def test_one_caller_at_a_time_is_recorded_alone_and_in_order(limit: int) -> None:
    group: GroupCommit[int, int] = GroupCommit(limit=limit)
    seen: list[list[int]] = []

    def record(items: list[int]) -> list[int]:
        seen.append(items)
        return [-item for item in items]

    assert [group.submit(n, record) for n in range(4)] == [0, -1, -2, -3]
    assert seen == [[0], [1], [2], [3]]  # nothing waits for a group to fill
