"""Run a command as an ordinary user (`graderci`), for tests of what holds when the grader is not root.

Needs root: it creates the user if missing (in the `docker` group where there is one, so the Docker sandbox
works), and runs the command in a private mount namespace in which the interpreter, its virtual environment
and this checkout are reachable even when they sit under a folder that user cannot enter (a pyenv under
/root): such a folder is covered by an empty tmpfs holding only those paths. The host is not changed.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
import subprocess
import sys
from pathlib import Path

USER = "graderci"
ROOT = Path(__file__).resolve().parent.parent


class AsUserUnavailable(Exception):
    """No way to run as another user here (the tests do not run as root)."""


def ensure_user() -> tuple[int, int]:
    if os.geteuid() != 0:
        raise AsUserUnavailable("the tests do not run as root, so they already run as an ordinary user")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        pw = pwd.getpwnam(USER)
    try:
        docker = grp.getgrnam("docker")
        if USER not in docker.gr_mem:
            subprocess.run(["usermod", "-aG", "docker", USER], check=True)
    except KeyError:
        pass
    return pw.pw_uid, pw.pw_gid


def _closed_ancestor(path: Path) -> Path | None:
    """The outermost folder above `path` that other users cannot enter, if any."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def _mount_script(paths: list[Path]) -> str:
    lines, staged = ["set -e", "mkdir -p /run/grader-as-user"], []
    covers: dict[Path, list[Path]] = {}
    for p in paths:
        if (top := _closed_ancestor(p)) is not None:
            covers.setdefault(top, []).append(p)
    for top, inside in covers.items():
        for p in inside:
            stage = f"/run/grader-as-user/{len(staged)}"
            lines += [f"mkdir -p {stage}", f"mount --bind {shlex.quote(str(p))} {stage}"]
            staged.append((stage, p))
        lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(top))}")
    for stage, p in staged:
        lines += [f"mkdir -p {shlex.quote(str(p))}", f"mount --bind {stage} {shlex.quote(str(p))}"]
    return "\n".join(lines)


def run_as_user(argv: list[str], cwd: Path, work: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `argv` as USER with HOME and TMPDIR in `work` (made theirs); stdout and stderr together."""
    uid, gid = ensure_user()
    os.chown(work, uid, gid)
    paths = sorted({Path(sys.prefix), Path(sys.base_prefix), ROOT})
    env = {"HOME": str(work), "TMPDIR": "/tmp", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    env |= {k: v for k, v in os.environ.items() if k.startswith("GRADER_")}
    run = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "env", "-i",
           *(f"{k}={v}" for k, v in env.items()), *argv]  # fmt: skip
    script = _mount_script(paths) + f"\ncd {shlex.quote(str(cwd))}\nexec " + shlex.join(run)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )  # fmt: skip
