"""Generate what students get from the single source of truth in `solutions/<id>/`.

Each `### BEGIN SOLUTION[: hint]` ... `### END SOLUTION` region becomes

    # TODO: hint
    raise NotImplementedError

at the marker's indentation. `release()` writes the stub into `assignments/<id>/` and refreshes the two
examples that are derived from the solution (`examples/<id>/solution/` and `examples/<id>/stub/`), plus any
files `solutions/<id>/release_hook.py` generates (e.g. the reference state_dict's keys for public checks).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from grader.spec import Course

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION(?::\s*(?P<hint>.*?))?\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")


class ReleaseError(Exception):
    """Unbalanced or nested solution markers; the message names the file and line."""


def strip_solution(source: str, name: str = "<source>") -> str:
    out: list[str] = []
    open_at: int | None = None
    for n, line in enumerate(source.splitlines(keepends=True), start=1):
        begin = BEGIN.match(line)
        if begin:
            if open_at is not None:
                raise ReleaseError(f"{name} line {n}: BEGIN SOLUTION inside the region opened at line {open_at}")
            open_at = n
            indent, hint = begin["indent"], begin["hint"] or "your code here"
            out.append(f"{indent}# TODO: {hint}\n{indent}raise NotImplementedError\n")
        elif END.match(line):
            if open_at is None:
                raise ReleaseError(f"{name} line {n}: END SOLUTION without a BEGIN")
            open_at = None
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise ReleaseError(f"{name} line {open_at}: BEGIN SOLUTION is never closed")
    return "".join(out)


def solution_sources(course: Course, assignment_id: str) -> list[Path]:
    """Top-level Python files of the solution that carry markers."""
    folder = course.solution_dir(assignment_id)
    return sorted(p for p in folder.glob("*.py") if "### BEGIN SOLUTION" in p.read_text(encoding="utf-8"))


def _hook_files(course: Course, assignment_id: str) -> dict[Path, str]:
    """Extra generated files from `solutions/<id>/release_hook.py` (instructor code), if it exists."""
    hook = course.solution_dir(assignment_id) / "release_hook.py"
    if not hook.is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"release_hook_{assignment_id}", hook)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {course.root / rel: text for rel, text in module.generated_files().items()}


def planned_files(course: Course, assignment_id: str) -> dict[Path, str]:
    """Every file release writes, with its content."""
    plan: dict[Path, str] = _hook_files(course, assignment_id)
    examples = course.examples_dir(assignment_id)
    for src in solution_sources(course, assignment_id):
        text = src.read_text(encoding="utf-8")
        stub = strip_solution(text, str(src))
        plan[course.assignment_dir(assignment_id) / src.name] = stub
        plan[examples / "stub" / src.name] = stub
        plan[examples / "solution" / src.name] = text
    return plan


def release(course: Course, assignment_id: str, check: bool = False) -> list[Path]:
    """Write the generated files; with check=True write nothing and return those that are stale."""
    stale = []
    for path, content in planned_files(course, assignment_id).items():
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
    return stale
