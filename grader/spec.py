"""Pydantic models of `assignments/<id>/assignment.toml`, and where a course's folders live."""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Visibility = Literal["visible", "hidden", "after_due_date"]
# A dataset is named by the course (course.toml [datasets.<name>]) or built in (grader/datasets.py).
DatasetName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
CHECK_ID = r"^[a-z][a-z0-9_]*$"


class Strict(BaseModel):
    # A typo in assignment.toml must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileSpec(Strict):
    """A file the student submits."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="file name inside the submission folder")
    max_kb: int = Field(gt=0, description="largest accepted size in KiB")
    required: bool = True
    # A weights file over max_kb because it also holds optimizer state or per-epoch snapshots is still read,
    # up to this many times max_kb, and graded from the entries the checks need, with a note on how to save
    # only the weights. Beyond it the file is refused.
    oversize_factor: int = Field(8, ge=1, le=64, description="weights files: read up to this multiple of max_kb")
    # A .py file may be submitted as the notebook of the same name (softmax.ipynb for softmax.py): the contestant
    # imports its code cells as one module (grader.notebook). Notebooks carry outputs, hence their own limit.
    notebook: bool = Field(False, description=".py files: accept <name>.ipynb in its place")
    notebook_max_kb: int = Field(20480, gt=0, description="largest notebook in KiB, outputs included; up to 4x "
                                 "is still graded, with a note, when its code cells alone fit")

    @model_validator(mode="after")
    def _notebook_for_python(self) -> FileSpec:
        if self.notebook and not self.name.endswith(".py"):
            raise ValueError(f"notebook = true applies to .py files only, not {self.name!r}")
        return self


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
    functions: list[str] = Field(
        default_factory=list,
        description="the functions and classes of its .py files that it tests: a failure that has no line of "
        "the student's code to show (a wrong value, not an exception) points at their definitions",
    )
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


DEFAULT_PACKAGES = ["matplotlib", "numpy", "PIL", "torch", "torchvision", "tqdm"]


class Imports(Strict):
    """How the contestant imports the student's modules, and what those may import."""

    cpu_seconds: float = Field(
        20.0, gt=0, le=600, description="budget for importing each student module, in CPU seconds (load-independent)"
    )
    wall_seconds: float = Field(60.0, gt=0, le=1800, description="and in wall-clock seconds, for code that waits")
    # 5%: the module works once its top-level script code is left out; only the handout's instruction to keep
    # that code under `if __name__ == "__main__":` was missed, and a TA would take off a little for the fix.
    fallback_penalty: float = Field(
        0.05, ge=0, le=1, description="fraction of the automatic total lost when only the definitions could be imported"
    )
    packages: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PACKAGES),
        description="top-level packages student code may import besides Python's standard library",
    )


class Rule(Strict):
    """A rule the handout states about the submitted source, checked statically (the judge reads the text)."""

    id: str = Field(pattern=CHECK_ID)
    file: str = Field(description="the submitted .py file it applies to")
    functions: list[str] = Field(default_factory=list, description="where it applies; empty: the whole file")
    forbid: list[str] = Field(
        min_length=1,
        description="dotted names whose use breaks the rule (`torch.optim` covers `torch.optim.SGD`); a name "
        "starting with '.' is a method of anything (`.softmax` catches `x.softmax(1)`)",
    )
    allow: list[str] = Field(default_factory=list, description="dotted names under a forbidden one that stay allowed "
                             "(`torch.nn.functional.one_hot` under `torch.nn`)")
    points: float = Field(gt=0, description="deducted once if the rule is broken, wherever and however often")
    why: str = Field(min_length=1, description="the handout's reason, quoted in the message")


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
    total: float | None = Field(
        None, gt=0, description="the points the enabled checks that need no GPU add up to; refused when they do not"
    )
    needs_gpu: bool = False
    datasets: list[DatasetName] = Field(default_factory=list)
    data_root: str | None = Field(None, description="default dataset root; CLI and env var take precedence")
    probes: str = Field("probes.py", description="contestant-side probe module, relative to the assignment")
    limits: Limits = Limits()
    files: list[FileSpec]
    checks: list[CheckSpec] = Field(min_length=1)
    rubric: list[RubricItem] = Field(default_factory=list, description="manual items, merged from a CSV")
    late: LatePolicy | None = None
    imports: Imports = Imports()
    rules: list[Rule] = Field(default_factory=list)
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
        for rule in self.rules:
            if rule.file not in declared or not rule.file.endswith(".py"):
                raise ValueError(f"rule {rule.id!r} applies to {rule.file!r}, which is not a declared .py file")
        for check in self.checks:
            unknown = [name for name in check.files if name not in declared]
            if unknown:
                raise ValueError(f"check {check.id!r} reads {unknown}, which [[files]] does not declare")
            if check.functions and not any(name.endswith(".py") for name in check.files):
                raise ValueError(f"check {check.id!r} names functions {check.functions} but reads no .py file; "
                                 "add the file that defines them to its `files`")
        # Not a disabled check, nor a GPU-only one (exp2's optional re-run): each is extra, scored only where enabled
        # on a GPU grader; the total is what every grader awards.
        counted = [c for c in self.checks if c.enabled and not c.needs_gpu]
        points = sum(c.points for c in counted)
        if self.total is not None and abs(points - self.total) > 1e-9:
            listing = " + ".join(f"{c.points:g}" for c in counted)
            raise ValueError(f"the checks add up to {points:g} ({listing}), not the declared total {self.total:g}; "
                             "fix a check's points or the total")  # fmt: skip
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
    def modules(self) -> list[str]:
        """The student's Python modules, by import name (exp1.py -> exp1)."""
        return [f.name[:-3] for f in self.files if f.name.endswith(".py")]

    @property
    def rubric_points(self) -> float:
        return sum(r.points for r in self.rubric)

    def check(self, check_id: str) -> CheckSpec:
        return next(c for c in self.checks if c.id == check_id)


