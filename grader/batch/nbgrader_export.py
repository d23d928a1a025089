"""Export batch results into an nbgrader gradebook, so courses using nbgrader's formgrader see the scores.

The assignment gets one notebook, named after the assignment, with a grade cell per scored check (code cells,
autograded) and a task cell per rubric item (markdown, graded by hand), as in the notebooks `grader release
--format ipynb` writes. A rubric item that the gradebook already has as a markdown grade cell (a course whose
source notebook asks it as a "manually graded answer") keeps that cell. Re-exporting updates in place. Scores an
instructor typed in the formgrader are kept: nbgrader lets a manual score override the automatic one, and an
empty rubric cell in our CSV never erases a manual score already there.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from grader.batch.gradebook import one_per_student, scored_checks
from grader.batch.models import ClassRow, Student
from grader.results import GradeResult
from grader.spec import AssignmentSpec

if TYPE_CHECKING:
    from nbgrader.api import Gradebook

INSTALL_HINT = "pip install 'torch-grader[nbgrader]'"


class NbgraderError(RuntimeError):
    """nbgrader is not installed, or its database cannot be opened or written. The message says what to do."""


class NbgraderExport(BaseModel):
    """What an export wrote."""

    db_url: str
    assignment: str
    notebook: str
    students: int = Field(description="students added or updated")
    submissions: int = Field(description="graded submissions written")
    ungraded_rubric: int = Field(0, description="rubric grades left for a human (no score yet)")
    problems: list[str] = Field(default_factory=list)


def split_name(name: str) -> tuple[str, str]:
    """(first, last) for nbgrader's columns: the last word is the last name; one word is a first name."""
    parts = name.split()
    if len(parts) < 2:
        return (parts[0] if parts else "", "")
    return " ".join(parts[:-1]), parts[-1]


def utc_naive(t: datetime | None) -> datetime | None:
    """nbgrader stores naive UTC times."""
    if t is None:
        return None
    if t.tzinfo is None:
        return t
    return t.astimezone(timezone.utc).replace(tzinfo=None)


@contextmanager
def _alembic_on_path() -> Iterator[None]:
    # A new nbgrader database runs the `alembic` command, found on PATH; when this interpreter's venv is not
    # activated (e.g. `.venv/bin/grader`), its scripts folder is not on PATH and creating the database fails.
    scripts = sysconfig.get_path("scripts")
    if shutil.which("alembic") or not scripts or not (Path(scripts) / "alembic").exists():
        yield
        return
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = scripts + os.pathsep + old
    try:
        yield
    finally:
        os.environ["PATH"] = old


def open_gradebook(db_url: str, course_id: str = "default_course") -> Gradebook:
    """nbgrader's Gradebook at `db_url`, created if new; NbgraderError with what to do when that fails."""
    try:
        from nbgrader.api import Gradebook
    except ImportError as exc:
        raise NbgraderError(f"exporting to nbgrader needs the nbgrader package ({exc}); run: {INSTALL_HINT}") from None
    try:
        with _alembic_on_path():
            return Gradebook(db_url, course_id=course_id)
    except Exception as exc:  # sqlalchemy's and nbgrader's errors have no common base worth naming
        raise NbgraderError(
            f"cannot open the nbgrader database {db_url}: {type(exc).__name__}: {exc}. "
            "Check the URL (e.g. sqlite:////abs/path/gradebook.db) and that its folder exists and is writable."
        ) from None


def export_to_nbgrader(
    spec: AssignmentSpec,
    rows: list[ClassRow],
    db_url: str,
    assignment_name: str | None = None,
    *,
    course_id: str = "default_course",
) -> NbgraderExport:
    """Write the class into the nbgrader gradebook at `db_url` (e.g. `sqlite:///gradebook.db`).

    Every student is added (or updated); each graded one gets a submission whose grades are the checks'
    scores (auto_score) and the rubric's (manual_score; None stays ungraded), with the late penalty and the
    problems' deductions on the submitted notebook and the submission time as its timestamp. Missing and crashed
    students get no submission, nor do those with a check that failed on the grader's side. Idempotent: running
    it again updates the same rows.
    """
    name = assignment_name or spec.id
    gb = open_gradebook(db_url, course_id)
    try:
        return _export(gb, spec, rows, db_url, name)
    except NbgraderError:
        raise
    except Exception as exc:
        gb.db.rollback()
        raise NbgraderError(f"writing to the nbgrader database {db_url} failed: {type(exc).__name__}: {exc}") from None
    finally:
        gb.close()


