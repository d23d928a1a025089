"""A batch worker: one long-lived judge process that grades many submissions in turn.

Kept alive across submissions so the trusted, expensive work is paid once per worker: importing torch and
pytest, reading the dataset, moving the test set to the device. Before a chunk of submissions it calls the
assignment's `batch_prefetch` hook (exp2: measure every final.pth in one pass), whose cache the checks then read.
After each submission it asks the `[similarity] predictions` hook for the judge's test-set predictions (exp2: from
that same cache) and sends them with the result, for the similarity step.
Student code still runs only in the sandbox, one contestant per submission.

This module imports nothing heavy at the top: the worker must set CUDA_VISIBLE_DEVICES before torch loads.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from grader.results import Mode
from grader.sandbox.choice import SandboxChoice


class WorkerConfig(BaseModel):
    course_root: Path
    assignment: str
    mode: Mode = "grade"
    data_root: Path | None = None
    sandbox: SandboxChoice = SandboxChoice()
    threads: int = 1
    gpu: str | None = None  # CUDA_VISIBLE_DEVICES for this worker; None leaves it as inherited


MessageKind = Literal["ready", "idle", "start", "done", "crashed", "note", "fatal"]


@dataclass(frozen=True)
class Message:
    """What a worker tells the pool (or a Ray judge slot), over its events queue.

    ready / idle: give me work; start: grading `student`; done: `payload` is the GradeResult as JSON, with the
    judge's test-set `predictions` where the assignment asks for them; crashed: `payload` says why; note: a
    remark in `payload`; fatal: this worker cannot grade at all, `payload` says why."""

    kind: MessageKind
    wid: int
    student: str = ""
    payload: str = ""
    predictions: Any = None


class Stop(KeyboardInterrupt):
    """The batch was interrupted: leave now, through every finally (sandboxes are cleaned up there).

    A KeyboardInterrupt because pytest lets only that (and its own Exit) through a check; it then ends the
    session, and grading raises it again (grader.judge.plugin.run_checks). `STOPPING` also stops a result
    that was already made from being reported."""


STOPPING = False


def _stop(signum: int, frame: Any) -> None:
    global STOPPING
    STOPPING = True
    raise Stop()


def load_hook(course: Any, spec: Any, mode: Mode, hook: str | None) -> Any:
    """An assignment's 'module:function' hook (batch_prefetch, similarity predictions), imported the way the
    checks import their helpers."""
    if not hook:
        return None
    from grader.grading import check_folders

    for folder in check_folders(course, spec, mode):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    module, func = hook.split(":")
    return getattr(importlib.import_module(module), func)


def load_prefetch(course: Any, spec: Any, mode: Mode) -> Any:
    """The assignment's batch_prefetch function."""
    return load_hook(course, spec, mode, spec.batch_prefetch)


def predictions(hook: Any, folder: Path, data_root: Path | None) -> Any:
    """The judge's test-set predictions for `folder` as a 1-d int16 array, or None (no hook, no data, no model).
    A failing hook costs only the similarity evidence, never the grade."""
    if hook is None or data_root is None:
        return None
    import numpy as np

    try:
        got = hook(folder, data_root)
    except Exception:  # noqa: BLE001 - the grade is already made; similarity then says predictions are missing
        return None
    if got is None:
        return None
    return np.asarray(got.cpu().numpy() if hasattr(got, "cpu") else got).astype(np.int16).reshape(-1)


def main(config: dict, wid: int, tasks: Queue, events: Queue) -> None:
    cfg = WorkerConfig.model_validate(config)
    if cfg.gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cfg.gpu
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    signal.signal(signal.SIGTERM, _stop)
    sandbox = None
    try:
        if cfg.sandbox.kind == "local":  # the template's torch import overlaps this worker's own
            from grader.sandbox.local import prestart_for

            prestart_for(cfg.course_root, cfg.assignment, many=True)
        import torch

        from grader.grading import grade
        from grader.judge.outcome import JudgeConfigError
        from grader.spec import Course

        torch.set_num_threads(cfg.threads)
        course = Course(root=cfg.course_root)
        spec = course.spec(cfg.assignment)
        sandbox = cfg.sandbox.build()
        prefetch = load_prefetch(course, spec, cfg.mode)
        predictor = load_hook(course, spec, cfg.mode, spec.similarity.predictions)
        events.put(Message("ready", wid))
        while (chunk := tasks.get()) is not None:
            if prefetch is not None and cfg.data_root is not None:
                try:
                    prefetch([Path(folder) for _, folder in chunk], cfg.data_root)
                except Exception as exc:  # the checks then evaluate one by one; same grades, slower
                    events.put(Message("note", wid, payload=f"batch prefetch failed ({type(exc).__name__}: {exc})"))
            for student, folder in chunk:
                events.put(Message("start", wid, student))
                try:
                    result = grade(course, cfg.assignment, Path(folder), mode=cfg.mode, sandbox=sandbox,
                                   data_root=cfg.data_root)  # fmt: skip
                except JudgeConfigError as exc:  # the same for every submission: stop the batch, charge no one
                    events.put(Message("fatal", wid, student, f"a mistake in the course stops the batch: {exc}\n"
                                       "Nothing was charged to the students: fix it, then run the same command "
                                       "again, which grades everyone not yet graded"))  # fmt: skip
                    return
                except Exception as exc:
                    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
                    events.put(Message("crashed", wid, student, f"the grader failed on this submission: {exc}\n{tb}"))
                else:
                    if STOPPING:
                        raise Stop()
                    seen = predictions(predictor, Path(folder), cfg.data_root)
                    events.put(Message("done", wid, student, result.model_dump_json(), seen))
            events.put(Message("idle", wid))
    except Stop:
        pass
    except Exception as exc:  # cannot even start (bad spec, no data): the parent reports it once
        events.put(Message("fatal", wid, payload=f"no grading worker could start: {type(exc).__name__}: {exc}"))
    finally:  # what would outlive an interrupted worker: the judge's onnxruntime process, sandbox folders
        from grader.graphs.runner import close_runner

        close_runner()
        if sandbox is not None:  # the interrupt may have landed between creating one and recording it
            try:
                sandbox.sweep(mine=True)
            except Exception:  # noqa: BLE001 - e.g. the Docker engine went away; the next grader's sweep retries
                pass
