"""The judge's end of the channel reads hostile bytes: without blocking, under a deadline and a size cap."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from grader import frames
from grader.channel import Channel, ChannelClosed, ChannelTimeout


def _pair(cap: int = 1 << 20) -> tuple[Channel, socket.socket]:
    ours, theirs = socket.socketpair()
    return Channel(ours, cap), theirs


def _alive() -> None:
    pass


def test_round_trip_and_back_to_back_frames():
    ch, peer = _pair()
    peer.sendall(frames.pack({"a": 1}, b"xyz") + frames.pack({"b": [2]}))
    assert ch.recv(time.monotonic() + 5, _alive) == ({"a": 1}, b"xyz")
    assert ch.recv(time.monotonic() + 5, _alive) == ({"b": [2]}, b"")
    ch.send({"id": 3}, b"\0" * 100, time.monotonic() + 5, _alive)
    assert frames.read_blocking(peer) == ({"id": 3}, b"\0" * 100)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"not a frame at all", "not a frame"),
        (b"TGR1" + struct.pack(">II", 2**32 - 1, 0), "over the 1 MiB cap"),
        (b"TGR1" + struct.pack(">II", 5, 0) + b"[1,2]", "a list, not an object"),
        (b"TGR1" + struct.pack(">II", 4, 0) + b"\xff\xfe{}", "malformed"),
    ],
)
def test_malformed_frames_are_refused(data, match):
    ch, peer = _pair()
    peer.sendall(data)
    with pytest.raises(frames.FrameError, match=match):
        ch.recv(time.monotonic() + 5, _alive)


def test_a_stalled_frame_times_out_at_the_deadline():
    ch, peer = _pair()
    peer.sendall(frames.pack({"id": 1})[:10])  # a header's start, then nothing
    t0 = time.monotonic()
    with pytest.raises(ChannelTimeout):
        ch.recv(t0 + 0.5, _alive)
    assert 0.4 < time.monotonic() - t0 < 2


def test_a_closed_end_and_a_dead_process_end_the_wait():
    ch, peer = _pair()
    peer.close()
    with pytest.raises(ChannelClosed):
        ch.recv(time.monotonic() + 5, _alive)

    class Died(Exception):
        pass

    def dead() -> None:
        raise Died

    ch, peer = _pair()
    with pytest.raises(Died):
        ch.recv(time.monotonic() + 5, dead)


def test_what_a_process_wrote_before_it_exited_is_read_before_its_death_is_said():
    """A contestant that reports its import and exits at once (to be restarted) can be gone before the judge
    reads a frame: the frames come first, then how it ended, not that it closed the channel."""

    class Died(Exception):
        pass

    def dead() -> None:
        raise Died

    ch, peer = _pair()
    peer.sendall(frames.pack({"importing": "exp1"}) + frames.pack({"imported": {"restart": True}}))
    peer.close()
    assert ch.recv(time.monotonic() + 5, dead) == ({"importing": "exp1"}, b"")
    assert ch.recv(time.monotonic() + 5, dead) == ({"imported": {"restart": True}}, b"")
    with pytest.raises(Died):
        ch.recv(time.monotonic() + 5, dead)


def test_sending_to_a_peer_that_never_reads_times_out():
    ch, peer = _pair(cap=1 << 30)
    with pytest.raises(ChannelTimeout):
        ch.send({"id": 1}, b"\0" * (64 << 20), time.monotonic() + 0.5, _alive)
