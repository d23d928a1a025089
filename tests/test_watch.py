"""What `grader check --watch` counts as a save, on real folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grader import watch


def test_snapshot_sees_saves_but_does_not_follow_links_or_read_caches(tmp_path: Path):
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "exp1.py").write_text("print('hi')\n")
    before = watch.snapshot(sub)
    (sub / "__pycache__").mkdir()
    (sub / "__pycache__" / "exp1.cpython-311.pyc").write_bytes(b"\0" * 10)
    assert watch.snapshot(sub) == before, "a cache written by running the code is not a save"

    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (sub / "data").symlink_to(outside, target_is_directory=True)
    linked = watch.snapshot(sub)
    assert {e[0] for e in linked} == {"exp1.py", "data"}, "the link is listed, not followed"
    (outside / "deep" / "big.bin").write_bytes(b"x")
    assert watch.snapshot(sub) == linked

    os.utime(sub / "exp1.py", ns=(1, 1))  # an editor that saves the same bytes still changes the time
    assert watch.snapshot(sub) != linked


def test_a_huge_folder_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(watch, "MAX_ENTRIES", 10)
    for i in range(30):
        (tmp_path / f"f{i}").write_text("")
    assert len(watch.snapshot(tmp_path)) == 10


def test_wait_for_change_returns_once_the_save_has_settled(tmp_path: Path):
    code = tmp_path / "exp1.py"
    code.write_text("v1")
    last = watch.snapshot(tmp_path)
    steps = iter([
        lambda: None,  # nothing saved yet
        lambda: (tmp_path / ".exp1.py.swp").write_text("half"),  # an editor's save, in two steps
        lambda: (tmp_path / ".exp1.py.swp").rename(code),
        lambda: None,
    ])  # fmt: skip
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        next(steps)()

    got = watch.wait_for_change(tmp_path, last, sleep=sleep)
    assert code.read_text() == "half" and got == watch.snapshot(tmp_path)
    assert sleeps == [watch.POLL_S, watch.POLL_S, watch.SETTLE_S, watch.SETTLE_S]
