"""Confine ourselves, then exec the contestant (the local sandbox's launcher).

    python -I -m grader.sandbox.launch CONFIG_JSON

A separate tiny program rather than a `preexec_fn`, because preexec_fn is unsafe in a judge that runs
threads. Order matters:
    1. rlimits (inherited across exec);
    2. namespaces: network, PID, mount, IPC, UTS, and a user namespace when not root (the grader's uid maps
       to itself, so a non-root grader gets them too where the kernel allows unprivileged user namespaces);
    3. fork: the child is PID 1 of the new PID namespace, so killing it kills everything it started;
    4. the child builds the contestant's own root file system on a tmpfs and pivots into it: system and
       Python folders, the submission, the probes and the dataset bind-mounted read-only, size-capped tmpfs
       scratch for /tmp, /dev/shm and its working folder, a fresh /proc. Nothing else of the host exists
       there: not the course (hidden checks, solutions), not other students, not the output folder;
    5. it drops to `nobody` (root grader) or keeps the grader's uid inside the user namespace, with no
       capabilities and no_new_privs, sends the judge what it applied, and execs the contestant.
Where a step is impossible here, what was applied instead is reported; a root grader never runs student code
as root with the host's file system in view (it refuses, with a message).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import signal
import socket
import stat
import sys
from pathlib import Path
from typing import Any

from grader import frames

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE, MNT_DETACH, MS_MOVE = 16384, 1 << 18, 2, 8192
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
NOBODY = 65534
MIB = 1 << 20
INSIDE = "/grader"  # where the submission, probes, data and working folder appear (as in the Docker sandbox)
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


class ViewError(OSError):
    """A step of building the contestant's root failed (the message names it)."""


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise ViewError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: None if s is None else s.encode())  # noqa: E731
    _check(_libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {src or fstype} on {target}")


def _mounts_under(target: str) -> list[str]:
    """Mount points at or below `target`, outermost first (from this process's mountinfo)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")  # \040 for a space, etc.
            if point == target or point.startswith(target.rstrip("/") + "/"):
                points.append(point)
    return sorted(set(points), key=len)


def _lock_flags(path: str) -> int:
    """The flags a remount must keep: in a user namespace, dropping an inherited nosuid/nodev/noexec is EPERM."""
    f = os.statvfs(path).f_flag
    keep = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if f & st:
            keep |= ms
    return keep


def _ro_bind(src: str, target: str, devices: bool = False) -> None:
    """Bind `src` on `target` read-only, submounts included (each needs its own remount)."""
    _mount(src, target, None, MS_BIND | MS_REC)
    extra = MS_NOSUID | (0 if devices else MS_NODEV)
    for point in _mounts_under(target):
        _mount(None, point, None, MS_BIND | MS_REMOUNT | MS_RDONLY | extra | _lock_flags(point))


def _place(view: str, inside: str, like: str) -> str:
    """Create the mount point for `like` (a folder or a file) at `inside` in the view; return its host path."""
    target = view + inside
    if os.path.isdir(like):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    return target


def _tmpfs(target: str, size_mb: int, mode: str, owner: tuple[int, int]) -> None:
    os.makedirs(target, mode=0o755, exist_ok=True)
    opts = f"size={size_mb}m,mode={mode},uid={owner[0]},gid={owner[1]}"
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, opts)


def _world_can_run(path: str) -> bool:
    """Whether a user with no special rights can reach and read `path` (every parent traversable)."""
    p = Path(path).resolve()
    try:
        return bool(p.stat().st_mode & stat.S_IROTH) and all(q.stat().st_mode & stat.S_IXOTH for q in p.parents)
    except OSError:
        return False


def build_view(cfg: dict[str, Any]) -> list[str]:
    """Build the contestant's root under cfg["view"] (in our own mount namespace) and pivot into it.
    Returns what is missing from it."""
    view = cfg["view"]
    os.umask(0o022)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", view, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0755")
    for path in cfg["binds"]:
        if os.path.islink(path) and os.path.dirname(path) == "/":  # /bin -> usr/bin on merged-/usr systems
            os.symlink(os.readlink(path), view + path)
        elif os.path.exists(path):
            _ro_bind(path, _place(view, path, path))
    for name, src in (("submission", cfg["submission"]), ("probes", cfg["probes"]), ("data", cfg["data_root"])):
        if src is not None:
            _ro_bind(src, _place(view, f"{INSIDE}/{name}", src))
    os.makedirs(view + "/dev", mode=0o755)
    gpu_nodes = [f"/dev/{n}" for n in os.listdir("/dev") if n.startswith("nvidia")] if cfg["gpu"] else []
    for dev in [f"/dev/{n}" for n in DEVICES] + gpu_nodes:
        if os.path.exists(dev):
            _ro_bind(dev, _place(view, dev, dev), devices=True)
    for name, fd in (("fd", ""), ("stdin", "/0"), ("stdout", "/1"), ("stderr", "/2")):
        os.symlink(f"/proc/self/fd{fd}", f"{view}/dev/{name}")
    notes = []
    try:  # CPU topology for torch, and what CUDA reads; optional
        _ro_bind("/sys", _place(view, "/sys", "/sys"))
    except OSError as exc:
        notes.append(f"no /sys ({exc})")
    os.makedirs(view + "/proc", mode=0o555)
    try:  # we are PID 1 of a new PID namespace: this /proc shows only the contestant's own processes
        _mount("proc", view + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError as exc:
        notes.append(f"no /proc ({exc})")
    arch = platform.machine()
    if arch not in SYS_PIVOT_ROOT:
        raise ViewError(0, f"pivot_root: unknown system call number on {arch}")
    os.chdir(view)
    os.mkdir(".old", 0o700)
    _check(_libc.syscall(SYS_PIVOT_ROOT[arch], b".", b".old"), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount the host's root")
    os.rmdir("/.old")
    return notes


def finish_view(cfg: dict[str, Any], owner: tuple[int, int]) -> None:
    """Scratch owned by the contestant's uid, then the root itself read-only."""
    mb = cfg["scratch_mb"]
    for scratch in ("/tmp", "/dev/shm"):
        # A bind inside a scratch folder (a venv under /tmp) would be hidden by the tmpfs: move it aside and back.
        inside = [p for p in cfg["binds"] if p.startswith(scratch + "/") and os.path.isdir(p)]
        held = []
        for n, path in enumerate(inside):
            hold = f"/.held{n}"
            os.mkdir(hold, 0o700)
            _mount(path, hold, None, MS_MOVE)
            held.append((hold, path))
        _tmpfs(scratch, mb, "1777", owner)
        for hold, path in held:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(hold, path, None, MS_MOVE)
            os.rmdir(hold)
    _tmpfs(f"{INSIDE}/work", mb, "0700", owner)
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _read_only_in_place(paths: list[str]) -> str:
    """Without a view: make `paths` read-only in our mount namespace, where they are."""
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for path in paths:
            _ro_bind(path, path)
    except OSError as exc:
        return f"no: {exc}"
    return "yes: " + ", ".join(paths)


def _count_processes(uid: int) -> int:
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                n += os.stat(f"/proc/{pid}").st_uid == uid
            except OSError:
                pass
    return n


def _drop_capabilities() -> None:
    """Empty the bounding set: after exec even uid 0 holds no capability (no remount, no DAC override)."""
    cap = 0
    while _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1


def _hello(sock: socket.socket, applied: dict[str, str], refused: str | None = None) -> None:
    sock.sendall(frames.pack({"isolation": applied} | ({"refused": refused} if refused else {})))


def child(cfg: dict[str, Any], applied: dict[str, str], namespaces: bool, running: int) -> int:
    """PID 1 of the contestant's namespaces: confine, report, exec."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    sock = socket.socket(fileno=cfg["fd"])
    root = os.geteuid() == 0
    view, notes = False, []
    if namespaces:
        try:
            notes = build_view(cfg)
            view = True
        except OSError as exc:
            applied["file_system"] = f"host file system: could not build a private root ({exc})"
    python = cfg["python"]
    if root and all(_world_can_run(p) for p in cfg["must_read"]):
        run_as, applied["user"] = NOBODY, "nobody"
    elif root and view:
        run_as = 0
        applied["user"] = f"uid 0 without any capability (nobody cannot run {python})"
    elif root:
        _hello(sock, applied, refused=(
            f"the local sandbox cannot confine student code here: no private root ({applied.get('file_system')}) "
            f"and `nobody` cannot run {python}, so student code would run as root with the host's files in view. "
            "Use --sandbox docker, or a Python that other users can read"))  # fmt: skip
        return 126
    else:
        run_as = os.getuid()
        applied["user"] = f"{run_as} (the grader's own user" + (", in a user namespace)" if namespaces else ")")
    if view:
        finish_view(cfg, (run_as, run_as if run_as != os.getuid() else os.getgid()))
        applied["file_system"] = (
            "own read-only root (system and Python folders; submission, probes and dataset at /grader); "
            f"tmpfs scratch /tmp, /dev/shm and /grader/work ({cfg['scratch_mb']} MiB each); no host folder writable"
        ) + "".join(f"; {n}" for n in notes)
        applied["read_only_mounts"] = "yes: the whole root"
        work, sub, probes = f"{INSIDE}/work", f"{INSIDE}/submission", f"{INSIDE}/probes"
        data = f"{INSIDE}/data" if cfg["data_root"] is not None else None  # mounted only where there is one
    else:
        work, sub, probes, data = cfg["fallback_work"], cfg["submission"], cfg["probes"], cfg["data_root"]
        ro = [p for p in (sub, probes, data) if p is not None]
        applied["read_only_mounts"] = _read_only_in_place(ro) if namespaces else "no (no mount namespace)"
        applied.setdefault("file_system", "host file system (no mount namespace)")
        applied["file_system"] += f": student code can write wherever uid {run_as} can"
    env = dict(cfg["env"], HOME=work, TMPDIR="/tmp" if view else f"{work}/tmp")
    if data is not None:
        env["GRADER_DATA_ROOT"] = data
    applied["processes"] = f"{cfg['processes']} (" + (
        "watchdog; root ignores RLIMIT_NPROC)" if run_as == 0 else "RLIMIT_NPROC and watchdog)"
    )
    applied["seeds"] = "random, numpy and torch seeded with 0 before student code is imported, and per request"
    if cfg.get("warm"):
        applied["start"] = cfg["warm"]
    _hello(sock, applied)
    if run_as != os.getuid():
        os.setgroups([])
        os.setgid(run_as)
        os.setuid(run_as)
    elif root:
        _drop_capabilities()
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if run_as != 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (running + cfg["processes"],) * 2)
    os.chdir(work)
    argv = [python, *cfg["flags"], "-m", "grader.contestant", "--fd", str(cfg["fd"]),
            "--submission", sub, "--probes", f"{probes}/probes.py", *cfg["args"]]  # fmt: skip
    if cfg.get("warm"):  # forked from the warm template (grader.sandbox.zygote): torch is already imported
        from grader.sandbox.zygote import become_contestant

        return become_contestant(argv, env)
    os.set_inheritable(cfg["fd"], True)
    os.execve(python, argv, env)
    return 127  # not reached


def main(argv: list[str]) -> int:
    return confine(json.loads(argv[0]))


def confine(cfg: dict[str, Any]) -> int:
    """Steps 1-5 above; returns the exit code the launcher should end with (its contestant's)."""
    applied: dict[str, str] = {}
    # If the judge dies (a batch worker killed for memory), take the contestant down too: the launcher gets
    # SIGKILL with its parent, and the contestant with the launcher. The getppid check closes the race of a
    # parent that died before prctl.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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
    # RLIMIT_NPROC counts every process of the user, so the contestant may start `processes` more than the
    # user already runs (counted here, while we still see the host's processes).
    running = _count_processes(NOBODY if root else os.getuid())
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (0 if root else CLONE_NEWUSER)
    namespaces = _libc.unshare(flags) == 0
    if namespaces and not root:
        try:  # map ourselves to ourselves so files keep their owner
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(text)
        except OSError as exc:
            applied["file_system"] = f"host file system: user namespace without an id map ({exc})"
    if namespaces:
        applied["network"] = "none (own network namespace)"
        applied["pid_namespace"] = "yes"
    else:
        why = os.strerror(ctypes.get_errno())
        applied["network"] = f"host network: unshare failed ({why})"
        applied["pid_namespace"] = "no"
        applied["file_system"] = f"host file system: no mount namespace (unshare: {why})"

    # Student code runs below the judge's priority, so the judge's watchdog gets the CPU it needs.
    os.nice(10)
    applied["priority"] = "nice +10"
    sys.stdout.flush()

    pid = os.fork()
    if pid == 0:
        try:
            code = child(cfg, applied, namespaces and "file_system" not in applied, running)
        except BaseException as exc:  # noqa: BLE001 - whatever went wrong, say it on stderr for the judge's log
            print(f"grader launcher: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            code = 125
        os._exit(code)
    os.close(cfg["fd"])
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGKILL))
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
