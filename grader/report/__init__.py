"""Renderers: one module per output format. `write_reports` writes every file of a grading run."""

from __future__ import annotations

import json
from pathlib import Path

from grader.report.gradescope import to_gradescope
from grader.report.html import to_html
from grader.report.markdown import to_markdown
from grader.report.plots import line_chart, plot_groups
from grader.results import GradeResult, schema


def write_reports(result: GradeResult, out: Path) -> dict[str, Path]:
    """OUT/results.json (+ results.schema.json), OUT/gradescope/results.json, OUT/report.md and OUT/report.html
    (instructor, every check), OUT/report.student.md and OUT/report.student.html (visible checks only) and
    OUT/plots/<check>.svg for per-epoch series."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gradescope").mkdir(exist_ok=True)
    files = {
        "results": out / "results.json",
        "schema": out / "results.schema.json",
        "gradescope": out / "gradescope" / "results.json",
        "report": out / "report.md",
        "student_report": out / "report.student.md",
        "html": out / "report.html",
        "student_html": out / "report.student.html",
    }
    files["results"].write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    files["schema"].write_text(json.dumps(schema(), indent=2) + "\n", encoding="utf-8")
    files["gradescope"].write_text(json.dumps(to_gradescope(result), indent=2) + "\n", encoding="utf-8")
    files["report"].write_text(to_markdown(result, audience="instructor"), encoding="utf-8")
    files["student_report"].write_text(to_markdown(result, audience="student"), encoding="utf-8")
    files["html"].write_text(to_html(result, audience="instructor"), encoding="utf-8")
    files["student_html"].write_text(to_html(result, audience="student"), encoding="utf-8")
    for check in result.checks:
        # Loss and accuracy have different scales: one chart each (plots/<check>.svg, plots/<check>-loss.svg).
        for suffix, series, unit in plot_groups(check.series):
            path = out / "plots" / f"{check.id}{suffix}.svg"
            path.parent.mkdir(exist_ok=True)
            path.write_text(line_chart(series, check.name, unit), encoding="utf-8")
            files[f"plot:{check.id}{suffix}"] = path
    return files

