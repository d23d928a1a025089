"""The local sandbox: a child process on this machine, for laptops, tests and graders without Docker.

Isolation applied (launch.py does it; what this machine allowed is reported in `environment.sandbox`):
its own read-only root file system holding only the system and Python folders, the submission, the probes
and the dataset, with size-capped tmpfs scratch; network, PID, IPC and mount namespaces (in a user namespace
when the grader is not root); `nobody` when the grader is root; a minimal environment with no secrets;
resident memory of the whole process tree watched and killed past the limit; RLIMIT_NPROC, RLIMIT_FSIZE
and an RLIMIT_AS backstop; stdout and stderr captured and capped; a socket, not a folder, to talk to the
judge. Where the kernel allows no namespaces, student code sees the host's files as the grader's user
(or `nobody`) would, and the report says so; a root grader then refuses rather than run it as root.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader.channel import Channel
from grader.sandbox.base import (
    CappedOutput,
    ContestantJob,
    ExitInfo,
    ExitReason,
    Sandbox,
    SandboxError,
    SandboxProcess,
    common_env,
    copy_read_only,
    link_datasets,
    owner_tag,
    python_flags,
    remove_tree,
    scratch_mb,
    sweep_folders,
)
from grader.sandbox.template import DESCRIPTION, Forked, template_for, warm_enabled
from grader.spec import Limits

PAGE = os.sysconf("SC_PAGE_SIZE")
WATCH_INTERVAL_S = 0.05
# Virtual address space on top of the memory limit: importing torch (CUDA build) maps about 3.5 GiB.
ADDRESS_SPACE_HEADROOM_MB = 8192
FOLDER_PREFIX = "grader-sbx-"


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, resident bytes) for every process we can see."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            fields = stat[stat.rfind(b")") + 2 :].split()  # the command name may hold spaces
            table[int(name)] = (int(fields[1]), int(fields[21]) * PAGE)
        except (OSError, ValueError, IndexError):
            # The process ended between listdir and read (constantly, under a fork bomb): skip it, keep scanning.
            continue
    return table


def _pss(pid: int, rss: int) -> int:
    """Proportional set size: a forked child shares its parent's pages, and RSS would count them twice."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss


def process_tree(root_pid: int) -> dict[int, int]:
    """pid -> resident bytes for root_pid and all its descendants."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree: dict[int, int] = {}
    stack = [root_pid]
    while stack:
        pid = stack.pop()
        if pid in table:
            tree[pid] = table[pid][1]
            stack.extend(children.get(pid, []))
    return tree


def tree_memory(tree: dict[int, int]) -> int:
    """Memory of a process tree: PSS where available, so forked children do not count shared pages twice."""
    return sum(_pss(pid, rss) for pid, rss in tree.items())


SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def python_binds() -> list[str]:
    """What the contestant's root needs of this machine besides the system folders: the interpreter (its prefix
    and venv), the standard library, site-packages and the grader package. Outermost paths only."""
    import sysconfig

    import grader

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(Path(grader.__file__).parent)}
    paths |= {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    real = sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)} | {p for p in paths if p})
    out: list[str] = []
    for p in sorted(real, key=len):
        if os.path.isdir(p) and not any(p == o or p.startswith(o.rstrip("/") + "/") for o in [*SYSTEM_DIRS, *out]):
            out.append(p)
    return out


def contestant_env(lim: Limits) -> dict[str, str]:
    """The contestant's whole environment: nothing of the grader's (tokens, keys) is passed on."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **common_env(lim),
    }
    if cuda := os.environ.get("CUDA_VISIBLE_DEVICES"):
        env["CUDA_VISIBLE_DEVICES"] = cuda
    return env


def prestart(lim: Limits, many: bool = False) -> None:
    """Start the warm template for contestants under `lim` now, without waiting for it: a grader calls this
    before importing torch itself, so that the two imports overlap. `many`: it will fork many contestants."""
    if warm_enabled():
        template_for(contestant_env(lim), many)


def prestart_for(course: Path | None, assignment: str, many: bool = False) -> None:
    """`prestart` for an assignment of the course at `course` (or found from here); any mistake in either is
    left for the grading that follows to report."""
    from grader.spec import Course

    try:
        prestart(Course.locate(course).spec(assignment).limits, many)
    except Exception:  # noqa: BLE001 - reported, with its message, by the grading itself
        pass


