"""Batch grading on a Ray cluster (`grader batch ... --ray ADDRESS`), with the local pool's events and outcomes.

Each node gets long-lived judge slots: Ray actors pinned to the node, each declaring the CPUs of the assignment's
`threads` and its GPU share, each owning one warm judge (grader.batch.worker.main in a child process, the very
worker the local pool runs). Why actors and not one task per submission: the judge's expensive trusted state
(torch, the spec, the course, the test set on its GPU) is paid once per slot, and the slot keeps the one GPU Ray
gave it, so CUDA_VISIBLE_DEVICES never changes under an initialized CUDA context (a reused task worker may be
handed another GPU). Why the judge is a child of the actor: the child dying is a submission that crashed its
judge (a result, exactly as in the local pool: no retry), the actor dying is a lost node (retry elsewhere), and
the child leaves through its finally blocks (contestant and container removed) when the actor stops it or dies.

Submissions travel to the slot as tar bytes with each call; results (GradeResult JSON) travel back, and the driver
writes every report. The course's assignment and solution folders travel once per slot; the slot checks that its
grader fingerprint equals the driver's and that the datasets exist on its node, naming node and path otherwise.
"""

from __future__ import annotations

import ctypes
import io
import json
import multiprocessing as mp
import os
import queue
import signal
import socket
import sys
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader.batch.runner import CourseMistake, Event, PoolError, Task, split
from grader.batch.worker import Message, WorkerConfig

if TYPE_CHECKING:
    from grader.spec import Course

NODE_RETRIES = 3  # a submission whose node is lost this many times is marked crashed (no endless loop)
POLL_S = 0.5
CLIENT_TRIES = 3  # connections tried where the Ray Client head fails to start this client's server
CLIENT_START_FAILED = "Starting Ray client server failed"  # ray.util.client.server.proxier's words
STOP_S = 60  # a contestant or container being torn down can take a few seconds
RESCAN_S = 30  # look for nodes that joined (an autoscaler adds them) this often


class ClusterError(PoolError):
    """Ray is missing or unreachable, or no node could host a judge slot; the message says which and where."""


# --- what travels ---------------------------------------------------------------------------------------------


def pack(folder: Path, arcname: str = ".") -> bytes:
    """`folder` as an uncompressed tar of its regular files, folders and symlinks: what a local grade reads (a FIFO
    or device file cannot travel; the intake would refuse it anyway)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        keep = lambda ti: ti if ti.isfile() or ti.isdir() or ti.issym() else None  # noqa: E731
        tar.add(folder, arcname=arcname, filter=keep)
    return buf.getvalue()


def unpack(blob: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        # "tar" keeps every member inside dest but keeps links as the student made them: the judge treats them
        # as hostile data, exactly as in a local batch
        try:
            tar.extractall(dest, filter="tar")
        except TypeError:  # Python before 3.10.12 / 3.11.4: no filters, and no check either
            tar.extractall(dest)  # noqa: S202


def pack_course(root: Path, assignment: str) -> bytes:
    """The files that decide this assignment's grades (grading_paths, what the fingerprint hashes)."""
    from grader.batch.state import grading_paths

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for part in grading_paths(assignment):
            if (root / part).exists():
                tar.add(root / part, arcname=part, filter=lambda ti: None if "__pycache__" in ti.name else ti)
    return buf.getvalue()


# --- on each node -----------------------------------------------------------------------------------------------


