"""Pydantic models of a grading run's results. `GradeResult` is what `results.json` holds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

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
    series: dict[str, list[float]] = Field(default_factory=dict, description="per-epoch values to plot")


class FileRecord(BaseModel):
    name: str
    present: bool
    size: int | None = None
    sha256: str | None = None
    problem: str | None = Field(None, description="why the file cannot be used, and what to do")


class Environment(BaseModel):
    grader_version: str
    python: str
    torch: str
    device: str
    platform: str
    sandbox: dict[str, str] = Field(default_factory=dict)


class GradeResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    assignment: str
    submission: str
    mode: Mode
    score: float
    max_score: float
    checks: list[CheckResult]
    files: list[FileRecord]
    started_at: datetime
    duration_s: float
    environment: Environment
    skipped: dict[str, str] = Field(default_factory=dict, description="check id -> why it was not run or scored")
    contestant_output: str = Field("", description="what the student's code printed, capped")
    timings: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.status == "passed" for c in self.checks)

    def visible_to_student(self) -> list[CheckResult]:
        return [c for c in self.checks if c.visibility == "visible"]


def schema() -> dict[str, Any]:
    return GradeResult.model_json_schema()


def load_result(path: Path) -> GradeResult:
    return GradeResult.model_validate(json.loads(path.read_text(encoding="utf-8")))
