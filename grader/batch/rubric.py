"""The instructors' rubric CSV: scores of the manually graded items (`[[rubric]]` in assignment.toml).

Format (what `grader rubric template` writes; a CSV has no room for comments, so it is documented here):

    student_id,report,report_comment
    s001,17.5,clear table; the trend is explained
    s002,,

* `student_id`: the id batch grading uses (roster id or submission folder name). One row per student.
* `<item id>`: the points for that `[[rubric]]` item, from 0 to its `points`, with a decimal point (`17.5`,
  not `17,5`). Empty: not graded yet; it counts as 0 in the total and reports show it as ungraded.
* `<item id>_comment`: optional feedback shown to the student.
* Optional `name` and `email` columns are ignored, so a sheet may carry them for the graders' convenience.

The file is UTF-8 (Excel's "CSV UTF-8" with its byte-order mark is fine), separated by commas. A problem in
one cell or row is reported with file, line and column; every other cell is still read.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from pydantic import BaseModel, Field

from grader.batch.models import Student
from grader.results import RubricScore
from grader.spec import AssignmentSpec, RubricItem

ID_COLUMN = "student_id"
INFO_COLUMNS = ("name", "email")
MAX_LISTED = 10  # ids listed in one message before "and N more"


class RubricSheet(BaseModel):
    """The rubric CSV, read: every known student's items in spec order, and what was wrong with the file."""

    scores: dict[str, list[RubricScore]] = Field(default_factory=dict, description="student id -> items")
    problems: list[str] = Field(default_factory=list, description="one line each: file, line, column, what to do")


