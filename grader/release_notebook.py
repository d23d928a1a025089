"""`grader release ID --format ipynb`: the assignment as Jupyter notebooks, from the same solution file as the stub.

Two notebooks per solution file `solutions/<id>/<name>.py`:
- `assignments/<id>/<name>.ipynb`, the student's notebook: solution regions replaced as in the `.py` stub;
- `solutions/<id>/<name>.ipynb`, the nbgrader source notebook: the solution with its `### BEGIN SOLUTION` markers,
  which nbgrader's `generate_assignment` strips the same way.

Cells: the module docstring and the handout's "How your code is run" section are markdown; imports and constants
form one code cell, each function and class its own; the `if __name__ == "__main__":` block is the training cell,
tagged `training` (grader.notebook.TRAINING_TAG), so grading skips it. Each cell carries nbgrader's metadata
(schema 3): cells with a solution region are solution cells (`grade_id` = `def_` and the function or class they define);
the given code is locked, with nbgrader's checksum; each check is a locked grade cell whose `grade_id` is the
check id and whose points are the check's (the nbgrader gradebook export writes our scores to these cells);
each rubric item (a written question) is a locked markdown task cell (nbgrader's "manually graded task":
`grade_id` = the rubric id, its points) followed by a free markdown cell for the student's answer; the export
writes rubric scores to the task cells, so a gradebook that nbgrader's `generate_assignment` filled from these
notebooks takes the export as it is. The check cells hold only a comment: torch-grader grades them, not
nbgrader's autograder.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

from grader.notebook import TRAINING_TAG
from grader.release import grading_section, solution_sources, strip_solution
from grader.spec import AssignmentSpec, Course

NBGRADER_SCHEMA = 3
KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _segments(source: str) -> list[tuple[str, str, str]]:
    """(kind, name, text) per cell: kind is docstring, given, definition or training."""
    tree = ast.parse(source)
    lines = source.splitlines()
    out: list[tuple[str, str, str]] = []
    body = list(tree.body)
    prev_end = 0
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        out.append(("docstring", "", str(body[0].value.value).strip()))
        prev_end = body[0].end_lineno or 0
        body = body[1:]
    starts = [_start(node, lines) for node in body] + [len(lines)]
    given_from = None  # where the run of given statements (imports, constants) now growing into a cell began
    for i, node in enumerate(body):
        # from its first line (with the unindented comments right above it) to the next statement's: an
        # indented `### END SOLUTION` after a function's last statement stays with the function
        begin = max(starts[i], prev_end)
        text = "\n".join(lines[begin : starts[i + 1]]).strip("\n")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.append(("definition", node.name, text))
        elif isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            out.append(("training", "", _training(text, tree)))
        elif given_from is not None and out[-1][0] == "given":
            out[-1] = ("given", "", "\n".join(lines[given_from : starts[i + 1]]).strip("\n"))
            continue
        else:
            out.append(("given", "", text))
            given_from = begin
            continue
        given_from = None
    return out


def _start(node: ast.stmt, lines: list[str]) -> int:
    """The 0-based first line of a top-level statement: its decorators, and unindented comments just above."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))]) - 1
    while first > 0 and lines[first - 1].startswith("#"):
        first -= 1
    return first


def _training(text: str, tree: ast.Module) -> str:
    """The `__main__` block as a notebook cell: a `main(argv)` gets its arguments in the call (a kernel's own
    command line is not the student's)."""
    takes_args = any(isinstance(n, ast.FunctionDef) and n.name == "main" and n.args.args for n in tree.body)
    if takes_args:
        hint = '  # your command-line options as a list, e.g. main(["--data-root", "data"])'
        text = text.replace("main()", "main([])" + hint)
    return (f"# Training: run this cell yourself. Grading skips it (the cell is tagged `{TRAINING_TAG}`); keep the\n"
            "# tag on every cell that trains or experiments.\n" + text)  # fmt: skip


