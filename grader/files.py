"""Reading files a student supplied, as hostile data: regular files only, never through a link, size-capped.

A FIFO would block a plain `open()` forever, `/dev/zero` would never end, and a link could point anywhere on
the grading host; a file can also grow or be swapped between a size check and the read. So the file is opened
once, with O_NOFOLLOW and O_NONBLOCK, checked on that descriptor, and read with a cap.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class UnsafeFile(Exception):
    """Not a regular file, a link, unreadable, or over its cap. The message names the file and why."""


def open_regular(path: Path) -> int:
    """A descriptor of `path`, which must be a regular file and not a symbolic link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component is a symbolic link
            raise UnsafeFile(f"{path.name} is a symbolic link; submit the file itself") from None
        raise UnsafeFile(f"{path.name} could not be opened ({exc.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeFile(f"{path.name} is not a regular file (it is a {_kind(mode)}); submit the file itself")
    return fd


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "named pipe"), (stat.S_ISCHR, "device"),
                       (stat.S_ISBLK, "device"), (stat.S_ISSOCK, "socket")):  # fmt: skip
        if test(mode):
            return name
    return "special file"


def read_regular(path: Path, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes`."""
    fd = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeFile(f"{path.name} is larger than {max_bytes // 1024} KiB")
    return data
