"""report.md: the PR-comment-sized Markdown report, for an instructor (every check) or a student."""

from __future__ import annotations

from typing import Literal

from grader.batch.late import message_without_points
from grader.report.plots import plot_groups, sparkline
from grader.results import MIXED, Adjustments, CheckResult, GradeResult, notices_title

MARK = {"passed": "✅", "partial": "🟡", "failed": "❌", "error": "⚠️"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _series_lines(c: CheckResult) -> list[str]:
    """Per-epoch values as a table with a sparkline, and a link to the SVG chart report/plots wrote."""
    if not c.series:
        return []
    n = max(len(v) for v in c.series.values())
    charts = [f"![{c.id}{suffix}](plots/{c.id}{suffix}.svg)" for suffix, _, _ in plot_groups(c.series)]
    lines = [" ".join(charts), "", "| | " + " | ".join(str(i + 1) for i in range(n)) + " | trend |",
             "|---|" + "---|" * (n + 1)]  # fmt: skip
    for name, vals in c.series.items():
        cells = [f"{v:.2f}" for v in vals] + [""] * (n - len(vals))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sparkline(vals)} |")
    return [*lines, ""]


def _adjustment_lines(adj: Adjustments, show_total: bool) -> list[str]:
    """The rubric items and the late penalty batch grading added, and the final total unless it is held back."""
    if not adj.rubric and adj.late is None:
        return []
    lines = ["## Total", ""]
    for r in adj.rubric:
        got = "not graded yet" if r.score is None else _fmt(r.score)
        lines.append(f"- {r.name}: {got} / {_fmt(r.max_score)}" + (f" ({r.comment})" if r.comment else ""))
    if adj.late is not None and adj.late.message:
        # The message's points (the penalty and what it was taken from) would give a held-back total away.
        lines.append(f"- late policy: {adj.late.message if show_total else message_without_points(adj.late)}")
    if show_total:
        lines.append(f"- **total: {_fmt(adj.total)} / {_fmt(adj.max_total)}**")
    return [*lines, ""]


def failures_by_cell(checks: list[CheckResult]) -> dict[tuple[str, int], list[str]]:
    """(notebook, cell) -> the ids of the checks that did not pass whose failure points into that cell."""
    out: dict[tuple[str, int], list[str]] = {}
    for c in checks:
        if c.status != "passed":
            for loc in c.pointers():
                if loc.cell:
                    out.setdefault((loc.file, loc.cell), []).append(c.id)
    return out


def _notebook_lines(result: GradeResult, shown: list[CheckResult]) -> list[str]:
    """Each submitted notebook's code cells as graded: ran, skipped, commented out; and which failures point where."""
    lines = []
    failures = failures_by_cell(shown)
    for f in result.files:
        if not f.cells:
            continue
        nb = f.found_as or f.name
        text = sum(c.kind != "code" for c in f.cells)
        lines += [f"## Notebook cells: `{nb}`", "", f"{text} markdown or raw cell(s) not run.", "",
                  "| cell | graded | detail | failed checks |", "|---|---|---|---|"]  # fmt: skip
        for c in f.cells:
            if c.kind == "code":
                failed = ", ".join(f"`{i}`" for i in failures.get((nb.rsplit("/", 1)[-1], c.cell), []))
                lines.append(f"| {c.cell} | {c.label()} | {_cell(c.detail)} | {failed} |")
        lines.append("")
    return lines


def to_markdown(result: GradeResult, audience: Literal["instructor", "student"] = "instructor") -> str:
    shown: list[CheckResult] = result.checks if audience == "instructor" else result.visible_to_student()
    held = [c for c in result.checks if c not in shown]
    score = result.shown_score(shown)
    top = sum(c.max_score for c in shown)
    lines = [f"# {result.assignment}: {_fmt(score)} / {_fmt(top)}", ""]
    if held:
        lines += [
            f"{len(held)} more check(s) worth {_fmt(sum(c.max_score for c in held))} points are graded later.",
            "",
        ]
    notices = result.notices()
    if notices:
        title = notices_title(notices)
        lines += [f"**{title}**", ""]
        for n in notices:
            note = "Note: " if n.note and title == MIXED else ""
            lines.append(f"- {note}{f'(−{_fmt(n.points)} points) ' if n.points else ''}{n.text}")
            lines += [f"  - {d}" for d in n.details]
        lines.append("")
    lines += ["| | check | points | result |", "|---|---|---|---|"]
    for c in shown:
        vis = "" if c.visibility == "visible" or audience == "student" else f" *({c.visibility})*"
        lines.append(
            f"| {MARK[c.status]} | {_cell(c.name)}{vis} | {_fmt(c.score)} / {_fmt(c.max_score)} | {_cell(c.status)} |"
        )
    details = [c for c in shown if c.message or c.notes or c.series]
    if details:
        lines += ["", "## Details", ""]
        for c in details:
            lines.append(f"**{c.name}** (`{c.id}`): {c.status}")
            lines.append("")
            if c.message:
                lines += ["```text", c.message, "```"]
            if (pointers := c.pointers()) and pointers[0].defined:
                lines.append("tests " + ", ".join(f"`{loc.function}`, defined at `{loc.where()}`" for loc in pointers))
            elif pointers:
                loc = pointers[0]
                lines.append(f"at `{loc.where()}`" + (f", in `{loc.function}`" if loc.function else ""))
            lines += [f"- note: {n}" for n in c.notes] + [""]
            lines += _series_lines(c)
    lines += _notebook_lines(result, shown)
    if result.adjustments is not None:
        lines += _adjustment_lines(result.adjustments, show_total=not held)
    if audience == "instructor":
        env = result.environment
        lines += [
            "## Environment",
            "",
            f"grader {env.grader_version}, Python {env.python}, torch {env.torch}, device {env.device}, "
            f"{env.platform}; graded in {result.duration_s:.1f} s",
            "",
            "isolation: " + "; ".join(f"{k}: {v}" for k, v in env.sandbox.items()),
            "",
        ]
        if result.contestant_output.strip():
            lines += ["<details><summary>output of the student's code</summary>", "", "```text",
                      result.contestant_output.strip()[-4000:], "```", "</details>", ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"
