"""How the Ray driver hands chunks to its judge slots (grader.batch.cluster._Driver._top_up) and stops them,
without a cluster: which slot holds which chunk decides whether one slot grades the end of a class alone while
another idles. The real cluster runs in tests/test_batch_ray.py."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from grader.batch.cluster import _Driver, _Slot


class _Actor:
    """What _top_up calls on a slot's actor: submit.remote(items); records the students of each call."""

    def __init__(self) -> None:
        self.submitted: list[list[str]] = []
        self.submit = self
        self.poll = self

    def remote(self, items: list[tuple[str, str, bytes]] | None = None) -> object:
        if items is not None:
            self.submitted.append([student for student, _, _ in items])
        return object()


def _driver(tmp_path: Path, chunks: int, busy_slots: int) -> _Driver:
    driver = _Driver.__new__(_Driver)  # its __init__ connects to Ray; _top_up needs only these
    pending = []
    for c in range(chunks):
        folder = tmp_path / f"student{c}"
        folder.mkdir()
        (folder / "exp1.py").write_text("print('hi')\n")
        pending.append([(folder.name, str(folder))])
    driver.pending = deque(pending)
    driver.slots = {object(): _Slot(actor=_Actor(), node_id="n") for _ in range(busy_slots)}
    driver.starting = {}
    return driver


def test_a_slot_takes_a_second_chunk_while_there_is_enough_for_every_slot(tmp_path):
    driver = _driver(tmp_path, chunks=6, busy_slots=1)
    slot = _Slot(actor=_Actor(), node_id="n")
    driver._top_up(slot)
    assert slot.actor.submitted == [["student0"], ["student1"]]
    assert len(driver.pending) == 4


def test_near_the_end_a_slot_keeps_one_chunk_so_the_other_slot_gets_the_last(tmp_path):
    driver = _driver(tmp_path, chunks=2, busy_slots=1)
    slot = _Slot(actor=_Actor(), node_id="n")
    driver._top_up(slot)
    assert slot.actor.submitted == [["student0"]]  # the last chunk waits for the slot that finishes first
    assert [c[0][0] for c in driver.pending] == ["student1"]
    driver._top_up(slot)  # topped up again while it still grades its chunk: nothing more
    assert len(slot.actor.submitted) == 1


def test_a_slot_without_work_always_gets_a_chunk(tmp_path):
    driver = _driver(tmp_path, chunks=1, busy_slots=3)
    slot = _Slot(actor=_Actor(), node_id="n")
    driver._top_up(slot)
    assert slot.actor.submitted == [["student0"]] and not driver.pending


class _Call:
    """actor.<method>.remote(): returns a ref named after the slot and method, and logs the call."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def remote(self, *args: object) -> str:
        self.log.append(f"ask {self.name}")
        return self.name


class _Ray:
    """What _polled, _stopped and _stop_all call on Ray; logs when the driver waits for a stop's answer."""

    class exceptions:
        RayError = RuntimeError

    def __init__(self, log: list[str], answers: dict[str, list]) -> None:
        self.log, self.answers = log, answers

    def get(self, ref: str) -> list:
        if ref.endswith(".stop"):
            self.log.append(f"get {ref}")
        return self.answers.get(ref, [])

    def wait(self, refs: list[str], num_returns: int, timeout: float) -> tuple[list[str], list[str]]:
        self.log += [f"wait {r}" for r in refs]
        return refs, []

    def kill(self, actor: object) -> None:
        pass


def test_slots_that_run_out_of_work_together_stop_together(tmp_path):
    """A slot's stop takes about a second (its judge leaves through its finally blocks). Waiting for each in turn
    kept the other slots' results waiting, and at the end of a class on N slots took N seconds."""
    log: list[str] = []
    driver = _Driver.__new__(_Driver)
    driver.ray = _Ray(log, {"a.poll": [("done", "alice", "{}")], "b.poll": [("done", "bob", "{}")]})
    driver.pending, driver.starting, driver.stopping, driver.slots = deque(), {}, {}, {}
    driver.left = {"alice", "bob"}
    got: list[str] = []
    driver.on_event = lambda ev: got.append(ev.student)
    for name, student in (("a", "alice"), ("b", "bob")):
        actor = type("Actor", (), {"poll": _Call(log, f"{name}.poll"), "stop": _Call(log, f"{name}.stop")})()
        slot = _Slot(actor=actor, node_id="n", chunks=deque([[(student, str(tmp_path))]]))
        driver.slots[f"{name}.poll"] = slot
    driver._polled("a.poll")
    driver._polled("b.poll")  # bob's result is taken at once, not after alice's slot has stopped
    driver._stop_all()
    assert got == ["alice", "bob"] and not driver.left
    assert log[:2] == ["ask a.stop", "ask b.stop"]  # both asked before the driver waits for either
    assert sorted(log[2:]) == ["get a.stop", "get b.stop", "wait a.stop", "wait b.stop"]