def _export(gb: Gradebook, spec: AssignmentSpec, rows: list[ClassRow], db_url: str, name: str) -> NbgraderExport:
    from nbgrader.api import Grade, MissingEntry

    problems: list[str] = []
    notebook = name
    checks = scored_checks(spec, rows)
    due = utc_naive(spec.late.due) if spec.late else None
    gb.update_or_create_assignment(name, **({"duedate": due} if due else {}))
    nb = gb.update_or_create_notebook(notebook, name)
    cells = {}
    for check in checks:
        cells[check.id] = gb.update_or_create_grade_cell(
            check.id, notebook, name, max_score=check.points, cell_type="code"
        )
    answers = {c.name for c in nb.grade_cells if c.cell_type == "markdown"}
    for item in spec.rubric:
        make = gb.update_or_create_grade_cell if item.id in answers else gb.update_or_create_task_cell
        cells[item.id] = make(item.id, notebook, name, max_score=item.points, cell_type="markdown")
    stale = sorted(c.name for c in [*nb.grade_cells, *nb.task_cells] if c.name not in cells)
    if stale:
        problems.append(
            f"nbgrader notebook {name}/{notebook} has graded cells {', '.join(stale)} that {spec.id} no longer "
            "scores; they still count in nbgrader's totals. Remove them in nbgrader if they are obsolete."
        )

    kept = one_per_student(rows)
    submissions = ungraded = 0
    for row in kept:
        _student(gb, row.student)
        if row.result is None or row.status == "grader-error":
            try:
                gb.find_submission(name, row.student.id)
            except MissingEntry:
                continue
            problems.append(
                f"{row.student.id}: {row.status} now, but nbgrader holds a submission from an earlier export; "
                "it was left unchanged"
            )
            continue
        ungraded += _submission(gb, Grade, name, notebook, cells, row.student.id, row.result)
        submissions += 1
        if row.result.deducted:
            problems.append(f"{row.student.id}: nbgrader has no field for the {row.result.deducted:g} point(s) "
                            f"deducted for {', '.join(p.id for p in row.result.problems if p.points)}; they are "
                            "in its late-submission penalty, so that its total is gradebook.csv's")  # fmt: skip
    return NbgraderExport(
        db_url=db_url,
        assignment=name,
        notebook=notebook,
        students=len(kept),
        submissions=submissions,
        ungraded_rubric=ungraded,
        problems=problems,
    )


def _student(gb: Gradebook, student: Student) -> None:
    first, last = split_name(student.name)
    # Only fields we know: an empty one must not erase what the nbgrader course already has.
    fields: dict[str, Any] = {k: v for k, v in {"first_name": first, "last_name": last}.items() if v}
    if student.email:
        fields["email"] = student.email
    gb.update_or_create_student(student.id, **fields)


def _submission(
    gb: Gradebook, grade_cls: type, assignment: str, notebook: str, cells: dict, sid: str, result: GradeResult
) -> int:
    """Write one submission's grades; returns how many rubric grades still need a human."""
    adj = result.adjustments
    late = adj.late if adj else None
    stamp = utc_naive(late.submitted_at) if late else None
    with warnings.catch_warnings():
        # nbgrader 0.9 builds a new submission's rows before adding them to the session, which SQLAlchemy 2
        # warns about on autoflush; the rows are saved all the same when nbgrader adds the submission.
        warnings.filterwarnings("ignore", message=".*not in session, add operation along", category=Warning)
        sub = gb.update_or_create_submission(assignment, sid, **({"timestamp": stamp} if stamp else {}))
    snb = next(n for n in sub.notebooks if n.name == notebook)
    grades = {g.cell_id: g for g in snb.grades}
    with gb.db.no_autoflush:
        for cell in cells.values():
            if cell.id not in grades:  # a cell added after this submission was first exported
                grades[cell.id] = grade_cls(cell_id=cell.id, notebook=snb)
                gb.db.add(grades[cell.id])  # SQLAlchemy 2 no longer cascades a backref assignment into the session
    scores = {c.id: c.score for c in result.checks}
    rubric = {r.id: r.score for r in adj.rubric} if adj else {}
    ungraded = 0
    for cell_id, cell in cells.items():
        grade = grades[cell.id]
        if cell.cell_type == "code":
            grade.auto_score = scores.get(cell_id, 0.0)
            grade.needs_manual_grade = False
        else:
            score = rubric.get(cell_id)
            if score is not None:
                grade.manual_score = score
            grade.auto_score = None
            grade.needs_manual_grade = grade.manual_score is None
            ungraded += grade.manual_score is None
    # nbgrader's total is its scores less this penalty: the deductions (import fallback, rules) go in it too
    penalty = (late.penalty if late else 0.0) + result.deducted
    snb.late_submission_penalty = penalty if penalty > 0 else None
    gb.db.commit()
    return ungraded
