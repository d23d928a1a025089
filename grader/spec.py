"""Pydantic models of `assignments/<id>/assignment.toml`, and where a course's folders live."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Visibility = Literal["visible", "hidden", "after_due_date"]
DatasetName = Literal["cifar10", "fashion-mnist", "timemachine"]
CHECK_ID = r"^[a-z][a-z0-9_]*$"


class Strict(BaseModel):
    # A typo in assignment.toml must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(Strict):
    """A file the student submits."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="file name inside the submission folder")
    max_kb: int = Field(gt=0, description="largest accepted size in KiB")
    required: bool = True


class Limits(Strict):
    """Resource limits for the contestant process. Defaults suit a CPU laptop."""

    memory_mb: int = Field(2048, gt=64, description="resident memory of the whole process tree")
    processes: int = Field(64, gt=0, description="processes and threads the contestant may run at once")
    output_kb: int = Field(256, gt=0, description="stdout+stderr kept; the rest is counted and dropped")
    file_size_mb: int = Field(64, gt=0, description="largest file the contestant may write")
    threads: int = Field(1, gt=0, description="torch/OpenMP threads; 1 keeps CPU results bit-reproducible")
    answer_mb: int = Field(256, gt=0, description="largest answer the judge reads from the contestant")


class CheckSpec(Strict):
    """One graded check: a pytest function named `test_<id>` in the assignment's check files."""

    id: str = Field(pattern=CHECK_ID)
    name: str = Field(min_length=1, description="what a student reads in the report")
    points: float = Field(gt=0)
    visibility: Visibility = "visible"
    timeout: float = Field(60.0, gt=0, le=3600, description="seconds the contestant may spend on this check")
    files: list[str] = Field(default_factory=list, description="submitted files this check reads")
    tags: list[str] = Field(default_factory=list)
    enabled: bool = Field(True, description="false: declared but never run (e.g. an optional re-run check)")
    needs_gpu: bool = Field(False, description="run only where CUDA is available; skipped (not scored) elsewhere")


class LatePolicy(Strict):
    """Late submissions lose `penalty_per_day` of their earned total for each started day past `due`."""

    due: datetime = Field(description="ISO 8601 with a UTC offset, e.g. 2026-10-12T23:59:00+08:00")
    penalty_per_day: float = Field(ge=0, le=1, description="fraction of the earned total lost per started day")
    grace_minutes: int = Field(0, ge=0, description="lateness up to this many minutes is forgiven")
    max_days: int | None = Field(None, ge=0, description="after this many days late the submission earns 0")

    @field_validator("due")
    @classmethod
    def _aware(cls, due: datetime) -> datetime:
        if due.tzinfo is None:
            raise ValueError("due needs a UTC offset (e.g. 2026-10-12T23:59:00+08:00); a bare time is ambiguous")
        return due


class RubricItem(Strict):
    """A manually graded item (e.g. the written report); scores come from the instructor's rubric CSV."""

    id: str = Field(pattern=CHECK_ID)
    name: str = Field(min_length=1)
    points: float = Field(gt=0)


HOOK = r"^[A-Za-z_][A-Za-z0-9_]*:[A-Za-z_][A-Za-z0-9_]*$"  # 'module:function' in the check folders
CODE_SUFFIXES = (".py", ".ipynb")
WEIGHTS_SUFFIXES = (".pth", ".pt")


class SimilaritySpec(Strict):
    """`[similarity]`: what `grader similarity` compares across a class. Nothing it finds changes a grade."""

    code: list[str] | None = Field(
        None, description="submitted code files to compare; default: every declared .py and .ipynb file"
    )
    weights: list[str] | None = Field(None, description="submitted weights to compare; default: every .pth and .pt")
    shared_weights: list[str] = Field(
        default_factory=list,
        description="checkpoints the assignment gives out (relative to its folder), e.g. pretrain_model.pth: "
        "models that all start from one are compared by what each changed",
    )
    predictions: str | None = Field(
        None,
        pattern=HOOK,
        description="'module:function' in the check folders returning the judge's test-set predictions for a "
        "submission folder; batch workers store them for the similarity step",
    )


