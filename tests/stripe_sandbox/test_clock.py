"""The sandbox's clock shared by several processes: every move kept, a tick of nothing writes
nothing. Each Sandbox here has its own connection to one file, as each process has."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import stripe

from app.stripe_sandbox import Sandbox

MINUTE = 60


def test_moves_made_at_once_from_two_processes_are_all_kept(
    sandbox: Sandbox, client: stripe.StripeClient
) -> None:
    client.v1.customers.create({"email": "c@x.io"})
    other = Sandbox(sandbox.path)
    started = sandbox.now()
    moves = 60

    def move(each: Sandbox) -> None:
        for _ in range(moves):
            each.advance(MINUTE)

    movers = [threading.Thread(target=move, args=(each,)) for each in (sandbox, other)]
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join()

    moved = sandbox.now() - started
    assert 2 * moves * MINUTE <= moved <= 2 * moves * MINUTE + 5
    assert abs(other.now() - sandbox.now()) <= 1


def test_tick_with_nothing_due_writes_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.advance(MINUTE)  # the file and its log exist, with the offset in them
    log = Path(f"{sandbox.path}-wal")
    before = (log.stat().st_size, os.stat(sandbox.path).st_mtime_ns)
    for _ in range(20):
        sandbox.advance(0)
    assert (log.stat().st_size, os.stat(sandbox.path).st_mtime_ns) == before
