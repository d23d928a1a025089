"""The judge's end of the channel to a contestant: a connected stream socket that it reads as hostile data.

Why a socket and not a mailbox folder: a folder that the contestant can write is a folder where it can plant
links, FIFOs and device files for the judge to trip over, and fill the disk under it. The judge never opens
a path the contestant can touch; it reads frames (grader.frames) from a socket, without blocking, under
the running check's deadline and a size cap, and validates every answer (grader.judge.client) before a
check sees it. Student code in the contestant can write garbage on its end: that is its own failed check.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import Any

from grader import frames

SLICE_S = 0.05  # how often a wait wakes to ask whether the process is still alive
EXIT_SETTLE_S = 0.5  # after the other end closed: how long to wait for its exit to show, to say how it ended


class ChannelClosed(Exception):
    """The contestant's end closed (it exited, or student code closed the socket)."""


class ChannelTimeout(Exception):
    """The deadline passed before a whole frame arrived or could be sent."""


def _ended(alive: Callable[[], None]) -> None:
    """The other end closed: it exited, or is about to. `alive()` says how, if that shows in time."""
    settled = time.monotonic() + EXIT_SETTLE_S
    while time.monotonic() < settled:
        alive()
        time.sleep(0.01)
    raise ChannelClosed("the contestant closed its end of the channel")


class Channel:
    """Frames over a socket, with deadlines. `alive()` is called while waiting; it raises to stop the wait
    (say the sandbox saw the process die)."""

    def __init__(self, sock: socket.socket, max_bytes: int) -> None:
        sock.setblocking(False)
        self.sock, self.max_bytes = sock, max_bytes
        self._buf = bytearray()

    def _wait(self, want_write: bool, deadline: float | None, alive: Callable[[], None]) -> None:
        while True:
            if not want_write and select.select([self.sock], [], [], 0)[0]:
                # What is there is read first, even from a process that has exited since it wrote it (one that
                # reports its import and restarts can be gone before the judge reads a frame).
                return
            alive()
            left = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
            if left <= 0:
                raise ChannelTimeout()
            r, w, _ = select.select([] if want_write else [self.sock], [self.sock] if want_write else [], [], left)
            if r or w:
                return

    def send(self, doc: dict[str, Any], blob: bytes, deadline: float | None, alive: Callable[[], None]) -> None:
        data = memoryview(frames.pack(doc, blob))
        while data:
            self._wait(True, deadline, alive)
            try:
                n = self.sock.send(data[: 1 << 20])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:  # EPIPE, ECONNRESET: the other end is gone
                raise ChannelClosed(str(exc)) from None
            data = data[n:]

    def _fill(self, n: int, deadline: float | None, alive: Callable[[], None]) -> None:
        while len(self._buf) < n:
            self._wait(False, deadline, alive)
            try:
                chunk = self.sock.recv(min(n - len(self._buf), 1 << 20))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise ChannelClosed(str(exc)) from None
            if not chunk:
                _ended(alive)
            self._buf += chunk

    def recv(self, deadline: float | None, alive: Callable[[], None]) -> tuple[dict[str, Any], bytes]:
        """One frame; raises FrameError (malformed or over the cap), ChannelTimeout or ChannelClosed."""
        self._fill(frames.HEADER.size, deadline, alive)
        n_json, n_blob = frames.parse_header(bytes(self._buf[: frames.HEADER.size]), self.max_bytes)
        self._fill(frames.HEADER.size + n_json + n_blob, deadline, alive)
        body = bytes(self._buf[frames.HEADER.size :])
        self._buf.clear()
        return frames.parse_body(body, n_json)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
