"""Pydantic models shared by batch grading's steps: who the students are and what each one got."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from grader.results import GradeResult


class Student(BaseModel):
    """A student, from the roster CSV or, without one, from a submission's folder or file name."""

    id: str = Field(min_length=1)
    name: str = ""
    email: str = ""
    aliases: list[str] = Field(default_factory=list, description="other keys exports use: LMS user id, SIS id")
    submitted_at: datetime | None = Field(None, description="from the roster's submitted_at column (the LMS's time)")


class Found(BaseModel):
    """One submission discovered in the input, before grading."""

    key: str = Field(description="the id the input gave it: a folder or zip name, a Gradescope sid, an LMS id")
    source: str = Field(description="where it came from, for messages: a path or 'export.zip:member/'")
    folder: Path = Field(description="the submission's files, unpacked")
    submitted_at: datetime | None = None
    submitted_at_source: str = ""
    name: str = ""
    email: str = ""


class ClassRow(BaseModel):
    """One student's line in the class outputs (gradebook.csv, summary.html, nbgrader)."""

    student: Student
    result: GradeResult | None = Field(None, description="None: no submission, or it could not be graded")
    status: str = Field(description="graded | grader-error | missing | crashed | skipped-duplicate")
    problems: list[str] = Field(default_factory=list, description="intake and roster problems for this student")
    source: str = ""
    duration_s: float = 0.0