def _judge_process(config: dict, wid: int, tasks: Any, events: Any, parent: int, tmp: str) -> None:
    """The slot's judge: the local pool's worker, told to stop (SIGTERM, so through its finally blocks) when the
    slot's process dies, however it dies. Its temp folder is inside the slot's, which the slot removes whole: what
    an interrupted judge had no time to remove goes with it."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        return
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None
    from grader.batch import worker

    worker.main(config, wid, tasks, events)  # closes the judge's onnxruntime runner on the way out


def start_without_main(proc: Any) -> None:
    """Start a spawn-context process without running this process's __main__ script again in it. spawn does that
    for a script run by path; in a Ray worker it is Ray's own default_worker.py, whose imports (about 1 s of CPU,
    on a slot's critical path) the judge never uses. The child then imports only what its target needs."""
    main = sys.modules["__main__"]
    script = main.__dict__.pop("__file__", None) if getattr(main, "__spec__", None) is None else None
    try:
        proc.start()
    finally:
        if script is not None:
            main.__file__ = script


class JudgeSlot:
    """A Ray actor: one warm judge on one node (see the module docstring). Every method returns quickly."""

    def __init__(self, config: dict, course_tar: bytes, fingerprint: str) -> None:
        import ray

        from grader.spec import Course

        self.node = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
        try:  # Ray starts its workers at nice 15; the judge should run as a local pool's does (where allowed)
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except OSError:
            pass
        self.home = Path(tempfile.mkdtemp(prefix="grader-slot-"))
        unpack(course_tar, self.home / "course")
        course = Course(root=self.home / "course")
        cfg = WorkerConfig.model_validate(config)
        cuda = os.environ.get("CUDA_VISIBLE_DEVICES") if ray.get_gpu_ids() else None
        self.cfg = cfg.model_copy(update={"course_root": course.root, "gpu": cuda}).model_dump(mode="json")
        self.ctx = mp.get_context("spawn")
        self.events: Any = self.ctx.Queue()
        self.backlog: deque[list[tuple[Any, ...]]] = deque()  # (student, node folder, driver's folder)
        self.chunk: list[tuple[Any, ...]] = []
        self.finished: set[str] = set()
        self.running: str | None = None
        self.waiting = False
        self.starts = self.received = 0
        # The judge starts first (its torch import is most of a slot's start) and is stopped if this node cannot
        # grade: it has been given no submission by then
        self._spawn()
        try:
            self._check_node(course, cfg, fingerprint)
        except Exception:  # a refusal, or a course that does not load: either way this slot is not used
            self.stop()
            raise

    def _check_node(self, course: Course, cfg: WorkerConfig, fingerprint: str) -> None:
        """ClusterError, naming this node, where its grader differs from the driver's or a dataset is missing."""
        from grader.batch.state import grader_fingerprint
        from grader.data import datasets

        spec = course.spec(cfg.assignment)
        here = grader_fingerprint(course, spec)
        if here != fingerprint:
            raise ClusterError(f"node {self.node}: its grader is {here}, the driver's is {fingerprint}: install "
                               "the same grader version on every node (the grading image)")  # fmt: skip
        known = datasets(course.root)
        for name in spec.datasets:
            marker = Path(cfg.data_root or "") / known[name].layout
            if cfg.data_root is None or not marker.exists():
                raise ClusterError(f"node {self.node} has no {name} dataset at {marker}: mount it there or run "
                                   f"`grader data prepare {name} --root {cfg.data_root}` on that node")  # fmt: skip

    def _spawn(self) -> None:
        self.tasks: Any = self.ctx.Queue()
        tmp = self.home / "tmp"
        tmp.mkdir(exist_ok=True)
        args = (self.cfg, self.starts, self.tasks, self.events, os.getpid(), str(tmp))
        self.proc = self.ctx.Process(target=_judge_process, args=args, name="grader-judge")
        self.starts += 1
        start_without_main(self.proc)
        self.waiting, self.running = False, None

    def ready(self) -> dict[str, Any]:
        """Wait for the judge to be ready: where it runs, or ClusterError naming the node."""
        while True:
            try:
                ev: Message = self.events.get(timeout=600)
            except queue.Empty:
                raise ClusterError(f"node {self.node}: the judge did not start within 10 minutes") from None
            if ev.kind == "ready":
                self.waiting = True
                return {"node": self.node, "pid": os.getpid(), "cuda": self.cfg["gpu"]}
            if ev.kind == "fatal":
                raise ClusterError(f"node {self.node}: {ev.payload}")

    def submit(self, chunk: list[tuple[str, str, bytes]]) -> None:
        """Take (student, driver's folder, tar) items; the judge grades them in turn after what it already has."""
        items = []
        for student, original, blob in chunk:
            self.received += 1
            folder = self.home / "submissions" / f"{self.received}-{student}"
            unpack(blob, folder)
            items.append((student, str(folder), original))
        self.backlog.append(items)
        self._feed()

    def _feed(self) -> None:
        if self.waiting and self.backlog:
            self.chunk, self.finished, self.waiting = self.backlog.popleft(), set(), False
            self.tasks.put([(s, folder) for s, folder, _ in self.chunk])

    def poll(self, timeout: float = POLL_S) -> list[tuple[Any, ...]]:
        """What happened since the last poll, as (kind, student, payload); waits up to `timeout` for the first."""
        out: list[tuple[Any, ...]] = []
        try:
            ev = self.events.get(timeout=timeout)
            while True:
                self._event(ev, out)
                ev = self.events.get_nowait()
        except queue.Empty:
            pass
        if not self.proc.is_alive():
            self._judge_died(out)
        return out

    def _event(self, ev: Message, out: list[tuple[Any, ...]]) -> None:
        kind = ev.kind
        if kind in ("ready", "idle"):
            self.waiting, self.chunk = True, []
            self._feed()
        elif kind == "start":
            self.running = ev.student
            out.append(("start", ev.student, ""))
        elif kind in ("done", "crashed"):
            student, payload, seen = ev.student, ev.payload, [ev.predictions]
            self.finished.add(student)
            self.running = None
            for s, folder, original in self.chunk:
                if s == student:  # results name the student's own folder, as in a local batch
                    payload = payload.replace(json.dumps(folder)[1:-1], json.dumps(original)[1:-1])
                    _remove(Path(folder))
            out.append((kind, student, payload, *seen))
        elif kind == "note":
            out.append(("note", "", f"{self.node}: {ev.payload}"))
        elif kind == "fatal" and ev.student:  # a mistake in the course: every node would meet it
            raise CourseMistake(ev.payload)
        elif kind == "fatal":  # a fresh judge after a crash could not start: nothing more grades here
            raise ClusterError(f"node {self.node}: {ev.payload}")

    def _judge_died(self, out: list[tuple[Any, ...]]) -> None:
        """The submission being graded crashed its judge: that is its result. The rest goes to a fresh judge."""
        if self.running is not None:
            out.append(("crashed", self.running, f"the grading worker died (exit code {self.proc.exitcode}) while "
                                                 "grading this submission, e.g. the judge ran out of memory; "
                                                 "run the batch again to retry it"))  # fmt: skip
            self.finished.add(self.running)
        left = [item for item in self.chunk if item[0] not in self.finished]
        if left:
            self.backlog.appendleft(left)
        self.chunk = []
        self._spawn()

    def stop(self) -> list[tuple[Any, ...]]:
        """Stop the judge through its finally blocks; return the results that were already on their way."""
        out: list[tuple[Any, ...]] = []
        if self.proc.is_alive():
            self.proc.terminate()
        deadline = time.monotonic() + STOP_S
        while self.proc.is_alive() and time.monotonic() < deadline:
            self._drain_done(out)
            time.sleep(0.1)
        self._drain_done(out)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        _remove(self.home)
        return out

    def _drain_done(self, out: list[tuple[Any, ...]]) -> None:
        while True:
            try:
                ev = self.events.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if ev.kind == "done":
                self._event(ev, out)


