"""A command that moves the clock and delivers the webhooks itself (`Sandbox.by_hand`): no
background tick competes with it, and it is refused while another process ticks."""

from __future__ import annotations

import fcntl

import pytest
import stripe

from app.stripe_sandbox import Sandbox, SenderBusy
from tests.waiting import wait_until

# A port nobody listens on: the background tick's deliveries fail there, and count attempts.
UNREACHABLE = "http://127.0.0.1:9/stripe/webhook"


def test_by_hand_while_another_process_ticks_is_refused(sandbox: Sandbox) -> None:
    # What the tick of a running server's process holds while it moves the clock and delivers.
    with open(f"{sandbox.path}.delivery.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SenderBusy, match="a running server"), sandbox.by_hand():
            pass
    with sandbox.by_hand():  # once that process is gone
        pass


def test_by_hand_in_the_process_that_ticks_delivers_only_by_hand(
    sandbox: Sandbox, client: stripe.StripeClient
) -> None:
    client.v1.webhook_endpoints.create(params={"url": UNREACHABLE, "enabled_events": ["*"]})
    client.v1.customers.create(params={"email": "first@example.com"})
    sandbox.start_delivery_thread(interval=0.01)
    wait_until(lambda: sandbox.pending_deliveries()[0].attempts > 0, failure="no tick ran")

    with sandbox.by_hand():
        client.v1.customers.create(params={"email": "second@example.com"})
        received: list[str] = []

        def receiver(url: str, body: bytes, headers: dict[str, str]) -> int:
            received.append(url)
            return 200

        assert sandbox.deliver_pending(receiver) == 2
    assert received == [UNREACHABLE, UNREACHABLE]
    assert sandbox.pending_deliveries() == []