class SpecError(Exception):
    """assignment.toml is missing, unreadable or invalid. The message names the file and each bad field."""


def format_validation_error(source: str, err: ValidationError, data: Any = None) -> str:
    """One line per invalid field: where (a check by its id, when `data`, the parsed file, gives it), and what is
    wrong; an unknown field is asked about as a misspelling."""
    said = []
    for e in err.errors():
        loc = list(e["loc"])
        if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data, dict):
            items = data.get(str(loc[0]))
            item = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
            if isinstance(item, dict) and re.fullmatch(r"[a-z][a-z0-9_-]*", str(item.get("id"))):
                loc[1] = item["id"]  # checks.sgd_update, not checks.3
        where = ".".join(str(p) for p in loc)
        msg = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "not a field here (misspelt? the fields are listed in docs/authoring.md)"
        said.append(f"{where}: {msg}" if where else msg)
    if len(said) == 1:
        return f"{source}: {said[0]}"
    return "\n".join([f"{source}: {len(said)} invalid fields", *(f"  {line}" for line in said)])


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
        raise SpecError(format_validation_error(str(path), exc, raw)) from None


COURSE_FILE = "course.toml"


class DatasetReader(Strict):
    """A course's own dataset: a reader module in the course folder (see docs/authoring.md, "Datasets")."""

    reader: str = Field(description="path of the reader module, relative to the course root")
    description: str = ""


class CourseConfig(Strict):
    """course.toml: what the course folder is. Every field is optional; the file marks the course root."""

    name: str = "course"
    datasets: dict[str, DatasetReader] = Field(default_factory=dict)


class CourseNotFound(SpecError):
    """No course folder where the command looked."""


class Course(BaseModel):
    """The folders of one course: assignments (given to students), solutions (never given), examples."""

    root: Path

    @classmethod
    def locate(cls, explicit: Path | None = None) -> Course:
        """--course, then $GRADER_COURSE, then the nearest folder at or above cwd holding course.toml (or both
        assignments/ and solutions/). Nothing found is an error: run `grader init`."""
        if explicit is not None:
            root = explicit.resolve()
        elif env := os.environ.get("GRADER_COURSE"):
            root = Path(env).resolve()
        else:
            here = Path.cwd().resolve()
            found = next((f for f in (here, *here.parents) if cls.is_course(f)), None)
            if found is None:
                raise CourseNotFound(
                    f"no course at or above {here}: no {COURSE_FILE} (or assignments/ with solutions/) found.\n"
                    "Create one with `grader init COURSE` (add --samples exp1 for a worked example), then run "
                    "commands inside it, or pass --course / set GRADER_COURSE."
                )
            root = found
        # Named explicitly, assignments/ alone will do: the student edition of a course (the public checks) has
        # no solutions/.
        if not (cls.is_course(root) or (root / "assignments").is_dir()):
            raise CourseNotFound(f"{root} is not a course folder (no {COURSE_FILE} and no assignments/); "
                                 "create one with `grader init`")  # fmt: skip
        return cls(root=root)

    @staticmethod
    def is_course(folder: Path) -> bool:
        return (folder / COURSE_FILE).is_file() or (
            (folder / "assignments").is_dir() and (folder / "solutions").is_dir()
        )

    def config(self) -> CourseConfig:
        path = self.root / COURSE_FILE
        if not path.is_file():
            return CourseConfig()
        try:
            return CourseConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path}: not valid TOML: {exc}") from None
        except ValidationError as exc:
            raise SpecError(format_validation_error(str(path), exc)) from None

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
