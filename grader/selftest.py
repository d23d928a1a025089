"""`grader selftest`: grade every example of an assignment and compare with `examples/<id>/expected.toml`.

The manifest says, per example, which checks score other than full points (every check not listed earns its
full points) and, where problems deduct points, the final score. The repository's own end-to-end tests call
`run_example`, so the instructors' self-test and the tests cannot drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grader.grading import grade
from grader.results import GradeResult
from grader.spec import AssignmentSpec, Course, SpecError, format_validation_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST = "expected.toml"
TOLERANCE = 1e-6  # grades are deterministic; this only absorbs float rounding in partial credit


class Expected(BaseModel):
    """What one example must score."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("", description="why it scores so: what the example gets wrong")
    checks: dict[str, float] = Field(default_factory=dict, description="checks not at full points: their score")
    score: float | None = Field(None, description="the final score, where problems deduct points")


class Outcome(BaseModel):
    """One example graded and compared."""

    example: str
    score: float
    expected_score: float
    diffs: list[str]  # one line per disagreement; empty when it matched


def manifest_path(course: Course, assignment_id: str) -> Path:
    return course.examples_dir(assignment_id) / MANIFEST


def load_manifest(course: Course, spec: AssignmentSpec) -> dict[str, Expected]:
    path = manifest_path(course, spec.id)
    if not path.is_file():
        raise SpecError(f"{path}: no such file; write the score each example should get (see docs/authoring.md)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        manifest = {name: Expected.model_validate(body) for name, body in raw.items()}
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise SpecError(format_validation_error(str(path), exc)) from None
    except AttributeError:
        raise SpecError(f"{path}: each example must be a [table]") from None
    known = {c.id for c in spec.checks}
    for name, want in manifest.items():
        if unknown := sorted(set(want.checks) - known):
            raise SpecError(f"{path}: [{name}] checks: {', '.join(unknown)} not declared in assignment.toml")
        if not (course.examples_dir(spec.id) / name).is_dir():
            raise SpecError(f"{path}: [{name}]: no folder examples/{spec.id}/{name}")
    return manifest


def expected_scores(spec: AssignmentSpec, want: Expected) -> tuple[dict[str, float], float]:
    """Per-check scores and the final score the manifest entry stands for."""
    checks = {c.id: want.checks.get(c.id, c.points) for c in spec.checks if c.enabled}
    return checks, want.score if want.score is not None else sum(checks.values())


def compare(spec: AssignmentSpec, want: Expected, result: GradeResult) -> list[str]:
    checks, total = expected_scores(spec, want)
    got = {c.id: c for c in result.checks}
    diffs = []
    for cid, points in checks.items():
        if cid in result.skipped:
            continue  # e.g. a GPU check on a CPU grader: not scored here
        c = got.get(cid)
        if c is None:
            diffs.append(f"{cid}: expected {points:g}, did not run")
        elif abs(c.score - points) > TOLERANCE:
            diffs.append(f"{cid}: expected {points:g}, got {c.score:g} ({c.status}: {c.message})")
    if not diffs and abs(result.score - total) > TOLERANCE and not result.skipped:
        problems = "; ".join(f"{p.message} (-{p.points:g})" for p in result.problems) or "none"
        diffs.append(f"score: expected {total:g}, got {result.score:g} (problems: {problems})")
    return diffs


def run_example(course: Course, assignment_id: str, name: str, data_root: Path | None = None) -> Outcome:
    spec = course.spec(assignment_id)
    want = load_manifest(course, spec)[name]
    result = grade(course, assignment_id, course.examples_dir(assignment_id) / name, data_root=data_root)
    return Outcome(example=name, score=result.score, expected_score=expected_scores(spec, want)[1],
                   diffs=compare(spec, want, result))  # fmt: skip


def selftest(
    course: Course, assignment_id: str, data_root: Path | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:  # fmt: skip
    """Every example in the manifest, in name order; examples on disk but not in it are an error."""
    spec = course.spec(assignment_id)
    manifest = load_manifest(course, spec)
    on_disk = {p.name for p in course.examples_dir(assignment_id).iterdir() if p.is_dir()}
    if missing := sorted(on_disk - set(manifest)):
        raise SpecError(f"{manifest_path(course, assignment_id)}: no entry for example(s) {', '.join(missing)}; "
                        "add what each should score")  # fmt: skip
    outcomes = []
    for name in sorted(manifest):
        outcome = run_example(course, assignment_id, name, data_root)
        outcomes.append(outcome)
        if on_outcome:
            on_outcome(outcome)
    return outcomes
