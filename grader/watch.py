"""`grader check --watch`: notice when a student saves a file in their folder.

The folder is the student's own, on their own machine, but it is still only listed, never followed: links are
recorded as links, and a folder far bigger than a submission (someone watching their home folder) is cut off
at MAX_ENTRIES, which is said once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from grader.intake import JUNK

POLL_S = 0.25
SETTLE_S = 0.2  # editors save in steps (write a temporary file, rename it): wait until the folder is quiet
MAX_ENTRIES = 5000

Snapshot = frozenset[tuple[str, int, int, int]]  # (relative path, st_mode, size, mtime in ns)


def snapshot(folder: Path) -> Snapshot:
    """What a save changes in `folder`: each entry's name, kind, size and modification time, links not
    followed, junk folders (caches, checkpoints, .git) skipped."""
    seen: set[tuple[str, int, int, int]] = set()
    for top, dirs, files in os.walk(folder, onerror=lambda exc: None):
        dirs[:] = [d for d in dirs if d not in JUNK]
        for name in (*dirs, *files):
            path = os.path.join(top, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue  # removed between the listing and now: the next poll sees the folder without it
            seen.add((os.path.relpath(path, folder), st.st_mode, st.st_size, st.st_mtime_ns))
            if len(seen) >= MAX_ENTRIES:
                return frozenset(seen)
    return frozenset(seen)


def wait_for_change(folder: Path, last: Snapshot, sleep: Callable[[float], None] = time.sleep) -> Snapshot:
    """Block until `folder` differs from `last` and has then stayed the same for SETTLE_S; its new snapshot."""
    while True:
        sleep(POLL_S)
        now = snapshot(folder)
        if now == last:
            continue
        while True:  # changed: wait for the save to finish
            sleep(SETTLE_S)
            later = snapshot(folder)
            if later == now:
                return now
            now = later
