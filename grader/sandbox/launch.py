"""Apply the local sandbox's limits to ourselves, then exec the contestant.

    python -I -m grader.sandbox.launch CONFIG_JSON -- COMMAND...

A separate tiny program rather than a `preexec_fn`, because preexec_fn is unsafe in a judge that runs
threads. It writes what it managed to apply to `<exchange>/isolation.json`. Order matters:
rlimits first (inherited across exec), then namespaces (need root or a user namespace), then the fork
that makes the contestant PID 1 of its own PID namespace (so killing it kills every process it started,
even ones that double-forked), then the drop to an unprivileged user. In its own mount namespace the
submission, the probes and the dataset root are bind-mounted read-only, so even a root contestant cannot
change them.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG = 1
NOBODY = 65534
MIB = 1 << 20


def _count_processes(uid: int) -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += os.stat(f"/proc/{pid}").st_uid == uid
            except OSError:
                pass
    return n


def _read_only(libc: ctypes.CDLL, paths: list[str]) -> str:
    """Make `paths` read-only for this mount namespace (bind mount onto itself, then remount read-only)."""
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return f"no: {os.strerror(ctypes.get_errno())}"
    for path in paths:
        p = path.encode()
        if libc.mount(p, p, None, MS_BIND | MS_REC, None) != 0 or libc.mount(
            None, p, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None
        ) != 0:
            return f"no ({path}): {os.strerror(ctypes.get_errno())}"
    return "yes: " + ", ".join(paths)


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    cmd = argv[argv.index("--") + 1 :]
    applied: dict[str, str] = {}
    libc = ctypes.CDLL(None, use_errno=True)
    # If the judge dies (a batch worker killed for memory), take the contestant down too: the launcher gets
    # SIGKILL with its parent, and the contestant with the launcher (below). The getppid check closes the race
    # of a parent that died before prctl.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        return 128 + signal.SIGKILL

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    fsize = cfg["file_size_mb"] * MIB
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    applied["file_size"] = f"{cfg['file_size_mb']} MiB (RLIMIT_FSIZE)"
    if cfg.get("address_space_mb"):
        # A backstop only: resident memory is watched by the judge; this turns a single huge
        # allocation into a MemoryError. CUDA reserves huge virtual ranges, so GPU jobs skip it.
        a = cfg["address_space_mb"] * MIB
        resource.setrlimit(resource.RLIMIT_AS, (a, a))
        applied["address_space"] = f"{cfg['address_space_mb']} MiB (RLIMIT_AS)"

    root = os.geteuid() == 0
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | (0 if root else CLONE_NEWUSER)
    if libc.unshare(flags) == 0:
        applied["network"] = "none (own network namespace)"
        applied["pid_namespace"] = "yes"
        if not root:
            uid, gid = os.getuid(), os.getgid()
            try:  # map ourselves to ourselves so files keep their owner
                with open("/proc/self/setgroups", "w") as f:
                    f.write("deny")
                with open("/proc/self/uid_map", "w") as f:
                    f.write(f"{uid} {uid} 1")
                with open("/proc/self/gid_map", "w") as f:
                    f.write(f"{gid} {gid} 1")
            except OSError:
                pass
        applied["read_only_mounts"] = _read_only(libc, cfg.get("read_only", []))
    else:
        applied["network"] = f"host network: unshare failed ({os.strerror(ctypes.get_errno())})"
        applied["pid_namespace"] = "no"
        applied["read_only_mounts"] = "no (no mount namespace)"

    run_as = NOBODY if root and cfg.get("drop_root") else os.getuid()
    # RLIMIT_NPROC counts every process of the user, so allow what that user already runs.
    nproc = _count_processes(run_as) + cfg["processes"]
    applied["user"] = "nobody" if run_as == NOBODY else str(run_as)
    applied["processes"] = f"{cfg['processes']} (" + (
        "watchdog; root ignores RLIMIT_NPROC)" if run_as == 0 else "RLIMIT_NPROC)"
    )

    # Student code runs below the judge's priority, so the judge's watchdog gets the CPU it needs.
    os.nice(10)
    applied["priority"] = "nice +10"

    with open(os.path.join(cfg["exchange"], "isolation.json"), "w") as f:
        json.dump(applied, f)
    sys.stdout.flush()

    pid = os.fork()
    if pid == 0:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if run_as != os.getuid():
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        os.execv(cmd[0], cmd)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