class LocalProcess(SandboxProcess):
    def __init__(self, job: ContestantJob, warm: bool = True) -> None:
        self.job, self.warm = job, warm
        self.isolation: dict[str, str] = {}
        self.proc: Forked | subprocess.Popen[bytes]
        self.root = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{owner_tag()}-"))
        self._exit: ExitInfo | None = None
        self._kill_reason: tuple[ExitReason, str] | None = None
        self._lock = threading.Lock()
        self._out = CappedOutput(job.limits.output_kb * 1024)
        try:
            self._prepare()
            self._spawn()
        except BaseException:  # a batch's interrupt (worker.Stop) too: the folder must not outlive it
            self.close()
            raise

    def _prepare(self) -> None:
        os.chmod(self.root, 0o755)
        copy_read_only(self.job.submission, self.root / "submission")
        link_datasets(self.root / "submission", self.job)
        if self.job.data_root is not None:  # where ../data leads without a private root
            (self.root / "data").symlink_to(self.job.data_root.resolve())
        probes = self.root / "probes"
        probes.mkdir()
        shutil.copy(self.job.probes, probes / "probes.py")
        probes.chmod(0o555)
        (probes / "probes.py").chmod(0o444)
        (self.root / "view").mkdir()  # the contestant's own root is built on a tmpfs mounted here
        self.work = self.root / "work"  # scratch only where no private root can be built
        for d in (self.work, self.work / "tmp"):
            d.mkdir()
            d.chmod(0o777)  # the contestant may run as nobody

    def _spawn(self) -> None:
        import grader

        lim = self.job.limits
        for path in python_binds():
            for private in self.job.private:
                if Path(private).resolve().is_relative_to(path):
                    raise SandboxError(
                        f"the local sandbox would show student code {private}, because Python or the grader lives "
                        f"at {path}: install the grader in a virtual environment outside the course folder"
                    )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = ours
        env = contestant_env(lim)
        cfg = {
            "fd": theirs.fileno(),
            "file_size_mb": lim.file_size_mb,
            "processes": lim.processes,
            "address_space_mb": None if self.job.gpu else lim.memory_mb + ADDRESS_SPACE_HEADROOM_MB,
            "scratch_mb": scratch_mb(lim),
            "python": sys.executable,
            "must_read": [sys.executable, os.__file__, grader.__file__],
            "binds": [*SYSTEM_DIRS, *python_binds()],
            "view": str(self.root / "view"),
            "submission": str(self.root / "submission"),
            "probes": str(self.root / "probes"),
            "data_root": str(Path(self.job.data_root).resolve()) if self.job.data_root is not None else None,
            "fallback_work": str(self.work),
            "gpu": self.job.gpu,
            "env": env,
            "flags": python_flags(),
            "args": self.job.loading.args(),
        }
        template = None
        if self.warm:
            try:
                template = template_for(env)
                template.wait_ready()
            except SandboxError as exc:
                template, self.isolation = None, {"start": f"fresh interpreter ({exc})"}
        if template is not None:
            read, write = os.pipe()
            try:
                pid = template.fork(dict(cfg, warm=DESCRIPTION), [theirs.fileno(), write])
            except BaseException:
                os.close(read)
                raise
            finally:
                os.close(write)
                theirs.close()
            self.proc = Forked(template, pid, open(read, "rb"))
            self.isolation = {"start": DESCRIPTION}
            threading.Thread(target=self._read_output, daemon=True).start()
            threading.Thread(target=self._watch, daemon=True).start()
            return
        self.isolation = self.isolation or {"start": "fresh interpreter"}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-m", "grader.sandbox.launch", json.dumps(cfg)],
                cwd=self.work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        threading.Thread(target=self._read_output, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def open_channel(self, deadline: float) -> Channel:
        return Channel(self._sock, self.job.limits.answer_mb * (1 << 20))

    def _read_output(self) -> None:
        stdout = self.proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # bufsize=-1: read1 returns what is there, without waiting
        while chunk := stdout.read1(65536):
            self._out.feed(chunk)

    def _watch(self) -> None:
        lim = self.job.limits
        while self.proc.poll() is None:
            tree = process_tree(self.proc.pid)
            # Processes first, and before reading any smaps: a fork bomb is cheapest to stop by its count, and a
            # burst of forks also looks like a burst of memory for a moment.
            if len(tree) > lim.processes + 2:  # + the launcher and the contestant itself
                self.kill("processes", f"hit the process limit ({lim.processes} processes)")
            elif tree_memory(tree) > lim.memory_mb * (1 << 20):
                self.kill("memory", f"killed for exceeding {lim.memory_mb} MiB of memory")
            time.sleep(WATCH_INTERVAL_S)

    def poll(self) -> ExitInfo | None:
        if self._exit is not None:
            return self._exit
        rc = self.proc.poll()
        if rc is None:
            return None
        with self._lock:
            if self._kill_reason:
                reason, detail = self._kill_reason
            elif rc in (128 + signal.SIGXFSZ, -signal.SIGXFSZ):
                reason, detail = "killed", f"killed for writing a file over {self.job.limits.file_size_mb} MiB"
            else:
                reason, detail = "exited", f"exited with code {rc}"
            self._exit = ExitInfo(reason=reason, returncode=rc, detail=detail)
        return self._exit

    def kill(self, reason: ExitReason, detail: str = "") -> None:
        with self._lock:
            if self._kill_reason is None and self.proc.poll() is None:
                self._kill_reason = (reason, detail)
        if isinstance(self.proc, Forked):
            self.proc.kill_group()
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def output(self) -> str:
        return self._out.text()

    def close(self) -> None:
        try:
            if getattr(self, "proc", None) is not None and self.proc.poll() is None:
                self.kill("killed", "stopped by the judge")
            if getattr(self, "_sock", None) is not None:
                self._sock.close()
        finally:
            remove_tree(self.root)


class LocalSandbox(Sandbox):
    name = "local"

    def __init__(self, warm: bool | None = None) -> None:
        self._swept = False
        self.warm = warm_enabled() if warm is None else warm  # contestants forked from a warm template

    def sweep(self, mine: bool = False) -> list[str]:
        return sweep_folders(FOLDER_PREFIX, mine)

    def start(self, job: ContestantJob) -> LocalProcess:
        if not self._swept:  # once per grader: what a predecessor killed outright left behind
            self._swept = True
            self.sweep()
        return LocalProcess(job, self.warm)

    def describe(self) -> dict[str, str]:
        return {
            "sandbox": "local process",
            "memory": "resident memory of the process tree, watched every 50 ms",
        }
