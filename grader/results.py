"""Pydantic models of a grading run's results. `GradeResult` is what `results.json` holds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from grader.spec import Visibility

SCHEMA_VERSION = 1
Status = Literal["passed", "partial", "failed", "error"]
Mode = Literal["check", "grade"]


class Location(BaseModel):
    """Where in the student's files a failure happened, when known."""

    file: str
    line: int
    function: str = ""
    cell: int | None = Field(None, description="in a notebook: the cell (from 1, counting every cell); line is in it")
    defined: bool = Field(False, description="the definition of a function the check tests, not a line that ran: "
                          "the check found a wrong value, not an exception")

    def where(self) -> str:
        """`exp1.py line 24`, or `exp1.ipynb cell 7, line 3`."""
        return f"{self.file} cell {self.cell}, line {self.line}" if self.cell else f"{self.file} line {self.line}"


class Confusion(BaseModel):
    """A classifier's confusion matrix: matrix[true][predicted] counts."""

    labels: list[str]
    matrix: list[list[int]]


class CheckResult(BaseModel):
    id: str
    name: str
    max_score: float
    score: float = Field(ge=0)
    status: Status = Field(description="passed: full marks; partial: some; failed: none; error: a grader bug")
    message: str = Field("", description="what was expected and what was got")
    notes: list[str] = Field(default_factory=list, description="remarks that do not change the score")
    visibility: Visibility
    tags: list[str] = Field(default_factory=list)
    duration_s: float = 0.0
    locations: list[Location] = Field(default_factory=list)
    series: dict[str, list[float]] = Field(
        default_factory=dict, description="per-epoch values to plot; names containing 'loss' are drawn as loss curves"
    )
    confusion: Confusion | None = None
    measured: dict[str, float] = Field(
        default_factory=dict, description="values the judge measured for this check's threshold, e.g. accuracy_percent"
    )

    def pointers(self) -> list[Location]:
        """Where the reports send the student: the innermost frame of a failure in their code, or every
        definition a check that found a wrong value tests."""
        return self.locations if self.locations and self.locations[-1].defined else self.locations[-1:]


class NotebookCell(BaseModel):
    """One cell of a submitted notebook, as graded (grader.notebook)."""

    cell: int
    kind: str = Field(description="code, markdown or raw")
    status: str = Field(description="run, commented (ran with magics commented out), skipped (tagged training, or "
                        "reads what only skipped cells make), "
                        "syntax_error (left out), empty, text; after a definitions-only import partly_run, after a "
                        "failed one not_run")
    detail: str = ""

    def label(self) -> str:
        """The status as the reports show it."""
        return "ran, magics commented out" if self.status == "commented" else self.status.replace("_", " ")


class FileRecord(BaseModel):
    name: str
    present: bool
    size: int | None = None
    sha256: str | None = None
    problem: str | None = Field(None, description="why the file cannot be used, and what to do")
    found_as: str | None = Field(None, description="where it was found, when not at the top under its name")
    note: str | None = Field(None, description="a remark that costs nothing (e.g. how it was found)")
    cells: list[NotebookCell] = Field(default_factory=list, description="a notebook standing in for a .py file: "
                                      "what grading did with each cell")


class Problem(BaseModel):
    """One slip in a submission, said once, with what happened, where, and how to fix it. `points` come off
    the checks' total (0: the checks that needed the thing already lost theirs)."""

    id: str = Field(description="import:<module>, rule:<rule id>, packages:<module>")
    message: str
    points: float = Field(0.0, ge=0)
    locations: list[Location] = Field(default_factory=list)
    details: list[str] = Field(default_factory=list, description="e.g. what a definitions-only import left out")


class Environment(BaseModel):
    grader_version: str
    python: str
    torch: str
    device: str
    platform: str
    sandbox: dict[str, str] = Field(default_factory=dict)


class RubricScore(BaseModel):
    id: str
    name: str
    max_score: float
    score: float | None = Field(None, description="None: not graded yet (counts as 0 in the total)")
    comment: str = ""


class Lateness(BaseModel):
    submitted_at: datetime | None
    submitted_at_source: str = Field("", description="where the time came from, e.g. 'Gradescope metadata'")
    due: datetime
    days_late: int = Field(0, ge=0, description="started days past the due date and its grace period")
    penalty_fraction: float = Field(0.0, ge=0, le=1)
    penalty: float = Field(0.0, ge=0, description="points taken off the total")
    message: str = ""


class Adjustments(BaseModel):
    """What batch grading adds to the automatic score: manual rubric items and the late penalty."""

    rubric: list[RubricScore] = Field(default_factory=list)
    late: Lateness | None = None
    total: float = Field(description="automatic score + rubric - late penalty")
    max_total: float


class Notice(NamedTuple):
    text: str
    points: float = 0.0  # deducted
    details: list[str] = []
    note: bool = False  # a remark that costs nothing (how a file was found or read), not a problem

    @property
    def label(self) -> str:
        """'note', 'problem', or 'problem (−5 points)'."""
        return "note" if self.note else f"problem (−{self.points:g} points)" if self.points else "problem"

    def line(self) -> str:
        """The notice as one line of plain text."""
        return ("Note: " if self.note else "") + self.text + (f" (−{self.points:g} points)" if self.points else "")


MIXED = "Problems and notes"


def notices_title(notices: list[Notice]) -> str:
    """The heading over a list of notices: Problems, Notes, or Problems and notes (where each note says so)."""
    kinds = {n.note for n in notices}
    return MIXED if len(kinds) == 2 else "Notes" if kinds == {True} else "Problems"


class GradeResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    assignment: str
    submission: str
    mode: Mode
    score: float
    max_score: float
    checks: list[CheckResult]
    files: list[FileRecord]
    problems: list[Problem] = Field(default_factory=list, description="slips said once, with their deductions")
    started_at: datetime
    duration_s: float
    environment: Environment
    skipped: dict[str, str] = Field(default_factory=dict, description="check id -> why it was not run or scored")
    contestant_output: str = Field("", description="what the student's code printed, capped")
    timings: dict[str, Any] = Field(default_factory=dict)
    student: str | None = Field(None, description="student id, in batch grading")
    adjustments: Adjustments | None = None

    @property
    def total(self) -> float:
        """The final score: with rubric and late penalty where batch grading applied them."""
        return self.adjustments.total if self.adjustments else self.score

    @property
    def max_total(self) -> float:
        return self.adjustments.max_total if self.adjustments else self.max_score

    @property
    def passed(self) -> bool:
        return all(c.status == "passed" for c in self.checks)

    @property
    def deducted(self) -> float:
        return sum(p.points for p in self.problems)

    def shown_score(self, shown: list[CheckResult]) -> float:
        """The points of the checks shown, less the problems' deductions (which apply to any view)."""
        return max(0.0, round(sum(c.score for c in shown) - self.deducted, 4))

    def notices(self) -> list[Notice]:
        """What to tell the student before the checks: unusable files, notes on how files were found, then each
        problem with the points it cost."""
        out = [Notice(f.problem) for f in self.files if f.problem]
        out += [Notice(f.note, note=True) for f in self.files if f.note and not f.problem]
        return out + [Notice(p.message, p.points, p.details) for p in self.problems]

    def visible_to_student(self) -> list[CheckResult]:
        return [c for c in self.checks if c.visibility == "visible"]


def schema() -> dict[str, Any]:
    return GradeResult.model_json_schema()


def load_result(path: Path) -> GradeResult:
    return GradeResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
