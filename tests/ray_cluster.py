"""A real two-node Ray cluster on this machine for the --ray tests: `ray start --head` and a second `ray start`
node, each a separate process group with its own CPUs (and fake GPUs), its own ports and a private temp folder,
so parallel runs do not collide and teardown kills exactly what it started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _worker_range() -> tuple[int, int]:
    """A free stretch of 200 ports for one node's workers: above the Ray Client server's own range (23000-24000,
    where it starts a server per client: a worker that took 23000 once failed a Ray Client test in CI) and
    below the kernel's ephemeral ports (32768 up, where _free_ports draws)."""
    for _ in range(50):
        base = secrets.randbelow(8000 - 200) + 24000
        try:
            for p in range(base, base + 200, 37):  # spot-check: a stretch in use elsewhere is rare
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return base, base + 199
        except OSError:
            continue
    raise RuntimeError("no free port range")


class RayCluster:
    def __init__(self, scratch: Path) -> None:
        # Unix socket paths must stay short: the session folder lives under a short /tmp name.
        self.temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
        self.scratch = scratch  # TMPDIR of every Ray worker: slots, judges and sandboxes put their folders here
        scratch.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "TMPDIR": str(scratch),
            # a throwaway cluster of one machine's processes; token auth made its agents fail to reach the GCS
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            # two busy cores: the dashboard agent may take long to come up
            "RAY_agent_register_timeout_ms": "300000",
            "GRADER_SANDBOX": os.environ.get("GRADER_SANDBOX", "local"),
        }
        self.port, self.client_port = _free_ports(2)
        from ray.util import get_node_ip_address

        self.host = get_node_ip_address()  # what Ray itself picks; GCS and agents must agree on it
        self.head_args = ["--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}",
                          "--num-cpus=1", "--num-gpus=0", "--include-dashboard=false"]  # fmt: skip
        self.head = self._start(self.head_args)
        self.worker: subprocess.Popen | None = None
        self.worker_args: list[str] = []
        self.worker_hides: Path | None = None
        self.wait_nodes(1)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _start(self, args: list[str], hide: Path | None = None) -> subprocess.Popen:
        p = _free_ports(6)
        lo, hi = _worker_range()
        # On a machine shared with busy jobs a node's agent may not start within the raylet's fixed 15 s: the node
        # starts at a higher priority (root only; otherwise nice says so and runs it as is), lowered once it is up.
        cmd = ["nice", "-n", "-10", RAY, "start", "--block", f"--temp-dir={self.temp}", "--disable-usage-stats",
               f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}",
               f"--dashboard-agent-listen-port={p[2]}", f"--dashboard-agent-grpc-port={p[3]}",
               f"--metrics-export-port={p[4]}", f"--runtime-env-agent-port={p[5]}",
               f"--min-worker-port={lo}", f"--max-worker-port={hi}", *args]  # fmt: skip
        if hide is not None:
            # A node that lacks a folder the head has: in a mount namespace of its own, an empty tmpfs over it.
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs -o size=1m grader-hidden "$0" && exec "$@"', str(hide), *cmd]  # fmt: skip
        log = open(self.temp / f"start-{len(list(self.temp.glob('start-*')))}.log", "w")  # noqa: SIM115
        return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self, cpus: int = 1, gpus: int = 0, hide: Path | None = None) -> None:
        """The second node: its own process group, so killing it kills exactly that node. `hide`: a folder this
        node does not see (needs root)."""
        self.worker_args = [f"--address={self.address}", f"--num-cpus={cpus}", f"--num-gpus={gpus}"]
        self.worker_hides = hide
        self.worker = self._start(self.worker_args, hide)
        self.wait_nodes(2)

    def kill_worker(self) -> None:
        """The second node dies: raylet, its workers and their judges, all at once."""
        assert self.worker is not None
        _kill_group(self.worker, signal.SIGKILL)
        self.worker = None

    def worker_grading(self) -> bool:
        """A judge on the second node has a contestant running now: a local sandbox folder (somewhere under the
        nodes' TMPDIR) whose owner is one of that node's processes, i.e. descends from its `ray start` (Ray's
        workers start sessions of their own, so the node's process group alone does not say which judges are its)."""
        from grader.sandbox.local import FOLDER_PREFIX, process_tree

        if self.worker is None:
            return False
        node = process_tree(self.worker.pid)
        for _, dirs, _ in os.walk(self.scratch):  # folders come and go while it walks: os.walk skips those
            for name in dirs:
                owner = name[len(FOLDER_PREFIX) :].split(".", 1)[0]
                if name.startswith(FOLDER_PREFIX) and owner.isdigit() and int(owner) in node:
                    return True
        return False

    def head_only(self) -> None:
        """The second node gone, and counted dead by the cluster (its health checks time out)."""
        if self.worker is not None:
            self.kill_worker()
        deadline = time.monotonic() + 120
        while self._alive() > 1 and time.monotonic() < deadline:
            time.sleep(2)

    def python(self, code: str, timeout: float = 120) -> str:
        r = subprocess.run([sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], "
                            "logging_level='ERROR'); " + code, self.address], env=self.env, capture_output=True,
                           text=True, timeout=timeout)  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(r.stderr[-3000:])
        return r.stdout

    def wait_nodes(self, n: int, timeout: float = 600) -> None:
        """Wait for `n` live nodes; a node whose `ray start` gave up (its raylet waits 15 s for its agent) is started
        again."""
        deadline = time.monotonic() + timeout
        while True:
            if self.head.poll() is not None:
                self.head = self._start(self.head_args)
            if self.worker is not None and self.worker.poll() is not None:
                self.worker = self._start(self.worker_args, self.worker_hides)
            try:
                alive, last = self._alive(), None
            except (RuntimeError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
                alive, last = 0, exc
            if alive >= n:
                for pid in _pids_with(f"TMPDIR={self.scratch}".encode()):
                    subprocess.run(["renice", "-n", "0", "-p", str(pid)], capture_output=True)
                return
            if time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in self.temp.glob("start-*.log"))
                raise RuntimeError(f"{alive} of {n} Ray nodes up after {timeout} s: {last}\n{logs}")
            time.sleep(2)

    def _alive(self) -> int:
        out = self.python("print('alive nodes:', sum(1 for x in ray.nodes() if x['Alive']))")
        return int(out.split("alive nodes:")[-1].split()[0])  # Ray may print its own warnings after it

    def alive_actors(self) -> list[str]:
        """Actors the cluster still counts as alive (or about to be), from the GCS."""
        out = self.python("import json, ray._private.state as s\n"
                          "print(json.dumps([str(a.get('ActorClassName') or a.get('Name') or a) "
                          "for a in s.actors().values() if 'DEAD' not in str(a.get('State'))]))")  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])

    def stop(self) -> None:
        for proc in (self.worker, self.head):
            if proc is not None:
                _kill_group(proc, signal.SIGTERM)
        # Ray's workers run in sessions of their own; they carry this cluster's TMPDIR
        for pid in _pids_with(f"TMPDIR={self.scratch}".encode()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not os.environ.get("KEEP_RAY_TEMP"):
            shutil.rmtree(self.temp, ignore_errors=True)


def _pids_with(needle: bytes) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if needle in (proc / "environ").read_bytes():
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal the node's whole process group; SIGKILL whatever is left after a grace period."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
