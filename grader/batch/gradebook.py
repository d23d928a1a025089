"""The class as CSV: `gradebook.csv` (every score, for people and LMS imports) and Canvas's import format."""

from __future__ import annotations

import csv
import io
from collections import Counter
from typing import Literal

from grader.batch.late import fmt_number
from grader.batch.models import ClassRow
from grader.results import GradeResult
from grader.spec import AssignmentSpec, CheckSpec

# Spreadsheets run a cell starting with these as a formula (CSV injection); student-provided text is defused.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Which row speaks for a student who appears more than once: a graded one, else the most informative.
STATUS_RANK = {"graded": 0, "grader-error": 1, "crashed": 2, "missing": 3, "skipped-duplicate": 4}
CanvasKey = Literal["sis_user_id", "sis_login_id", "id"]
CANVAS_COLUMNS = {"id": "ID", "sis_user_id": "SIS User ID", "sis_login_id": "SIS Login ID"}


def safe_cell(text: str) -> str:
    """`text` as a spreadsheet shows it, never as a formula: a leading apostrophe where it could start one."""
    return "'" + text if text.startswith(FORMULA_START) else text


def num(x: float | None) -> str:
    return "" if x is None else fmt_number(x)


def one_per_student(rows: list[ClassRow]) -> list[ClassRow]:
    """One row per student id, sorted by id. Other rows of the same student are not dropped silently: the
    kept row's `problems` says what they were."""
    by_id: dict[str, list[ClassRow]] = {}
    for row in rows:
        by_id.setdefault(row.student.id, []).append(row)
    out = []
    for sid in sorted(by_id):
        group = sorted(
            by_id[sid], key=lambda r: (r.result is None, STATUS_RANK.get(r.status, len(STATUS_RANK)), r.source)
        )
        kept, others = group[0], group[1:]
        if others:
            notes = [f"also {r.status}: {r.source or 'a second row'} (not counted)" for r in others]
            kept = kept.model_copy(update={"problems": [*kept.problems, *notes]})
        out.append(kept)
    return out


def scored_checks(spec: AssignmentSpec, rows: list[ClassRow]) -> list[CheckSpec]:
    """The checks that carry points in this run, in spec order: those any result has, else the enabled ones.
    (A disabled check, or a GPU-only one graded on CPUs, is in no result and gets no column.)"""
    seen = {c.id for row in rows if row.result for c in row.result.checks}
    return [c for c in spec.checks if c.id in seen] if seen else [c for c in spec.checks if c.enabled]


def class_max_total(spec: AssignmentSpec, rows: list[ClassRow]) -> float:
    """The possible total: the results' max_total (the most common one), else enabled checks + rubric."""
    totals = Counter(row.result.max_total for row in rows if row.result)
    if totals:
        return max(totals.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return round(sum(c.points for c in spec.checks if c.enabled) + spec.rubric_points, 4)


def _write(header: list[str], body: list[list[str]]) -> str:
    out = io.StringIO()
    # QUOTE_MINIMAL quotes commas, quotes and newlines; "\n" keeps the bytes identical on every OS.
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue()


def _why_nothing(result: GradeResult | None) -> list[str]:
    """For a graded submission that earned nothing: its files' problems, else its first check's message (a 0 with
    an empty problems column reads as a grader fault)."""
    if result is None or result.score > 0 or not result.checks:
        return []
    if files := [f.problem for f in result.files if f.problem]:
        return files
    first = result.checks[0]
    return [f"{first.id}: {first.message.splitlines()[0][:160]}"] if first.message else []


def gradebook_csv(spec: AssignmentSpec, rows: list[ClassRow]) -> str:
    """gradebook.csv: a row per student (sorted by id) with each check's score, the points deducted for problems
    (import fallback, rules), the automatic score (checks less deductions), the rubric
    items, the late penalty, the total and the possible total. Missing students total 0; crashed ones, and
    those a broken check could not grade (grader-error), stay empty (see `problems`)."""
    checks = scored_checks(spec, rows)
    max_total = class_max_total(spec, rows)
    header = ["student_id", "name", "email", "status", *(c.id for c in checks), "deducted", "auto_score"]
    header += [*(r.id for r in spec.rubric), "late_days", "late_penalty", "total", "max_total", "problems"]
    body = []
    for row in one_per_student(rows):
        student = row.student
        line = [safe_cell(student.id), safe_cell(student.name), safe_cell(student.email), row.status]
        result = row.result
        if result is None:
            total = 0.0 if row.status == "missing" else None
            line += [""] * (len(checks) + 2 + len(spec.rubric) + 2) + [num(total)]
        else:
            scores = {c.id: c.score for c in result.checks}
            line += [num(scores.get(c.id)) for c in checks] + [num(result.deducted), num(result.score)]
            adj = result.adjustments
            rubric = {r.id: r.score for r in adj.rubric} if adj else {}
            line += [num(rubric.get(r.id)) for r in spec.rubric]
            late = adj.late if adj else None
            total = None if row.status == "grader-error" else result.total
            if late is not None and late.submitted_at is not None:
                line += [str(late.days_late), num(late.penalty), num(total)]
            else:
                line += ["", "", num(total)]
        said = [f"{p.id} (-{p.points:g})" for p in (result.problems if result else []) if p.points]
        line += [num(max_total), safe_cell("; ".join([*said, *_why_nothing(result), *row.problems]))]
        body.append(line)
    return _write(header, body)


def canvas_csv(spec: AssignmentSpec, rows: list[ClassRow], column_title: str, *, key: CanvasKey = "sis_user_id") -> str:
    """The class's totals in Canvas's gradebook import format (Grades > Import).

    Canvas's columns are `Student, ID, SIS User ID, SIS Login ID, Section`, then one per assignment, and a
    `Points Possible` row under the header. Canvas finds each student by ID, SIS User ID or SIS Login ID, so
    the student's id goes in the column `key` names (default SIS User ID); the other two stay empty, as does
    Section. What instructors must check:

    * `column_title`: the assignment column as Canvas's own export names it, e.g. `exp2 (12345)`, updates that
      assignment; any other title creates a new assignment on import.
    * `key`: the roster's ids must be what that Canvas column holds (compare with a Canvas gradebook export).
      Canvas's numeric user ids go in `ID`; university student numbers usually in `SIS User ID`; logins or
      emails in `SIS Login ID`.
    * Missing students get 0; crashed gradings and course errors stay empty, which leaves the Canvas grade
      unchanged.
    """
    if not column_title.strip():
        raise ValueError("column_title is empty; use the assignment's column as Canvas exports it, e.g. 'exp2 (123)'")
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", safe_cell(column_title.strip())]
    slot = header.index(CANVAS_COLUMNS[key])
    body = [["    Points Possible", "", "", "", "", num(class_max_total(spec, rows))]]
    for row in one_per_student(rows):
        line = [safe_cell(row.student.name or row.student.id), "", "", "", ""]
        line[slot] = safe_cell(row.student.id)
        if row.status == "grader-error":  # empty: Canvas keeps what it has until the course is fixed
            score: float | None = None
        elif row.result is not None:
            score = row.result.total
        else:
            score = 0.0 if row.status == "missing" else None
        body.append([*line, num(score)])
    return _write(header, body)

