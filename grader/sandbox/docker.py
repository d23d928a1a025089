"""The Docker sandbox: a fresh container for each contestant process, the production path.

Same interface as the local sandbox (see base.py). Each container gets:
no network; an unprivileged uid with every capability dropped and no-new-privileges; a read-only root file
system with size-capped tmpfs folders for scratch (/tmp, and /grader/work as cwd and HOME); the
submission, the probe module and the dataset root bind-mounted read-only; the judge's listening socket,
bind-mounted (the only way data crosses back; nothing of the host is writable, so nothing lands on its
disk); memory (cgroup, no swap, OOM kill), process count (pids cgroup), CPU (a quota of `threads` CPUs) and
file-size limits from assignment.toml; the judge's wall-clock kill; output streamed and capped; GPUs through
device requests.

Nothing outlives its grader. The container is removed in `close()`, at interpreter exit and on SIGTERM. If
the grader is killed outright, the contestant sees its channel close and exits; and PID 1 of the container
is `timeout -s KILL <lifetime>`, a hard deadline the engine enforces whatever the judge does. Every
container is labelled with its owner (host, pid and start time) and deadline, and each grader's first
start sweeps the containers of owners that are gone.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from grader.channel import Channel, ChannelClosed, ChannelTimeout
from grader.frames import FrameError
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
    owner_alive,
    owner_tag,
    python_flags,
    remove_tree,
    scratch_mb,
    sweep_folders,
)
from grader.spec import Limits

MIB = 1 << 20
CONTAINER_UID = 10001  # the image's `grader` user; passed explicitly so any image runs unprivileged
IN = Path("/grader")  # where things appear inside the container
SOCKET, SUBMISSION, PROBES, DATA, WORK = IN / "judge.sock", IN / "submission", IN / "probes", IN / "data", IN / "work"
PYTHON = "/opt/grader/bin/python"
# Threads the contestant runs besides those a student starts (interpreter, torch's pools): the pids cgroup
# counts threads, and `processes` is what the student may start.
PIDS_HEADROOM = 16
# RLIMIT_DATA on top of the memory limit, as the local sandbox's RLIMIT_AS: turns one huge allocation
# into a MemoryError instead of an OOM kill. Skipped for GPU jobs (CUDA maps large writable ranges).
DATA_HEADROOM_MB = 8192
LABEL = "grader.sandbox"  # the owner's pid (what an operator filters on)
OWNER_LABEL = "grader.sandbox.owner"  # host/pid.starttime: a sweep removes containers of owners that are gone
DEADLINE_LABEL = "grader.sandbox.deadline"  # Unix time after which the container is dead by its own timeout
FOLDER_PREFIX = "grader-dkr-"
WAIT_SLICE_S = 30
# How long a container started ahead may wait for its submission; its hard deadline has this on top of the
# job's lifetime, and one that waited longer is discarded unused.
POOL_WAIT_S = 600
# A container started for a job already known waits only for its own start-up (torch's import) on top.
START_SLACK_S = 60

_live: dict[str, tuple[Any, Path]] = {}  # container id -> (container, its folder), for removal at exit
_live_lock = threading.Lock()
_hooks_installed = False
_exiting = False


def _on_exit() -> None:
    global _exiting
    _exiting = True  # a container the pool is starting right now removes itself once created
    _remove_all_live()


def _remove_all_live() -> None:
    with _live_lock:
        containers = list(_live.values())
        _live.clear()
    for c, root in containers:
        try:
            c.remove(force=True)
        except Exception:  # noqa: BLE001 - best effort at exit; the label lets an operator sweep the rest
            pass
        remove_tree(root)  # a pooled container's folder: no finally block of a grading runs for it


def _install_exit_hooks() -> None:
    """Remove live containers at exit; turn SIGTERM into SystemExit so that exit runs (Ctrl-C already does)."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_on_exit)
    # Only where nobody else handles SIGTERM, and only from the main thread (a signal handler's rule).
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def _on_term(signum: int, frame: Any) -> None:
            _on_exit()
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, _on_term)


