"""Failed checks as annotations: GitHub workflow commands (`::error file=..,line=..::`) and check-run annotations.

A check result knows where in the student's files it failed (`CheckResult.locations`, relative to the
submission folder, innermost frame last). GitHub wants paths relative to the repository root, so the
submission folder's place in the checkout is added in front.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel

from grader.results import CheckResult, GradeResult

Level = Literal["notice", "warning", "failure"]
COMMAND = {"notice": "notice", "warning": "warning", "failure": "error"}
MAX_COMMAND_MESSAGE = 2000  # the log line stays readable; the full message is in the report


def escape_data(text: str) -> str:
    """Escape a workflow command's message (GitHub's rules: % first, then CR and LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value: the message rules plus ':' and ','."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(name: str, message: str, **props: str | int | None) -> str:
    """`::name k=v,k=v::message`, with None-valued properties left out."""
    given = ",".join(f"{k}={escape_property(str(v))}" for k, v in props.items() if v is not None)
    return f"::{name}{' ' + given if given else ''}::{escape_data(message)}"


class Annotation(BaseModel):
    check_id: str
    level: Level
    title: str
    message: str
    path: str | None = None  # relative to the repository root, POSIX separators
    line: int | None = None

    def command(self) -> str:
        cut = len(self.message) > MAX_COMMAND_MESSAGE
        message = self.message[:MAX_COMMAND_MESSAGE] + "..." if cut else self.message
        return workflow_command(COMMAND[self.level], message, file=self.path, line=self.line, title=self.title)

    def check_run(self) -> dict[str, object]:
        """The check-run API's form; only for annotations with a path (the API requires one)."""
        assert self.path is not None and self.line is not None
        return {
            "path": self.path, "start_line": self.line, "end_line": self.line,
            "annotation_level": self.level, "title": self.title[:255], "message": self.message[:60000],
        }  # fmt: skip


def repo_path(file: str, submission_dir: Path, repo_root: Path | None) -> str | None:
    """`file` (relative to the submission folder) as a path relative to the repository root, or None when it
    is not a plain relative path inside the checkout (the location comes from the student's process)."""
    rel = PurePosixPath(file.replace("\\", "/"))
    if not file or rel.is_absolute() or ".." in rel.parts:
        return None
    if repo_root is None:
        return rel.as_posix()
    try:
        prefix = submission_dir.resolve().relative_to(repo_root.resolve())
    except ValueError:
        return None  # the submission is outside the checkout: GitHub could not place the annotation
    return (PurePosixPath(prefix.as_posix()) / rel).as_posix().removeprefix("./")


def for_check(c: CheckResult, submission_dir: Path, repo_root: Path | None) -> Annotation:
    level: Level = "warning" if c.status == "partial" else "failure"
    path = line = None
    if c.locations:  # the last frame is the student's own line; or the first function a wrong value came from
        loc = c.pointers()[0]
        path = repo_path(loc.file, submission_dir, repo_root)
        # a notebook's line is within a cell, not of the .ipynb's JSON: the message names the cell instead
        line = loc.line if path and loc.line >= 1 and not loc.cell else None
        path = path if line else None
    title = f"{c.name} ({c.score:g} / {c.max_score:g} points)"
    return Annotation(check_id=c.id, level=level, title=title, message=c.message or c.status, path=path, line=line)


def failed_checks(result: GradeResult, submission_dir: Path, repo_root: Path | None) -> list[Annotation]:
    """One annotation per visible check without full marks, in assignment.toml's order."""
    return [for_check(c, submission_dir, repo_root) for c in result.visible_to_student() if c.status != "passed"]
