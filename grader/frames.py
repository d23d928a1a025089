"""Framing of the judge-contestant channel: one connected stream socket, no files.

A frame is a fixed header (magic, JSON length, blob length), a JSON document and an opaque blob (the
tensors, as safetensors bytes; see grader.wire). The judge reads frames without blocking, under the
running check's deadline and a size cap (grader.channel); the contestant side, trusted to be talking to
the judge, reads and writes blocking. Kept free of torch and pydantic imports: the sandbox launcher
uses it before it execs the contestant.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAGIC = b"TGR1"
HEADER = struct.Struct(">4sII")  # magic, JSON bytes, blob bytes


class FrameError(Exception):
    """Bytes on the channel that are not a well-formed frame."""


def pack(doc: dict[str, Any], blob: bytes = b"") -> bytes:
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return HEADER.pack(MAGIC, len(body), len(blob)) + body + blob


def parse_header(header: bytes, max_bytes: int) -> tuple[int, int]:
    """The JSON and blob lengths a header announces; refuses a bad magic or a frame over `max_bytes`."""
    magic, n_json, n_blob = HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameError(f"the channel carried bytes that are not a frame (they start with {header[:8]!r})")
    if n_json + n_blob > max_bytes:
        raise FrameError(f"a frame of {(n_json + n_blob) / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB cap")
    return n_json, n_blob


def parse_body(body: bytes, n_json: int) -> tuple[dict[str, Any], bytes]:
    try:
        doc = json.loads(body[:n_json].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"a frame's JSON is malformed ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise FrameError(f"a frame's JSON is a {type(doc).__name__}, not an object")
    return doc, body[n_json:]


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the channel")
        buf += chunk
    return bytes(buf)


def read_blocking(sock: socket.socket, max_bytes: int = 1 << 34) -> tuple[dict[str, Any], bytes]:
    """Read one frame, blocking (the contestant's side: the judge is trusted)."""
    n_json, n_blob = parse_header(_read_exactly(sock, HEADER.size), max_bytes)
    return parse_body(_read_exactly(sock, n_json + n_blob), n_json)
