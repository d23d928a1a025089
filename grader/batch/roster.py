"""The roster CSV, and matching discovered submissions to students.

Roster columns (header names are case-insensitive; only the id column is required):
    id | student_id | sid        the id used in gradebook.csv and the output folders
    name | full_name            shown in reports
    email                       also matched against a Gradescope submitter's email
    aliases                     other ids an export may use (LMS user id, GitHub login), separated by ';'
    submitted_at                ISO 8601 time with offset, from the LMS; used by the late policy
Unknown or duplicate ids are reported and never stop the batch: an unknown submission is graded under the id its
input gave it; of two submissions for one student the newer is graded and the other is reported.
"""

from __future__ import annotations

import csv
import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from grader.batch.models import Found, Student

ID_COLUMNS = ("id", "student_id", "sid")
SAFE_ID = re.compile(r"[^A-Za-z0-9._@-]")


class RosterError(Exception):
    """The roster file cannot be used at all (missing, no id column); the message says what to fix."""


class Matched(BaseModel):
    """A submission assigned to a student (or to its own id when the roster does not know it)."""

    student: Student
    found: Found


class Matching(BaseModel):
    graded: list[Matched] = Field(default_factory=list)
    duplicates: list[Matched] = Field(default_factory=list, description="older submissions of the same student")
    missing: list[Student] = Field(default_factory=list, description="roster students with no submission")
    problems: list[str] = Field(default_factory=list)


def read_roster(path: Path) -> tuple[list[Student], list[str]]:
    """Students in `path`, and problems with single rows (a duplicate or empty id), each naming its line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"{path}: cannot read the roster ({exc}); save it as UTF-8 CSV") from None
    reader = csv.DictReader(text.splitlines())
    columns = {(c or "").strip().lower(): c for c in reader.fieldnames or []}
    id_col = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    if id_col is None:
        raise RosterError(f"{path}: no id column; the header needs one of {', '.join(ID_COLUMNS)} "
                          f"(found: {', '.join(columns) or 'no header'})")  # fmt: skip
    name_col = columns.get("name") or columns.get("full_name")
    students: dict[str, Student] = {}
    problems = []
    for line, row in enumerate(reader, start=2):
        sid = (row.get(id_col) or "").strip()
        if not sid:
            problems.append(f"{path}:{line}: empty id; row ignored")
            continue
        if sid in students:
            problems.append(f"{path}:{line}: id {sid!r} repeats an earlier row; the first one is kept")
            continue
        when, problem = _time((row.get(columns.get("submitted_at", "")) or "").strip())
        if problem:
            problems.append(f"{path}:{line}: submitted_at {problem}; the late policy treats the time as unknown")
        aliases = [a.strip() for a in (row.get(columns.get("aliases", ""), "") or "").split(";") if a.strip()]
        students[sid] = Student(id=sid, name=(row.get(name_col) or "").strip() if name_col else "",
                                email=(row.get(columns.get("email", "")) or "").strip(), aliases=aliases,
                                submitted_at=when)  # fmt: skip
    return list(students.values()), problems


def _time(text: str) -> tuple[datetime | None, str | None]:
    if not text:
        return None, None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None, f"{text!r} is not an ISO 8601 time (e.g. 2026-10-11T23:40:00+08:00)"
    if when.tzinfo is None:
        return None, f"{text!r} has no UTC offset (e.g. +08:00), so it is ambiguous"
    return when, None


def folder_name(student_id: str) -> str:
    """A student id made safe as a folder name (ids are data from the outside). An id that had to change gets a
    hash suffix, so two ids never share a folder."""
    safe = SAFE_ID.sub("_", student_id)[:80]
    if safe == student_id and not safe.startswith("."):
        return safe
    return f"{safe.lstrip('.') or 'id'}-{hashlib.sha256(student_id.encode()).hexdigest()[:8]}"


def match(found: list[Found], roster: list[Student] | None) -> Matching:
    """Assign each submission to a roster student by id, alias or email; without a roster, by its own key."""
    out = Matching()
    index: dict[str, Student] = {}
    for s in roster or []:
        for key in (s.id, *s.aliases, s.email.lower()):
            if key:
                index.setdefault(key, s)
    by_student: dict[str, list[Matched]] = {}
    for f in found:
        student = index.get(f.key) or (index.get(f.email.lower()) if f.email else None)
        if student is None:
            student = Student(id=f.key, name=f.name, email=f.email)
            if roster is not None:
                out.problems.append(f"{f.source}: {f.key!r} is not on the roster; graded under that id "
                                    "(add it to the roster's aliases column to attach it to a student)")  # fmt: skip
        elif not student.name and f.name:
            student = student.model_copy(update={"name": f.name})
        if student.submitted_at is not None:  # the instructor's LMS time wins over an export's
            f = f.model_copy(update={"submitted_at": student.submitted_at, "submitted_at_source": "roster CSV"})
        by_student.setdefault(student.id, []).append(Matched(student=student, found=f))
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    for sid, items in sorted(by_student.items()):
        # The newest wins; without times, the last in input order (exports list resubmissions later).
        items.sort(key=lambda m: m.found.submitted_at or oldest)
        out.graded.append(items[-1])
        timed = all(m.found.submitted_at for m in items)
        for older in items[:-1]:
            out.duplicates.append(older)
            why = ("is newer" if timed else "comes later in the input (neither has a submission time to compare; "
                   "add submitted_at to the roster to decide by time)")  # fmt: skip
            out.problems.append(f"{older.found.source}: another submission of {sid!r} "
                                f"({items[-1].found.source}) {why}; this one is not graded")  # fmt: skip
    taken = set(by_student)
    out.missing = [s for s in roster or [] if s.id not in taken]
    return out