def checksum(cell: dict[str, Any]) -> str:
    """nbgrader's cell checksum (nbgrader.utils.compute_checksum): what its validator compares."""
    meta = cell["metadata"]["nbgrader"]
    m = hashlib.md5()  # noqa: S324 - nbgrader's own choice; not a security measure
    for part in (cell["source"], cell["cell_type"], str(meta["grade"]), str(meta["solution"]), str(meta["locked"]),
                 meta["grade_id"]):  # fmt: skip
        m.update(part.encode("utf-8"))
    if meta["grade"]:
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def _cell(kind: str, source: str, grade_id: str | None = None, *, solution: bool = False, locked: bool = False,
          grade: bool = False, task: bool = False, points: float | None = None,
          tags: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    cell: dict[str, Any] = {"cell_type": kind, "id": "", "metadata": {}, "source": source}
    if kind == "code":
        cell |= {"execution_count": None, "outputs": []}
    if tags:
        cell["metadata"]["tags"] = tags
    if grade_id is not None:
        meta: dict[str, Any] = {"schema_version": NBGRADER_SCHEMA, "grade": grade, "solution": solution,
                                "locked": locked, "task": task, "grade_id": grade_id}  # fmt: skip
        if points is not None:
            meta["points"] = points
        cell["metadata"]["nbgrader"] = meta
        if locked or grade or solution:  # as nbgrader's ComputeChecksums
            meta["checksum"] = checksum(cell)
    return cell


def notebook(spec: AssignmentSpec, source: str, name: str, *, solution: bool) -> dict[str, Any]:
    """The notebook of one solution file: the solution version (nbgrader's source) or the student's."""
    cells = []
    for n, (kind, fn, text) in enumerate(_segments(source), start=1):
        if kind == "docstring":
            title, _, rest = text.partition("\n")
            cells.append(_cell("markdown", f"# {title.strip()}\n\n{rest.strip()}".strip(), f"handout_{n}",
                               locked=True))  # fmt: skip
            guide = grading_section(spec).replace("## How your code is run", "## How your notebook is graded")
            cells.append(_cell("markdown", guide, "how_graded", locked=True))
        elif "### BEGIN SOLUTION" in text:
            cells.append(_cell("code", text if solution else strip_solution(text, name), f"def_{fn}", solution=True))
        elif kind == "training":
            cells.append(_cell("code", text, "training", tags=[TRAINING_TAG]))
        else:
            cells.append(_cell("code", text, f"def_{fn}" if fn else f"given_{n}", locked=True))
    cells.append(_cell("markdown", "## Checks\n\nEach check below is graded by torch-grader (`grader check "
                       f"{spec.id} .` runs the public ones); the cells only hold their names and points.",
                       "checks_header", locked=True))  # fmt: skip
    for c in spec.checks:
        if c.enabled:
            cells.append(_cell("code", f"# {c.id}: {c.name} ({c.points:g} points, {c.visibility.replace('_', ' ')})",
                               c.id, grade=True, locked=True, points=c.points))  # fmt: skip
    for r in spec.rubric:  # graded by hand, as the batch's rubric.csv; the student answers in the cell below
        cells.append(_cell("markdown", f"### {r.name} ({r.points:g} points)\n\nAnswer in the cell below.", r.id,
                           locked=True, task=True, points=r.points))  # fmt: skip
        cells.append(_cell("markdown", "YOUR ANSWER HERE"))  # free: nbgrader's generate_assignment copies it as is
    for i, cell in enumerate(cells):
        cell["id"] = f"{name.removesuffix('.py')}-{i:02d}"  # stable ids: regenerating changes nothing
    return {"cells": cells, "metadata": {"kernelspec": KERNEL, "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}  # fmt: skip


def dumps(nb: dict[str, Any]) -> str:
    """As Jupyter writes it (one-space indent, sorted keys, a final newline): a saved notebook diffs cleanly."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def planned_notebooks(course: Course, assignment_id: str) -> dict[Path, str]:
    """Every notebook `release --format ipynb` writes, with its content."""
    spec = course.spec(assignment_id)
    plan = {}
    for src in solution_sources(course, assignment_id):
        text = src.read_text(encoding="utf-8")
        stem = src.with_suffix(".ipynb").name
        plan[course.assignment_dir(assignment_id) / stem] = dumps(notebook(spec, text, src.name, solution=False))
        plan[course.solution_dir(assignment_id) / stem] = dumps(notebook(spec, text, src.name, solution=True))
    return plan
