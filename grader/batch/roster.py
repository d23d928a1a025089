"""The roster CSV, and matching discovered submissions to students.

Roster columns (header names are case-insensitive; only the id column is required):
    id | student_id | sid        the id used in gradebook.csv and the output folders
    name | full_name            shown in reports
    email                       also matched against a Gradescope submitter's email
    aliases                     other ids an export may use (LMS user id, GitHub login), separated by ';'
    submitted_at                ISO 8601 time with offset, from the LMS; used by the late policy
Unknown or duplicate ids are reported and never stop the batch: an unknown submission is graded under the id its
input gave it; of two submissions for one student the newer is graded and the other is reported. "Newer" is decided
only by each submission's own time (Gradescope's metadata): the roster's submitted_at is one time per student, so
it cannot order two submissions; without such times the later in the input is graded and the instructor is told
to check. A key that leads to two students (an alias that is another student's id, an alias or email on two rows)
is reported with both lines: an id always means its own student, else the earlier row wins.
"""

from __future__ import annotations

import csv
import hashlib
import re
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

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
    lines: dict[str, int] = {}  # student id -> its row's line, for messages about keys two rows share
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
        lines[sid] = line
    for c in _index(list(students.values()))[1]:
        problems.append(f"{path}:{lines[c.loser.id]}: {c.kind} {c.key!r} of {c.loser.id!r} is also the "
                        f"{c.winner_kind} of {c.winner.id!r} (line {lines[c.winner.id]}), so a submission under "
                        f"{c.key!r} goes to {c.winner.id!r}; remove it from the row it does not belong to")  # fmt: skip
    return list(students.values()), problems


class Clash(NamedTuple):
    """A key two roster students share: `winner` gets the submissions under it."""

    key: str
    kind: str  # what `loser` lists it as: id, alias or email
    loser: Student
    winner: Student
    winner_kind: str


def _index(roster: list[Student]) -> tuple[dict[str, Student], list[Clash]]:
    """Each key a submission may carry (id, alias, lowercased email) -> its student, and the keys two students
    share. Ids come first, so a student's own id is never taken by another's alias; between two aliases or
    emails the earlier row wins."""
    index: dict[str, tuple[Student, str]] = {}
    clashes: list[Clash] = []
    for kind in ("id", "alias", "email"):
        for s in roster:
            keys = [s.id] if kind == "id" else s.aliases if kind == "alias" else [s.email.lower()]
            for key in dict.fromkeys(k for k in keys if k):
                if key not in index:
                    index[key] = (s, kind)
                elif index[key][0].id != s.id:
                    clashes.append(Clash(key, kind, s, *index[key]))
    return {k: v[0] for k, v in index.items()}, clashes


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
    index = _index(roster or [])[0]
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
        by_student.setdefault(student.id, []).append(Matched(student=student, found=f))
    for sid, items in sorted(by_student.items()):
        at, why = _newest(items)
        kept = items[at]
        # The instructor's LMS time wins over an export's. It is the student's one time, so it is applied only
        # now, to the submission graded: copied to all of them it would make them look equally new.
        if kept.student.submitted_at is not None:
            found_at = {"submitted_at": kept.student.submitted_at, "submitted_at_source": "roster CSV"}
            kept = kept.model_copy(update={"found": kept.found.model_copy(update=found_at)})
        out.graded.append(kept)
        for older in items[:at] + items[at + 1 :]:
            out.duplicates.append(older)
            keys = ""
            if older.found.key != kept.found.key:  # e.g. a Canvas user id and a login, both aliases of one row
                keys = (f" ({older.found.key!r} and {kept.found.key!r} both lead to {sid!r}; if they are two "
                        "students, fix the roster's ids and aliases)")  # fmt: skip
            out.problems.append(f"{older.found.source}: another submission of {sid!r} ({kept.found.source}) "
                                f"{why}; this one is not graded{keys}")  # fmt: skip
    taken = set(by_student)
    out.missing = [s for s in roster or [] if s.id not in taken]
    return out


def _newest(items: list[Matched]) -> tuple[int, str]:
    """Which of one student's submissions to grade (its index), and why, for the message about the others. Only
    each submission's own time decides; with times missing or equal the last in input order is graded, and the
    message asks the instructor to check rather than pretend one is newer."""
    # a time without a UTC offset cannot be compared with one that has it: unknown, like no time
    times = [t if t and t.tzinfo else None for t in (m.found.submitted_at for m in items)]
    if all(times):
        latest = max(t for t in times if t)
        if times.count(latest) == 1:
            return times.index(latest), "is newer"
        reason = f"they carry the same time, {latest.isoformat()}"
    elif any(times):
        reason = "only some of them carry their own submission time"
    else:
        reason = "none of them carries its own submission time"
        if items[0].student.submitted_at is not None:
            reason += ", and the roster's submitted_at is one time per student, which cannot order them"
    return len(items) - 1, (f"comes later in the input and is graded, but which is newer is unknown ({reason}): "
                            "check which one the student meant, and remove the other from the input")  # fmt: skip
