"""What a batch has already graded: one JSON file per student under OUT/.state, written atomically.

A rerun of the same command skips a student whose submission hash and grader fingerprint are unchanged, so an
interrupted batch resumes where it stopped and a finished one costs nothing to re-run.

Beside each result, OUT/.state/predictions/<student>.npy keeps the judge's test-set predictions for that
submission (assignments with a `[similarity] predictions` hook), which the similarity step compares.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from grader import __version__
from grader.batch.discover import JUNK
from grader.files import UnsafeFile, open_regular
from grader.results import GradeResult
from grader.spec import AssignmentSpec, Course


class Graded(BaseModel):
    student: str
    content_hash: str
    grader: str
    status: str  # graded | crashed
    message: str = ""
    result: GradeResult | None = None
    submission: str = Field("", description="the folder that was graded (unpacked from a zip where it was one)")

    def reusable(self, content_hash: str, grader: str) -> bool:
        """Whether a rerun may keep this result: the same files and grader, and no check the grading machine
        failed to run (status error, e.g. the sandbox could not start), which deserves another try."""
        return (self.status == "graded" and self.content_hash == content_hash and self.grader == grader
                and self.result is not None and all(c.status != "error" for c in self.result.checks))  # fmt: skip


def content_hash(folder: Path) -> str:
    """sha256 over the submission's relative paths and bytes (metadata such as mtimes does not count)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(folder)
        if any(part in JUNK for part in rel.parts):
            continue
        h.update(rel.as_posix().encode() + b"\0")
        try:
            fd = open_regular(path)
        except UnsafeFile as exc:  # swapped for something else meanwhile: its name and why stand in for it
            h.update(str(exc).encode() + b"\0")
            continue
        with os.fdopen(fd, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def grading_paths(assignment: str) -> tuple[str, ...]:
    """What decides an assignment's grades, relative to the course root: its folder (spec, probes, public
    checks), its solution folder (hidden checks, the reference model they load), and the course's own dataset
    readers. The resume fingerprint hashes these; a Ray cluster ships exactly these to its nodes."""
    return (f"assignments/{assignment}", f"solutions/{assignment}", "datasets", "course.toml")


def grader_fingerprint(course: Course, spec: AssignmentSpec) -> str:
    """The grader version plus a hash of the source files among `grading_paths`: editing any of them regrades
    the class on the next run."""
    h = hashlib.sha256()
    files: list[Path] = []
    for part in map(course.root.joinpath, grading_paths(spec.id)):
        if part.is_dir():
            files += sorted(part.rglob("*.py")) + sorted(part.rglob("*.toml")) + sorted(part.rglob("*.json"))
        else:
            files.append(part)
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(course.root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


class StateStore:
    def __init__(self, out: Path) -> None:
        self.dir = out / ".state"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, folder: str) -> Path:
        return self.dir / f"{folder}.json"

    def load(self, folder: str) -> Graded | None:
        try:
            return Graded.model_validate(json.loads(self._path(folder).read_text(encoding="utf-8")))
        except (OSError, ValueError, ValidationError):
            return None  # absent or torn: grade again

    def save(self, folder: str, graded: Graded) -> None:
        tmp = self._path(folder).with_suffix(".tmp")
        tmp.write_text(graded.model_dump_json(), encoding="utf-8")
        os.replace(tmp, self._path(folder))  # atomic: an interrupt never leaves half a file behind

    def _predictions_path(self, folder: str) -> Path:
        return self.dir / "predictions" / f"{folder}.npy"

    def save_predictions(self, folder: str, predictions: np.ndarray | None) -> None:
        """Keep (or, with None, forget) a submission's test-set predictions, written before its result so a
        saved result never pairs with another submission's predictions."""
        path = self._predictions_path(folder)
        if predictions is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            np.save(f, np.asarray(predictions, dtype=np.int16), allow_pickle=False)
        os.replace(tmp, path)

    def load_predictions(self, folder: str) -> np.ndarray | None:
        try:
            return np.load(self._predictions_path(folder), allow_pickle=False)
        except (OSError, ValueError):
            return None
