"""What the clock reads the store with: the objects in given states, and the ids a step wrote."""

from __future__ import annotations

from pathlib import Path

from app.stripe_sandbox.store import Store


def _store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "store.sqlite3"))
    store.watch(["invoice"])
    return store


def test_all_in_state_gives_the_objects_in_those_states_newest_first(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for number, status in enumerate(["draft", "paid", "open", "void", "draft"]):
        store.put({"id": f"in_{number}", "object": "invoice", "status": status})
    store.put({"id": "sub_1", "object": "subscription", "status": "open"})

    found = store.all_in_state("invoice", "status", ["draft", "open"])

    assert [obj["id"] for _, obj in found] == ["in_4", "in_2", "in_0"]
    assert [position for position, _ in found] == [
        store.position(object_id, "invoice") for object_id in ("in_4", "in_2", "in_0")
    ]


def test_noting_writes_collects_the_watched_objects_written_in_the_block(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.put({"id": "in_before", "object": "invoice", "status": "draft"})
    store.put({"id": "in_gone", "object": "invoice", "status": "draft"})

    with store.noting_writes() as written:
        store.put({"id": "in_before", "object": "invoice", "status": "open"})
        store.put({"id": "in_new", "object": "invoice", "status": "draft"})
        store.put({"id": "cus_1", "object": "customer"})  # not a watched type
        store.delete("in_gone")
    store.put({"id": "in_after", "object": "invoice", "status": "draft"})

    assert written == {"in_before", "in_new", "in_gone"}