class AssignmentSpec(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    title: str
    needs_gpu: bool = False
    datasets: list[DatasetName] = Field(default_factory=list)
    data_root: str | None = Field(None, description="default dataset root; CLI and env var take precedence")
    probes: str = Field("probes.py", description="contestant-side probe module, relative to the assignment")
    limits: Limits = Limits()
    files: list[FileSpec]
    checks: list[CheckSpec] = Field(min_length=1)
    rubric: list[RubricItem] = Field(default_factory=list, description="manual items, merged from a CSV")
    late: LatePolicy | None = None
    batch_prefetch: str | None = Field(
        None,
        pattern=HOOK,
        description="'module:function' in the check folders that evaluates many submissions' weights at once; "
        "batch grading calls it per worker before the checks, which then read its cache",
    )
    similarity: SimilaritySpec = SimilaritySpec()

    @field_validator("files")
    @classmethod
    def _unique_files(cls, files: list[FileSpec]) -> list[FileSpec]:
        names = [f.name for f in files]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"file names must be unique; repeated: {', '.join(dupes)}")
        return files

    @model_validator(mode="after")
    def _checks_consistent(self) -> AssignmentSpec:
        ids = [c.id for c in self.checks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"check ids must be unique; repeated: {', '.join(dupes)}")
        clash = sorted({r.id for r in self.rubric} & set(ids))
        if clash:
            raise ValueError(f"rubric ids must differ from check ids; both: {', '.join(clash)}")
        declared = {f.name for f in self.files}
        for check in self.checks:
            unknown = [name for name in check.files if name not in declared]
            if unknown:
                raise ValueError(f"check {check.id!r} reads {unknown}, which [[files]] does not declare")
        for what in ("code", "weights"):
            unknown = [n for n in getattr(self.similarity, what) or [] if n not in declared]
            if unknown:
                raise ValueError(f"similarity.{what} names {unknown}, which [[files]] does not declare")
        return self

    @property
    def code_files(self) -> list[str]:
        """The submitted code files the similarity step compares."""
        return self.similarity.code or [f.name for f in self.files if f.name.endswith(CODE_SUFFIXES)]

    @property
    def weights_files(self) -> list[str]:
        """The submitted weights the similarity step compares."""
        return self.similarity.weights or [f.name for f in self.files if f.name.endswith(WEIGHTS_SUFFIXES)]

    @property
    def max_score(self) -> float:
        """Points from the automatic checks (the rubric's are on top: `rubric_points`)."""
        return sum(c.points for c in self.checks)

    @property
    def rubric_points(self) -> float:
        return sum(r.points for r in self.rubric)

    def check(self, check_id: str) -> CheckSpec:
        return next(c for c in self.checks if c.id == check_id)


class SpecError(Exception):
    """assignment.toml is missing, unreadable or invalid. The message names the file and each bad field."""


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: {err.error_count()} invalid field(s)"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def parse_spec(path: Path) -> AssignmentSpec:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file; every assignment needs an assignment.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    try:
        return AssignmentSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(format_validation_error(str(path), exc)) from None


class Course(BaseModel):
    """The folders of one course: assignments (given to students), solutions (never given), examples."""

    root: Path

    @classmethod
    def locate(cls, explicit: Path | None = None) -> Course:
        """--course, then $GRADER_COURSE, then the nearest folder above cwd holding `assignments/`,
        then the checkout this package was installed from."""
        if explicit is not None:
            return cls(root=explicit.resolve())
        if env := os.environ.get("GRADER_COURSE"):
            return cls(root=Path(env).resolve())
        here = Path.cwd().resolve()
        for folder in (here, *here.parents):
            if (folder / "assignments").is_dir() and (folder / "solutions").is_dir():
                return cls(root=folder)
        return cls(root=Path(__file__).resolve().parent.parent)

    def assignment_dir(self, assignment_id: str) -> Path:
        return self.root / "assignments" / assignment_id

    def solution_dir(self, assignment_id: str) -> Path:
        return self.root / "solutions" / assignment_id

    def examples_dir(self, assignment_id: str) -> Path:
        return self.root / "examples" / assignment_id

    def assignment_ids(self) -> list[str]:
        base = self.root / "assignments"
        return sorted(p.name for p in base.iterdir() if (p / "assignment.toml").is_file()) if base.is_dir() else []

    def spec(self, assignment_id: str) -> AssignmentSpec:
        path = self.assignment_dir(assignment_id) / "assignment.toml"
        if not path.parent.is_dir():
            known = ", ".join(self.assignment_ids()) or "none"
            raise SpecError(f"unknown assignment {assignment_id!r} under {self.root}; known: {known}")
        spec = parse_spec(path)
        if spec.id != assignment_id:
            raise SpecError(f"{path}: id: is {spec.id!r} but the folder is named {assignment_id!r}")
        return spec
