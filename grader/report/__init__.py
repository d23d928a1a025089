"""Renderers: one module per output format. `write_reports` writes every file of a grading run."""

from __future__ import annotations

import json
from pathlib import Path

from grader.report.gradescope import to_gradescope
from grader.report.markdown import to_markdown
from grader.report.plots import line_chart
from grader.results import GradeResult, schema


def write_reports(result: GradeResult, out: Path) -> dict[str, Path]:
    """OUT/results.json (+ results.schema.json), OUT/gradescope/results.json, OUT/report.md (instructor,
    every check), OUT/report.student.md (visible checks only) and OUT/plots/<check>.svg for per-epoch series."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gradescope").mkdir(exist_ok=True)
    files = {
        "results": out / "results.json",
        "schema": out / "results.schema.json",
        "gradescope": out / "gradescope" / "results.json",
        "report": out / "report.md",
        "student_report": out / "report.student.md",
    }
    files["results"].write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    files["schema"].write_text(json.dumps(schema(), indent=2) + "\n", encoding="utf-8")
    files["gradescope"].write_text(json.dumps(to_gradescope(result), indent=2) + "\n", encoding="utf-8")
    files["report"].write_text(to_markdown(result, audience="instructor"), encoding="utf-8")
    files["student_report"].write_text(to_markdown(result, audience="student"), encoding="utf-8")
    for check in result.checks:
        if check.series:
            path = out / "plots" / f"{check.id}.svg"
            path.parent.mkdir(exist_ok=True)
            path.write_text(line_chart(check.series, check.name, "percent"), encoding="utf-8")
            files[f"plot:{check.id}"] = path
    return files
