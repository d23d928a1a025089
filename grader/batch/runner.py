"""The worker pool: hands chunks of submissions to worker processes and hears back what each one got.

The parent never grades; it dispatches, records and draws progress. A worker that dies (the judge killed for
memory, a segfault) costs only the submission it was grading, which is marked crashed with a message; the rest
of its chunk goes back in the queue and a fresh worker takes over. Ctrl-C stops the workers with SIGTERM so each
leaves through its finally blocks (contestant processes and containers are removed), and what was already graded
stays recorded.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from grader.batch import worker
from grader.batch.worker import WorkerConfig

Task = tuple[str, str]  # (student id, submission folder)


@dataclass
class Event:
    """What the pool tells the batch's recorder."""

    kind: Literal["start", "done", "crashed", "note"]
    student: str = ""
    payload: str = ""  # done: the GradeResult as JSON; crashed, note: a message
    failed: bool = False  # set by the recorder: crashed, or a check the grader itself could not run
    predictions: Any = None  # done: the judge's test-set predictions (a numpy int16 array), for similarity


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    tasks: mp.queues.Queue
    chunk: list[Task] = field(default_factory=list)
    running: str | None = None
    finished: set[str] = field(default_factory=set)


def split(tasks: list[Task], size: int, workers: int) -> list[list[Task]]:
    """Chunks of at most `size` that shrink towards the end when several workers share them (guided
    scheduling), so that they finish together: with equal chunks a class of 8 went to one worker of two, and a
    class of 100 ended with one worker grading its last chunk alone."""
    chunks, i = [], 0
    while i < len(tasks):
        n = size if workers <= 1 else min(size, max(1, -(-(len(tasks) - i) // (2 * workers))))
        chunks.append(tasks[i : i + n])
        i += n
    return chunks


class PoolError(Exception):
    """No worker could start, or a mistake in the course stopped them (the message is the first worker's)."""


class CourseMistake(PoolError):
    """A check file that does not import: the same for every submission, so the batch stops and charges no one."""


def run_pool(
    tasks: list[Task],
    config: WorkerConfig,
    workers: int,
    gpus: list[str],
    chunk_size: int,
    on_event: Callable[[Event], None],
) -> None:
    """Grade `tasks` in `workers` processes; every outcome reaches `on_event`. Raises KeyboardInterrupt after a
    clean stop when interrupted."""
    ctx = mp.get_context("spawn")  # a fresh interpreter: CUDA_VISIBLE_DEVICES is set before torch loads
    events: mp.queues.Queue = ctx.Queue()
    pending = deque(split(tasks, chunk_size, workers))
    pool: dict[int, _Worker] = {}
    next_id = 0

    def spawn() -> None:
        nonlocal next_id
        wid, next_id = next_id, next_id + 1
        gpu = gpus[wid % len(gpus)] if gpus else None
        cfg = config.model_copy(update={"gpu": gpu}).model_dump(mode="json")
        q = ctx.Queue()
        p = ctx.Process(target=worker.main, args=(cfg, wid, q, events), name=f"grader-worker-{wid}")
        p.start()
        pool[wid] = _Worker(process=p, tasks=q)

    def dispatch(w: _Worker) -> None:
        w.chunk = pending.popleft() if pending else []
        w.finished, w.running = set(), None
        w.tasks.put(w.chunk or None)

    for _ in range(min(workers, len(pending))):
        spawn()
    fatal: list[str] = []
    try:
        while pool:
            try:
                ev = events.get(timeout=0.5)
            except queue.Empty:
                _reap(pool, pending, fatal, spawn, on_event)
                if fatal and not pool:
                    raise PoolError(fatal[0]) from None
                continue
            w = pool.get(ev.wid)
            if w is None:
                continue
            if ev.kind in ("ready", "idle"):
                dispatch(w)
            elif ev.kind == "start":
                w.running = ev.student
                on_event(Event("start", ev.student))
            elif ev.kind in ("done", "crashed"):
                w.finished.add(ev.student)
                w.running = None
                on_event(Event(ev.kind, ev.student, ev.payload, predictions=ev.predictions))
            elif ev.kind == "note":
                on_event(Event("note", payload=f"worker {ev.wid}: {ev.payload}"))
            elif ev.kind == "fatal":  # no submission is charged for it: what this worker held stays ungraded
                fatal.append(ev.payload)
                w.running, w.chunk = None, []
                w.tasks.put(None)
    except KeyboardInterrupt:
        _stop(pool, events, on_event)
        raise


def _reap(pool: dict[int, _Worker], pending: deque, fatal: list[str], spawn: Callable[[], None],
          on_event: Callable[[Event], None]) -> None:  # fmt: skip
    """Remove workers that exited; requeue what a dead worker had not started, and replace it."""
    for wid, w in list(pool.items()):
        if w.process.is_alive():
            continue
        del pool[wid]
        if w.running is not None:
            on_event(Event("crashed", w.running, f"the grading worker died (exit code {w.process.exitcode}) while "
                                                 "grading this submission, e.g. the judge ran out of memory; "
                                                 "run the batch again to retry it"))  # fmt: skip
        left = [t for t in w.chunk if t[0] not in w.finished and t[0] != w.running]
        if left:
            pending.appendleft(left)
        if pending and not fatal:
            spawn()


def _stop(pool: dict[int, _Worker], events: mp.queues.Queue, on_event: Callable[[Event], None]) -> None:
    """SIGTERM every worker, keep the results that were already on their way, then make sure all are gone."""
    for w in pool.values():
        if w.process.is_alive():
            w.process.terminate()
    deadline = time.monotonic() + 60  # a contestant or container being torn down can take a few seconds
    while any(w.process.is_alive() for w in pool.values()) and time.monotonic() < deadline:
        _drain(events, on_event)
        time.sleep(0.1)
    _drain(events, on_event)
    for w in pool.values():
        if w.process.is_alive():
            w.process.kill()
        w.process.join(5)


def _drain(events: mp.queues.Queue, on_event: Callable[[Event], None]) -> None:
    while True:
        try:
            ev: worker.Message = events.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        if ev.kind == "done":
            on_event(Event("done", ev.student, ev.payload, predictions=ev.predictions))
