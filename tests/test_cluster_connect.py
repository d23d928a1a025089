"""How `--ray ray://...` connects (grader.batch.cluster.connect), against Ray's own ray.init replaced: a Ray Client
head that fails to start this client's server process is asked again, other failures are said at once. Seen in CI
on a real head (tests/test_batch_ray.py), but not something a test can make a real head do."""

from __future__ import annotations

import os

import pytest

from grader.batch import cluster

ray = pytest.importorskip("ray")

# what ray.init raised in CI, from the head's proxier
START_FAILED = ("Initialization failure from server:\nTraceback (most recent call last):\n  ...\nRuntimeError: "
                "Starting Ray client server failed. See ray_client_server_23000.err for detailed logs.\n")  # fmt: skip


def _fake_init(monkeypatch, failures: list[Exception]) -> list[str]:
    calls: list[str] = []

    def init(address: str, **_: object) -> None:
        calls.append("init")
        if failures:
            raise failures.pop(0)

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    return calls


def test_a_client_server_that_failed_to_start_is_asked_again(monkeypatch):
    calls = _fake_init(monkeypatch, [ConnectionError(START_FAILED)])
    cluster.connect("ray://head:10001")
    assert calls == ["init", "shutdown", "init"]


def test_it_gives_up_after_a_few_tries_and_says_why(monkeypatch):
    calls = _fake_init(monkeypatch, [ConnectionError(START_FAILED)] * cluster.CLIENT_TRIES)
    with pytest.raises(cluster.ClusterError, match="cannot reach the Ray cluster at 'ray://head:10001'") as exc:
        cluster.connect("ray://head:10001")
    assert "Starting Ray client server failed" in str(exc.value)
    assert calls.count("init") == cluster.CLIENT_TRIES


def test_other_failures_are_not_tried_again(monkeypatch):
    calls = _fake_init(monkeypatch, [ConnectionError("ray client connection timeout")])
    with pytest.raises(cluster.ClusterError, match="connection timeout"):
        cluster.connect("ray://nowhere:10001")
    assert calls == ["init"]


@pytest.mark.parametrize("preset, expected", [(None, "0"), ("1", "1")])
def test_a_local_cluster_reports_no_usage_unless_asked(monkeypatch, preset, expected):
    seen: list[str | None] = []
    monkeypatch.setattr(ray, "init", lambda address, **_: seen.append(os.environ.get("RAY_USAGE_STATS_ENABLED")))
    env = {k: v for k, v in os.environ.items() if k != "RAY_USAGE_STATS_ENABLED"}
    if preset is not None:
        env["RAY_USAGE_STATS_ENABLED"] = preset
    monkeypatch.setattr(os, "environ", env)  # what connect() sets stays in this copy
    cluster.connect("local")
    assert seen == [expected]