def _remove(path: Path) -> None:
    from grader.sandbox.base import remove_tree

    remove_tree(path)


# --- on the driver ----------------------------------------------------------------------------------------------


@dataclass
class _Slot:
    actor: Any
    node_id: str
    info: dict[str, Any] = field(default_factory=dict)
    chunks: deque[list[Task]] = field(default_factory=deque)  # submitted, not all finished
    finished: set[str] = field(default_factory=set)
    running: str | None = None


def connect(address: str) -> None:
    """auto: the cluster this machine belongs to ($RAY_ADDRESS first); local: a new one on this machine; else
    ray://host:port (Ray Client) or a head's host:port."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'torch-grader[ray]'") from None
    import logging

    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        kwargs["include_dashboard"] = False
        # A cluster the grader starts sends Ray no usage report (a class's grading stays on its machines) and
        # starts about 1 s sooner; an instructor may still set it to 1
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for attempt in range(1, CLIENT_TRIES + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except (ConnectionError, RuntimeError, ValueError) as exc:
            # A Ray Client head starts a server process per client; where that process dies at once (seen in CI,
            # its log empty), the next connection gets a new one on another port
            if CLIENT_START_FAILED not in str(exc) or attempt == CLIENT_TRIES:
                raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None
            ray.shutdown()
            time.sleep(2 * attempt)


def run_cluster(tasks: list[Task], config: WorkerConfig, course_root: Path, fingerprint: str, address: str,
                gpu_share: float, workers: int | None, chunk_size: int,
                on_event: Callable[[Event], None]) -> None:  # fmt: skip
    """Grade `tasks` on the Ray cluster at `address`, as grader.batch.runner.run_pool does locally."""
    connect(address)
    import ray

    try:
        _Driver(tasks, config, course_root, fingerprint, gpu_share, workers, chunk_size, on_event).run()
    finally:
        ray.shutdown()


class _Driver:
    def __init__(self, tasks: list[Task], config: WorkerConfig, course_root: Path, fingerprint: str,
                 gpu_share: float, workers: int | None, chunk_size: int,
                 on_event: Callable[[Event], None]) -> None:  # fmt: skip
        import ray

        self.ray = ray
        self.folders = dict(tasks)
        self.pending: deque[list[Task]] = deque(split(tasks, chunk_size, workers or 2))  # at least two slots
        self.left = {s for s, _ in tasks}
        self.config, self.gpu_share, self.on_event = config, gpu_share, on_event
        self.cap = workers or len(self.pending)
        self.course = ray.put(pack_course(course_root, config.assignment))
        self.fingerprint = fingerprint
        self.slots: dict[Any, _Slot] = {}  # poll or ready ref -> slot
        self.starting: dict[Any, _Slot] = {}
        self.stopping: dict[Any, _Slot] = {}  # stop ref -> slot with no work left
        self.bad_nodes: dict[str, str] = {}  # node id -> why no slot can run there
        self.losses: dict[str, int] = {}

    # slots
    def _slots_per_node(self, resources: dict[str, float]) -> int:
        n = int(resources.get("CPU", 0) // max(1, self.config.threads))
        if self.gpu_share > 0:
            n = min(n, int(resources.get("GPU", 0) / self.gpu_share + 1e-9))
        return n

    def _scan(self) -> None:
        """Start slots on every live node that has room for more, up to the cap."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = self.ray.remote(JudgeSlot)
        have: dict[str, int] = {}
        for s in [*self.slots.values(), *self.starting.values()]:
            have[s.node_id] = have.get(s.node_id, 0) + 1
        total = sum(have.values())
        want = min(self.cap, total + len(self.pending))  # a new slot only for work no slot holds yet
        for node in self.ray.nodes():
            nid = node["NodeID"]
            if not node.get("Alive") or nid in self.bad_nodes:
                continue
            for _ in range(self._slots_per_node(node.get("Resources", {})) - have.get(nid, 0)):
                if total >= want:
                    return
                # pinned to its node, never restarted: a lost slot's work is requeued by the driver instead
                opts: dict[str, Any] = {"num_cpus": self.config.threads, "max_restarts": 0,
                                        "scheduling_strategy": NodeAffinitySchedulingStrategy(nid, soft=False)}
                if self.gpu_share > 0:
                    opts["num_gpus"] = self.gpu_share
                actor = remote.options(**opts).remote(self.config.model_dump(mode="json"), self.course,
                                                      self.fingerprint)  # fmt: skip
                # ray.remote gives the actor handle its methods' .remote(); no type describes that
                self.starting[actor.ready.remote()] = _Slot(actor=actor, node_id=nid)  # type: ignore[attr-defined]
                total += 1

    def run(self) -> None:
        self._scan()
        if not self.starting:
            gpu = f" and {self.gpu_share} GPU" if self.gpu_share else ""
            raise ClusterError(f"the Ray cluster has no node with room for a judge: each needs "
                               f"{self.config.threads} CPU(s){gpu}")
        last_scan = time.monotonic()
        try:
            while self.left:
                refs = [*self.starting, *self.slots, *self.stopping]
                if not refs:
                    self._give_up()
                    return
                done, _ = self.ray.wait(refs, num_returns=1, timeout=1.0)
                for ref in done:
                    if ref in self.starting:
                        self._started(ref)
                    elif ref in self.stopping:
                        self._stopped(ref)
                    else:
                        self._polled(ref)
                if time.monotonic() - last_scan > RESCAN_S:
                    self._scan()
                    last_scan = time.monotonic()
        except KeyboardInterrupt:
            self._stop_all()
            raise
        self._stop_all()

    def _started(self, ref: Any) -> None:
        slot = self.starting.pop(ref)
        try:
            slot.info = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            self._bad_node(slot, _cause(exc))
            self.ray.kill(slot.actor)
            self._scan()  # its work goes to a slot on another node, if one has room
            return
        self._top_up(slot)
        self.slots[slot.actor.poll.remote()] = slot

    def _bad_node(self, slot: _Slot, why: str) -> None:
        if slot.node_id not in self.bad_nodes:
            self.bad_nodes[slot.node_id] = why
            self.on_event(Event("note", payload=f"no grading on this node: {why}"))

    def _top_up(self, slot: _Slot) -> None:
        """Keep a chunk with each slot, and a second (unpacked while the judge grades the first) while every other
        slot could still take one: near the end of a class a second chunk left another slot idle meanwhile."""
        others = len(self.slots) + len(self.starting)  # this slot is in neither while it is topped up
        while self.pending and (not slot.chunks or (len(slot.chunks) < 2 and len(self.pending) > others)):
            chunk = self.pending.popleft()
            slot.chunks.append(chunk)
            slot.actor.submit.remote([(s, f, pack(Path(f))) for s, f in chunk])

    def _polled(self, ref: Any) -> None:
        slot = self.slots.pop(ref)
        try:
            events = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            if isinstance(cause := getattr(exc, "cause", None), CourseMistake):
                self._stop_all()
                raise CourseMistake(str(cause)) from None
            self._lost(slot, exc)
            return
        for kind, student, payload, *seen in events:
            if kind == "start":
                slot.running = student
                self.on_event(Event("start", student))
            elif kind in ("done", "crashed"):
                slot.running = None
                slot.finished.add(student)
                if student in self.left:  # a node lost after sending a result must not grade it twice
                    self.left.discard(student)
                    self.on_event(Event(kind, student, payload, predictions=seen[0] if seen else None))
                while slot.chunks and all(s in slot.finished for s, _ in slot.chunks[0]):
                    slot.chunks.popleft()
            elif kind == "note":
                self.on_event(Event("note", payload=payload))
        self._top_up(slot)
        if slot.chunks or self.pending:
            self.slots[slot.actor.poll.remote()] = slot
        else:  # nothing more for this slot: free its CPUs and GPU share for others' work
            self._stop(slot)

    def _lost(self, slot: _Slot, exc: Exception) -> None:
        """The slot's node died (or the slot itself): what it had not finished goes to the others."""
        self.ray.kill(slot.actor)
        left = [t for chunk in slot.chunks for t in chunk if t[0] not in slot.finished and t[0] in self.left]
        if slot.running in self.left:
            self.losses[slot.running] = n = self.losses.get(slot.running, 0) + 1
            if n >= NODE_RETRIES:
                self.left.discard(slot.running)
                left = [t for t in left if t[0] != slot.running]
                why = f"the Ray node grading this submission was lost {n} times (last: {_cause(exc)}); run it again"
                self.on_event(Event("crashed", slot.running, why))
        if left:
            self.pending.appendleft(left)
        self.on_event(Event("note", payload=f"lost a judge on {slot.info.get('node', slot.node_id)}: "
                                            f"{len(left)} submission(s) go to other nodes"))  # fmt: skip
        self._scan()

    def _give_up(self) -> None:
        """No slot is left and none can start: every remaining submission says why."""
        why = "; ".join(sorted(set(self.bad_nodes.values()))) or "every node was lost"
        if not self.bad_nodes or len(self.left) == len(self.folders):
            raise ClusterError(why)
        for student in sorted(self.left):
            self.on_event(Event("crashed", student, f"no Ray node could grade this submission: {why}"))
        self.left.clear()

    def _stop(self, slot: _Slot) -> None:
        """Ask the slot to stop its judge, without waiting: the other slots' results keep coming meanwhile, and
        slots that run out of work together stop together."""
        self.stopping[slot.actor.stop.remote()] = slot

    def _stopped(self, ref: Any) -> None:
        slot = self.stopping.pop(ref)
        try:
            self._record_stop(self.ray.get(ref))
        except self.ray.exceptions.RayError:
            pass  # a dead slot's judge was told to stop by its own death (PR_SET_PDEATHSIG)
        self.ray.kill(slot.actor)

    def _record_stop(self, events: list[tuple[Any, ...]]) -> None:
        """The results a stopping slot's judge had already sent."""
        for kind, student, payload, *seen in events:
            if kind == "done" and student in self.left:
                self.left.discard(student)
                self.on_event(Event(kind, student, payload, predictions=seen[0] if seen else None))

    def _stop_all(self) -> None:
        """Stop every slot (the judges leave through their finally blocks), then make sure the actors are gone."""
        # Starting slots too: killed outright, Ray would SIGKILL the slot's process group, judge included, before
        # it could remove anything. A slot on a lost node fails the call at once, or runs out the wait.
        starting = {id(s) for s in self.starting.values()}
        stops = {s.actor.stop.remote(): s for s in [*self.slots.values(), *self.starting.values()]}
        stops.update(self.stopping)  # asked already
        slots = list(stops.values())
        self.slots, self.starting, self.stopping = {}, {}, {}
        try:
            done, _ = self.ray.wait(list(stops), num_returns=len(stops), timeout=STOP_S + 10)
        except KeyboardInterrupt:
            done = []
        for ref in done:
            try:
                self._record_stop(self.ray.get(ref))
            except self.ray.exceptions.RayError as exc:
                # A slot still starting when the class was done may have been refused by its node (no dataset, another
                # grader): said as when it fails first, or which node cannot grade would depend on who was quicker.
                if id(stops[ref]) in starting and (why := _refused(exc)):
                    self._bad_node(stops[ref], why)
        for s in slots:
            self.ray.kill(s.actor)


def _refused(exc: Exception) -> str | None:
    """The ClusterError a slot raised (its node cannot grade), or None."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ClusterError):
        return str(cause)
    for line in str(exc).strip().splitlines():
        if "ClusterError:" in line:
            return line.split("ClusterError:", 1)[1].strip()
    return None


def _cause(exc: Exception) -> str:
    """The ClusterError a slot raised, else Ray's own first line."""
    text = str(exc).strip().splitlines()
    return _refused(exc) or (text[0] if text else type(exc).__name__)