def gpu_device_requests(env: dict[str, str] | None = None) -> list[Any]:
    """Device requests for a GPU job: the GPUs named by CUDA_VISIBLE_DEVICES, else all of them.

    Inside the container the chosen GPUs are renumbered from 0, so the host's CUDA_VISIBLE_DEVICES is
    turned into device ids here and never passed on."""
    from docker.types import DeviceRequest

    visible = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    ids = [d.strip() for d in visible.split(",") if d.strip()]
    # CUDA stops at the first invalid entry, "-1" being the usual way to hide every GPU.
    ids = ids[: next((i for i, d in enumerate(ids) if d.startswith("-")), len(ids))]
    if not ids:
        raise SandboxError(
            f"this assignment needs a GPU but CUDA_VISIBLE_DEVICES={visible!r} hides every GPU: "
            "unset it or name the GPUs to grade on"
        )
    return [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]


def container_limits(limits: Limits, gpu: bool) -> dict[str, Any]:
    """The resource part of `containers.create(...)` for `limits` (pure, so it is unit-tested)."""
    from docker.types import Ulimit

    # tmpfs pages count against the memory limit too
    tmpfs_opts = f"size={scratch_mb(limits)}m,mode=1777,nosuid,nodev" + (",exec" if gpu else "")
    fsize = limits.file_size_mb * MIB
    ulimits = [Ulimit(name="fsize", soft=fsize, hard=fsize), Ulimit(name="core", soft=0, hard=0)]
    if not gpu:
        data = (limits.memory_mb + DATA_HEADROOM_MB) * MIB
        ulimits.append(Ulimit(name="data", soft=data, hard=data))
    return {
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",  # equal to mem_limit: no swap, the limit is a hard one
        "pids_limit": limits.processes + PIDS_HEADROOM,
        "nano_cpus": limits.threads * 10**9,
        "ulimits": ulimits,
        "tmpfs": {"/tmp": tmpfs_opts, str(WORK): tmpfs_opts.replace("mode=1777", f"uid={CONTAINER_UID},mode=0700")},
    }


def contestant_env(limits: Limits, data: bool) -> dict[str, str]:
    """The contestant's whole environment: nothing of the grader's (tokens, keys) gets in."""
    env = {
        "PATH": "/opt/grader/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(WORK),
        "TMPDIR": "/tmp",
        **common_env(limits),
    }
    if data:
        env["GRADER_DATA_ROOT"] = str(DATA)
    return env


SUN_PATH_MAX = 107  # bytes of a Unix socket's path, less its final NUL (Linux)


def _bind(listener: socket.socket, folder: Path, name: str) -> None:
    """Bind `listener` to `folder/name`. A deep TMPDIR (a Ray worker's, say) makes that path too long for a Unix
    socket: then it is reached through a descriptor of the folder, /proc/self/fd/N/name, which is short."""
    path = str(folder / name)
    if len(os.fsencode(path)) <= SUN_PATH_MAX:
        listener.bind(path)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        listener.bind(f"/proc/self/fd/{fd}/{name}")
    finally:
        os.close(fd)


