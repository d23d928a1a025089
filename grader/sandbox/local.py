"""The local sandbox: a child process on this machine, for laptops and tests.

Isolation applied (see launch.py; `describe()` reports what this machine allowed):
its own temporary working folder; the submission copied read-only; a minimal environment with no
secrets; resident memory of the whole process tree watched and killed past the limit; RLIMIT_NPROC,
RLIMIT_FSIZE and an RLIMIT_AS backstop; a network and PID namespace where unshare works; running as
`nobody` when the grader runs as root; stdout and stderr captured and capped.
It is weaker than the Docker sandbox: the rest of the file system stays readable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader.sandbox.base import (
    CappedOutput,
    ContestantJob,
    ExitInfo,
    ExitReason,
    Sandbox,
    SandboxProcess,
    copy_read_only,
    remove_tree,
)

PAGE = os.sysconf("SC_PAGE_SIZE")
WATCH_INTERVAL_S = 0.05
# Virtual address space on top of the memory limit: importing torch (CUDA build) maps about 3.5 GiB.
ADDRESS_SPACE_HEADROOM_MB = 8192


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


def _world_can_reach(path: Path, mode: int) -> bool:
    """True if a user with no special rights can traverse every parent of `path` and has `mode` on it."""
    path = path.resolve()
    try:
        if path.stat().st_mode & mode != mode:
            return False
        return all(p.stat().st_mode & stat.S_IXOTH for p in path.parents)
    except OSError:
        return False


def nobody_can_run_python() -> bool:
    """Whether `nobody` could run this interpreter, its standard library and our package.

    If not (a pyenv Python under /root, say), a root grader keeps the contestant's uid and relies on the
    process watchdog instead of RLIMIT_NPROC, which root ignores."""
    import grader

    return os.geteuid() == 0 and all(
        _world_can_reach(p, m)
        for p, m in (
            (Path(sys.executable), stat.S_IXOTH),
            (Path(os.__file__), stat.S_IROTH),
            (Path(grader.__file__), stat.S_IROTH),
        )
    )


class LocalProcess(SandboxProcess):
    def __init__(self, job: ContestantJob) -> None:
        self.job = job
        self.root = Path(tempfile.mkdtemp(prefix="grader-sbx-"))
        self._exit: ExitInfo | None = None
        self._kill_reason: tuple[ExitReason, str] | None = None
        self._lock = threading.Lock()
        self._out = CappedOutput(job.limits.output_kb * 1024)
        try:
            self._prepare()
            self._spawn()
        except Exception:
            self.close()
            raise

    def _prepare(self) -> None:
        os.chmod(self.root, 0o755)
        copy_read_only(self.job.submission, self.root / "submission")
        probes = self.root / "probes"
        probes.mkdir()
        shutil.copy(self.job.probes, probes / "probes.py")
        probes.chmod(0o555)
        (probes / "probes.py").chmod(0o444)
        self.exchange = self.root / "exchange"
        self.work = self.root / "work"
        for d in (self.exchange, self.work, self.work / "tmp"):
            d.mkdir()
            d.chmod(0o777)  # the contestant may run as nobody

    def _spawn(self) -> None:
        lim = self.job.limits
        cfg = {
            "exchange": str(self.exchange),
            "file_size_mb": lim.file_size_mb,
            "processes": lim.processes,
            "address_space_mb": None if self.job.gpu else lim.memory_mb + ADDRESS_SPACE_HEADROOM_MB,
            "drop_root": nobody_can_run_python(),
            "read_only": [str(self.root / "submission"), str(self.root / "probes")]
            + ([str(self.job.data_root)] if self.job.data_root is not None else []),
        }
        contestant = [
            sys.executable, "-I", "-m", "grader.contestant",
            "--exchange", str(self.exchange),
            "--submission", str(self.root / "submission"),
            "--probes", str(self.root / "probes" / "probes.py"),
        ]  # fmt: skip
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.work),
            "TMPDIR": str(self.work / "tmp"),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(lim.threads),
            "MKL_NUM_THREADS": str(lim.threads),
            "GRADER_THREADS": str(lim.threads),
            "CUBLAS_WORKSPACE_CONFIG": ":4096:8",  # deterministic cuBLAS
        }
        if self.job.data_root is not None:
            env["GRADER_DATA_ROOT"] = str(self.job.data_root)
        if cuda := os.environ.get("CUDA_VISIBLE_DEVICES"):
            env["CUDA_VISIBLE_DEVICES"] = cuda
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "grader.sandbox.launch", json.dumps(cfg), "--", *contestant],
            cwd=self.work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
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
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def output(self) -> str:
        return self._out.text()

    def close(self) -> None:
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            self.kill("killed", "stopped by the judge")
        remove_tree(self.root)


class LocalSandbox(Sandbox):
    name = "local"

    def start(self, job: ContestantJob) -> LocalProcess:
        return LocalProcess(job)

    def describe(self) -> dict[str, str]:
        return {
            "sandbox": "local process",
            "memory": "resident memory of the process tree, watched every 50 ms",
        }