def rubric_template(spec: AssignmentSpec, students: list[Student]) -> str:
    """The CSV to fill in: a row per student (sorted by id), a score and a comment column per rubric item."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = [ID_COLUMN]
    for item in spec.rubric:
        header += [item.id, f"{item.id}_comment"]
    writer.writerow(header)
    for sid in sorted({s.id for s in students}):
        writer.writerow([sid] + [""] * (len(header) - 1))
    return out.getvalue()


def _ungraded(spec: AssignmentSpec) -> list[RubricScore]:
    return [RubricScore(id=r.id, name=r.name, max_score=r.points) for r in spec.rubric]


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED])
    return shown + (f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


def _parse_score(text: str, points: float) -> tuple[float | None, str | None]:
    """(score, None) or (None, why it was refused and what to write instead)."""
    if text == "":
        return None, None
    if "," in text and text.replace(",", "", 1).replace("-", "", 1).isdigit():
        return None, f"{text!r} uses a decimal comma; write {text.replace(',', '.')!r} (a decimal point)"
    try:
        value = float(text)
    except ValueError:
        return None, f"{text!r} is not a number; write the points (e.g. 12.5) or leave the cell empty if ungraded"
    if not math.isfinite(value):
        return None, f"{text!r} is not a finite number; write the points, from 0 to {points:g}"
    if not 0 <= value <= points:
        return None, f"{text!r} is outside 0..{points:g}, the points of this item; write a score in that range"
    return round(value, 4), None


def read_rubric(path: Path, spec: AssignmentSpec, known_ids: set[str]) -> RubricSheet:
    """Read the rubric CSV at `path` for the students in `known_ids`. Never raises on bad content.

    Every known student gets every item; anything missing or unreadable stays `score=None` (not graded)
    and adds a line to `problems`.
    """
    scores = {sid: _ungraded(spec) for sid in sorted(known_ids)}
    problems: list[str] = []
    template = f"`grader rubric template {spec.id} > {path}`"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if spec.rubric:
            items = ", ".join(r.id for r in spec.rubric)
            problems.append(
                f"{path}: no rubric file, so the manual items ({items}) count as not graded (0). "
                f"Create it with {template}, fill in the scores and run again."
            )
        return RubricSheet(scores=scores, problems=problems)
    except OSError as exc:
        problems.append(f"{path}: cannot read the rubric file ({exc.strerror}); every manual item counts as 0")
        return RubricSheet(scores=scores, problems=problems)
    try:
        text = raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte-order mark
    except UnicodeDecodeError as exc:
        problems.append(
            f'{path}: not UTF-8 text (byte {exc.start}); save it as "CSV UTF-8 (Comma delimited)" '
            "(Excel) or with UTF-8 encoding, then run again. Every manual item counts as not graded."
        )
        return RubricSheet(scores=scores, problems=problems)
    _read_rows(path, text, spec, scores, problems)
    return RubricSheet(scores=scores, problems=problems)


def _read_rows(
    path: Path, text: str, spec: AssignmentSpec, scores: dict[str, list[RubricScore]], problems: list[str]
) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(f"{path}: line 1: not readable as CSV ({exc}); every manual item counts as not graded")
        return
    if header is None or not any(h.strip() for h in header):
        problems.append(f"{path}: the file is empty; it needs a header row starting with {ID_COLUMN}")
        return
    names = [h.strip().lower() for h in header]
    if ID_COLUMN not in names:
        if len(names) == 1 and ";" in names[0]:
            problems.append(
                f"{path}: line 1: columns are separated by ';' (Excel in a decimal-comma locale); save it as "
                "CSV UTF-8 with ',' separators and '.' decimals, then run again"
            )
        else:
            problems.append(
                f"{path}: line 1: no {ID_COLUMN!r} column (found: {', '.join(repr(h) for h in header)}); "
                f"add a {ID_COLUMN} column with the students' ids; {spec.id}'s template has the right header."
            )
        return
    items = {r.id: r for r in spec.rubric}
    expected = {ID_COLUMN, *INFO_COLUMNS, *items, *(f"{i}_comment" for i in items)}
    column: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in column:
            problems.append(f"{path}: line 1, column {index + 1}: {name!r} appears twice; only the first is read")
        elif name not in expected:
            known = ", ".join(sorted(items)) or "none"
            problems.append(
                f"{path}: line 1, column {index + 1}: unknown column {header[index].strip()!r}, ignored; the "
                f"rubric items of {spec.id} are: {known} (each with an optional <id>_comment column)"
            )
        else:
            column[name] = index
    for item_id in items:
        if item_id not in column:
            problems.append(
                f"{path}: line 1: no column {item_id!r}, so every student's {item_id} counts as not graded; "
                "add the column (and its scores)"
            )

    seen: dict[str, int] = {}
    start = 2
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # strict mode: a stray or unclosed quote is reported, never silently merged into the next rows
            if "unexpected end of data" in str(exc):
                problems.append(
                    f"{path}: line {start}: a quote opened here is never closed, so the rows from here to the end "
                    "are not read; close the quote (or remove it)"
                )
                break
            problems.append(f"{path}: line {start}: not readable as CSV ({exc}); this row is ignored, fix its quotes")
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1  # a quoted comment may span lines: report where a row starts
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        sid = cells[column[ID_COLUMN]] if column[ID_COLUMN] < len(cells) else ""
        where = f"{path}: line {line}"
        if not sid:
            problems.append(f"{where}: empty {ID_COLUMN}; this row is ignored, fill in the student's id")
            continue
        if sid in seen:
            problems.append(
                f"{where}: student {sid!r} again (first on line {seen[sid]}); this row is ignored, "
                "merge the two rows into one"
            )
            continue
        seen[sid] = line
        if sid not in scores:
            problems.append(
                f"{where}: unknown student id {sid!r}; this row is ignored. Fix the id (it must match the "
                "roster or the submission's name) or delete the row"
            )
            continue
        scores[sid] = [_read_item(where, cells, column, r, problems) for r in spec.rubric]
    absent = [sid for sid in scores if sid not in seen]
    if absent and spec.rubric:
        problems.append(
            f"{path}: no row for {len(absent)} student(s): {_listed(absent)}; their manual items count as not "
            "graded (add rows for them)"
        )


def _read_item(
    where: str, cells: list[str], column: dict[str, int], item: RubricItem, problems: list[str]
) -> RubricScore:
    def cell(name: str) -> str:
        index = column.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    score, why = _parse_score(cell(item.id), item.points)
    if why:
        problems.append(f"{where}, column {item.id!r}: {why}; until then it counts as not graded")
    return RubricScore(
        id=item.id, name=item.name, max_score=item.points, score=score, comment=cell(f"{item.id}_comment")
    )