class DockerProcess(SandboxProcess):
    """One contestant in one container. Threads wait on the container and stream its logs, so `poll()`
    costs no call to the engine (the judge polls every few milliseconds)."""

    def __init__(self, sandbox: DockerSandbox, job: ContestantJob, ahead: bool = False) -> None:
        """A container for jobs like `job` (same image, limits, dataset and GPU), started now; `bind()` gives it
        the actual submission. Its contestant imports torch meanwhile and waits for the job. One started `ahead`
        of its submission (the pool) may wait up to POOL_WAIT_S for it, and its hard deadline is that much later."""
        self.sandbox, self.job = sandbox, job
        self.lifetime = max(1, int(job.lifetime_s + (POOL_WAIT_S if ahead else START_SLACK_S)))
        self.root = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{owner_tag()}-"))
        self.container: Any = None
        self._exit: ExitInfo | None = None
        self._kill_reason: tuple[ExitReason, str] | None = None
        self._status: dict[str, Any] | None = None  # from the engine's wait()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._out = CappedOutput(job.limits.output_kb * 1024)
        self._reader: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._started_at = time.monotonic()
        self._closed = False
        try:
            try:
                self._prepare()
            except OSError as exc:
                raise SandboxError(f"could not prepare the contestant's folder {self.root}: {exc}") from None
            self._start()
        except BaseException:
            self.close()
            raise

    def _prepare(self) -> None:
        # Filled by bind(), with world-readable modes: the container's uid must read them whatever the umask.
        os.chmod(self.root, 0o755)
        (self.root / "submission").mkdir(mode=0o755)
        self.probes = self.root / "probes.py"
        self.probes.touch(0o644)  # written in place by bind(): a file bind mount keeps its inode
        # The contestant connects once, before any student code runs; the judge then closes the listener.
        self.socket_path = self.root / "judge.sock"
        listener = self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _bind(listener, self.root, self.socket_path.name)
        self.socket_path.chmod(0o666)  # connect() needs write permission for the container's uid
        listener.listen(1)

    def _start(self) -> None:
        import docker

        job, lim = self.job, self.job.limits
        volumes = {
            str(self.socket_path): {"bind": str(SOCKET), "mode": "ro"},  # read-only still lets it connect
            str(self.root / "submission"): {"bind": str(SUBMISSION), "mode": "ro"},
            str(self.probes): {"bind": str(PROBES / "probes.py"), "mode": "ro"},
        }
        if job.data_root is not None:
            volumes[str(Path(job.data_root).resolve())] = {"bind": str(DATA), "mode": "ro"}
        lifetime = self.lifetime
        command = [
            "timeout", "-s", "KILL", str(lifetime),
            PYTHON, *python_flags((3, 11)), "-m", "grader.contestant",  # the images' Pythons are 3.11 or newer
            "--connect", str(SOCKET), "--submission", str(SUBMISSION), "--probes", str(PROBES / "probes.py"),
            "--await-job",
        ]  # fmt: skip
        kwargs: dict[str, Any] = {
            **container_limits(lim, job.gpu),
            "command": command,
            "user": f"{CONTAINER_UID}:{CONTAINER_UID}",
            "working_dir": str(WORK),
            "environment": contestant_env(lim, job.data_root is not None),
            "volumes": volumes,
            "network_mode": "none",
            "read_only": True,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "labels": {
                LABEL: str(os.getpid()),
                OWNER_LABEL: f"{socket.gethostname()}/{owner_tag()}",
                DEADLINE_LABEL: str(int(time.time()) + lifetime),
            },
            # The engine's own log copy is capped too; the head is kept by our streaming reader.
            "log_config": docker.types.LogConfig(
                type="json-file", config={"max-size": f"{max(1, lim.output_kb * 4 // 1024)}m", "max-file": "1"}
            ),
            "stdin_open": False,
            "detach": True,
        }
        if job.gpu:
            kwargs["device_requests"] = gpu_device_requests()
        client = self.sandbox.client()
        try:
            self.container = client.containers.create(self.sandbox.image_for(job), **kwargs)
            with _live_lock:
                _live[self.container.id] = (self.container, self.root)
            self.container.start()
            self._started_at = self.created = time.monotonic()
        except docker.errors.ImageNotFound:
            raise SandboxError(self.sandbox.missing_image_message(job)) from None
        except docker.errors.APIError as exc:
            hint = ""
            if job.gpu and "gpu" in str(exc).lower():
                hint = ": install the NVIDIA Container Toolkit and restart the engine"
            raise SandboxError(f"the Docker engine could not start the contestant: {exc}{hint}") from None
        threading.Thread(target=self._wait, daemon=True).start()
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def bind(self, job: ContestantJob) -> None:
        """Give this container its submission: copied into its (read-only to it) mounts before the job is sent."""
        self.job = job
        for src in job.submission.iterdir():
            dest = self.root / "submission" / src.name
            if src.is_dir():
                copy_read_only(src, dest)
            else:
                shutil.copy(src, dest)
                dest.chmod(0o444)
        link_datasets(self.root / "submission", job)
        shutil.copyfile(job.probes, self.probes)
        self.probes.chmod(0o444)
        (self.root / "submission").chmod(0o555)
        self.isolation = self.sandbox.applied(job)

    def open_channel(self, deadline: float) -> Channel:
        """Accept the contestant's one connection, then close the listener: no second one can come. Then wait
        for it to have imported torch, and send it the job."""
        listener = self._listener
        assert listener is not None
        try:
            while not select.select([listener], [], [], 0.05)[0]:
                if self.poll() is not None or time.monotonic() > deadline:
                    raise SandboxError(f"the contestant never connected to the judge ({self.poll() or 'timed out'})")
            conn, _ = listener.accept()
        finally:
            listener.close()
            self._listener = None
            self.socket_path.unlink(missing_ok=True)
        channel = Channel(conn, self.job.limits.answer_mb * MIB)

        def alive() -> None:
            if self.poll() is not None:
                raise SandboxError(f"the contestant ended before its job was sent ({self.poll()})")

        try:  # nothing of the student's has run yet: anything odd here is the machine's problem
            hello, _ = channel.recv(deadline, alive)
            if set(hello) != {"waiting"}:
                raise SandboxError(f"the contestant sent {sorted(hello)} instead of waiting for its job")
            channel.send({"job": {"loading": dataclasses.asdict(self.job.loading)}}, b"", deadline, alive)
        except (ChannelClosed, ChannelTimeout, FrameError) as exc:
            raise SandboxError(f"the contestant could not be given its job ({type(exc).__name__}: {exc})") from None
        return channel

    def _wait(self) -> None:
        import requests

        while True:
            try:
                # In slices: a wait() longer than the client's request timeout (60 s) raises.
                self._status = self.container.wait(timeout=WAIT_SLICE_S)
                break
            except requests.exceptions.RequestException:
                if self._closed:
                    break
            except Exception as exc:  # noqa: BLE001 - removed under us (close) or the engine went away
                self._status = {"StatusCode": None, "Error": {"Message": str(exc)}}
                break
        self._done.set()

    def _read_output(self) -> None:
        try:
            for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                if chunk.startswith(b"Error grabbing logs"):
                    # The engine rotated its size-capped log under the reader: the rest is gone, say so.
                    self._out.lost = "the engine's log file reached its size cap"
                    continue
                self._out.feed(chunk)
        except Exception:  # noqa: BLE001 - the stream ends with an error when the container is removed
            pass

    def poll(self) -> ExitInfo | None:
        if self._exit is not None:
            return self._exit
        if not self._done.is_set():
            return None
        with self._lock:
            if self._exit is None:
                self._exit = self._classify()
        return self._exit

    def _classify(self) -> ExitInfo:
        rc = (self._status or {}).get("StatusCode")
        if self._kill_reason is not None:
            reason, detail = self._kill_reason
            return ExitInfo(reason=reason, returncode=rc, detail=detail)
        try:
            self.container.reload()
            oom = bool(self.container.attrs["State"].get("OOMKilled"))
        except Exception:  # noqa: BLE001
            oom = False
        lim = self.job.limits
        if oom:
            reason, detail = "memory", f"killed for exceeding {lim.memory_mb} MiB of memory"
        elif rc == 128 + signal.SIGKILL and time.monotonic() - self._started_at >= self.lifetime - 1:
            # `timeout -s KILL` kills its whole process group, itself included, so the exit code alone
            # cannot tell the deadline from another SIGKILL: the container's age can.
            reason, detail = "timeout", f"reached the container's hard deadline ({int(self.job.lifetime_s)} s)"
        elif rc == 128 + signal.SIGXFSZ:
            reason, detail = "killed", f"killed for writing a file over {lim.file_size_mb} MiB"
        else:
            reason, detail = "exited", f"exited with code {rc}"
        return ExitInfo(reason=reason, returncode=rc, detail=detail)

    def kill(self, reason: ExitReason, detail: str = "") -> None:
        with self._lock:
            if self._kill_reason is None and not self._done.is_set():
                self._kill_reason = (reason, detail)
        try:
            self.container.kill()
        except Exception:  # noqa: BLE001 - already stopped
            pass
        self._done.wait(10)

    def output(self) -> str:
        if self._done.is_set() and self._reader is not None:
            self._reader.join(2)  # the last lines may still be in flight
        return self._out.text()

    def close(self) -> None:
        self._closed = True
        try:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            if self.container is not None:
                with self._lock:
                    if self._kill_reason is None and not self._done.is_set():
                        self._kill_reason = ("killed", "stopped by the judge")
                try:
                    self.container.remove(force=True)
                except Exception as exc:  # noqa: BLE001
                    if getattr(exc, "status_code", None) != 404:
                        raise SandboxError(f"could not remove container {self.container.short_id}: {exc}") from None
                finally:
                    with _live_lock:
                        _live.pop(self.container.id, None)
        finally:
            remove_tree(self.root)


class DockerSandbox(Sandbox):
    """Contestants in containers of the grading image (`grader image build`)."""

    name = "docker"

    def __init__(self, image: str | None = None, gpu_image: str | None = None, pool: int = 0) -> None:
        """`pool`: containers kept started ahead for the next contestants like the last one (each used once),
        so that a container's start overlaps the submission before it."""
        from grader.image import IMAGE_TAGS

        self.image = image or os.environ.get("GRADER_IMAGE") or IMAGE_TAGS["cpu"]
        self.gpu_image = gpu_image or os.environ.get("GRADER_GPU_IMAGE") or IMAGE_TAGS["cuda"]
        self._client: Any = None
        self._checked: set[str] = set()
        self.pool_size = pool
        self._pool: list[tuple[tuple[Any, ...], DockerProcess]] = []
        self._pool_lock = threading.Lock()
        self._filling = 0  # containers being started ahead right now
        self._closed = False

    def client(self) -> Any:
        if self._client is None:
            from grader.image import docker_client

            self._client = docker_client()
            _install_exit_hooks()
            self.sweep()
        return self._client

    def sweep(self, mine: bool = False) -> list[str]:
        """Remove containers whose grader on this host is gone, and any past its hard deadline."""
        import docker

        removed = sweep_folders(FOLDER_PREFIX, mine)
        host, now, me = socket.gethostname(), time.time(), owner_tag()
        try:
            # Another grader may remove one of these between the engine's list and its inspect of each:
            # skip it (the default raises NotFound, and a sweep must never cost a grade).
            listed = self.client().containers.list(all=True, filters={"label": OWNER_LABEL}, ignore_removed=True)
        except docker.errors.APIError:
            return removed
        for c in listed:
            labels = c.labels or {}
            owner_host, _, tag = labels.get(OWNER_LABEL, "").partition("/")
            try:
                expired = float(labels.get(DEADLINE_LABEL, "inf")) + 60 < now
            except ValueError:
                expired = False
            if expired or (owner_host == host and (not owner_alive(tag) or (mine and tag == me))):
                try:
                    c.remove(force=True)
                    removed.append(c.short_id)
                except Exception:  # noqa: BLE001 - removed by someone else meanwhile
                    pass
        return removed

    def image_for(self, job: ContestantJob) -> str:
        return self.gpu_image if job.gpu else self.image

    def missing_image_message(self, job: ContestantJob) -> str:
        variant = "--cuda" if job.gpu else "--cpu"
        return (
            f"the grading image {self.image_for(job)} is not on this machine: build it with "
            f"`grader image build {variant}` (see docs/docker.md), or name another with GRADER_IMAGE"
        )

    def preflight(self, job: ContestantJob) -> None:
        """Fail now, with a fix, if the engine or the image is missing (once per image)."""
        import docker

        image = self.image_for(job)
        if image in self._checked:
            return
        try:
            self.client().images.get(image)
        except docker.errors.ImageNotFound:
            raise SandboxError(self.missing_image_message(job)) from None
        self._checked.add(image)

    def start(self, job: ContestantJob) -> DockerProcess:
        try:
            import docker  # noqa: F401
        except ImportError:
            raise SandboxError("the Docker sandbox needs the docker package: pip install 'docker>=7'") from None
        self.preflight(job)
        proc = self._take(job) or DockerProcess(self, job)
        try:
            proc.bind(job)
        except BaseException:
            proc.close()
            raise
        self._fill(job)
        return proc

    @staticmethod
    def _key(job: ContestantJob) -> tuple[Any, ...]:
        """What a container is started with, before its submission is known."""
        return (job.limits, job.gpu, job.data_root and str(Path(job.data_root).resolve()), job.lifetime_s)

    def _take(self, job: ContestantJob) -> DockerProcess | None:
        """A container started ahead for jobs like this one, still running and within its wait."""
        with self._pool_lock:
            ready = [(k, p) for k, p in self._pool if k == self._key(job)]
            for item in ready:
                self._pool.remove(item)
        for _, proc in ready[1:]:
            proc.close()
        if ready and ready[0][1].poll() is None and time.monotonic() - ready[0][1].created < POOL_WAIT_S:
            return ready[0][1]
        if ready:
            ready[0][1].close()
        return None

    def _fill(self, job: ContestantJob) -> None:
        """Start containers ahead, in the background, until `pool_size` wait for jobs like this one."""
        with self._pool_lock:
            need = self.pool_size - len(self._pool) - self._filling
            if self._closed or need <= 0:
                return
            self._filling += need

        def run() -> None:
            for _ in range(need):
                proc = None
                try:
                    proc = DockerProcess(self, job, ahead=True)
                except Exception:  # noqa: BLE001 - the next start creates its container itself and says why
                    pass
                with self._pool_lock:
                    self._filling -= 1
                    keep = not self._closed and not _exiting
                    if proc is not None and keep:
                        self._pool.append((self._key(job), proc))
                if proc is not None and not keep:
                    proc.close()

        threading.Thread(target=run, daemon=True, name="grader-docker-pool").start()

    def close(self) -> None:
        """Remove the containers started ahead (each grader's exit does it too, Ctrl-C and SIGTERM included)."""
        with self._pool_lock:
            self._closed = True
            pooled, self._pool = self._pool, []
        for _, proc in pooled:
            proc.close()
        while self._filling:  # a container being created now removes itself once it exists
            time.sleep(0.05)

    def applied(self, job: ContestantJob) -> dict[str, str]:
        """What a container for `job` gets, for the report (the judge knows it; nothing comes from the container)."""
        lim = container_limits(job.limits, job.gpu)
        return {
            "image": self.image_for(job),
            "user": f"uid {CONTAINER_UID}, all capabilities dropped, no-new-privileges",
            "network": "none",
            "file_system": f"read-only root; tmpfs /tmp and {WORK} ({lim['tmpfs']['/tmp'].split(',')[0]})",
            "read_only_mounts": "yes: submission, probes" + (", dataset root" if job.data_root else ""),
            "memory": f"{job.limits.memory_mb} MiB (cgroup, no swap; OOM kill)",
            "processes": f"{job.limits.processes} (+{PIDS_HEADROOM} for the runtime's threads; pids cgroup)",
            "cpus": f"{job.limits.threads} (CPU quota)",
            "file_size": f"{job.limits.file_size_mb} MiB (RLIMIT_FSIZE)",
            "gpu": "device request" if job.gpu else "none",
        }

    def describe(self) -> dict[str, str]:
        return {"sandbox": f"docker container ({self.image})", "memory": "cgroup limit, OOM kill"}
