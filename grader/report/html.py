"""report.html: one self-contained page per graded submission, for an instructor (every check, the student's
output, the grading machine) or a student (visible checks only).

Self-contained means inline CSS and inline SVG, no script and no external URL: the page opens from a zip, an
LMS attachment or an e-mail. Messages, notes, series names and output come from student code and are hostile:
every string goes through `e()`, and the Content-Security-Policy forbids scripts should one slip through."""

from __future__ import annotations

import html
import re
from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from grader.report.markdown import failures_by_cell
from grader.report.plots import confusion_svg, line_chart, split_loss
from grader.results import MIXED, Adjustments, CheckResult, GradeResult, Lateness, Location, notices_title

Audience = Literal["instructor", "student"]
OUTPUT_CHARS = 64_000  # the tail of the student's output kept in the page; results.json has all of it

# Status colours, also asserted on in the screenshot tests (tests/test_html_reports.py).
STATUS_COLORS = {"passed": "#1a7f37", "partial": "#bf8700", "failed": "#cf222e", "error": "#8250df"}

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { --line: #d0d7de; --muted: #57606a; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", "Liberation Sans", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 20px 24px 40px; }
header.top, section { background: white; border: 1px solid var(--line); border-radius: 8px; }
header.top { display: flex; justify-content: space-between; align-items: center; gap: 24px; padding: 18px 24px; }
header.top h1 { margin: 0 0 4px; font-size: 22px; }
.meta { color: var(--muted); margin: 2px 0; }
.score { text-align: right; min-width: 220px; }
.score .total { font-size: 38px; font-weight: 700; white-space: nowrap; }
.score .of { color: var(--muted); font-size: 22px; font-weight: 400; }
.meter { height: 10px; background: #eaeef2; border-radius: 5px; overflow: hidden; margin-top: 6px; }
.meter > span { display: block; height: 100%; }
section { margin-top: 16px; padding: 14px 24px 18px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 12px 0 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .03em; color: var(--muted); }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: 700; border-bottom: none; }
table.compact td { padding: 2px 8px; }
.badge { display: inline-block; min-width: 64px; text-align: center; padding: 2px 8px; border-radius: 12px;
  color: white; font-weight: 600; font-size: 12px; background: #6e7781; }
.tag { display: inline-block; padding: 0 6px; border: 1px solid var(--line); border-radius: 10px;
  color: var(--muted); font-size: 11px; margin-left: 6px; }
.id { color: var(--muted); font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.pending { color: #9a6700; font-style: italic; }
.penalty { color: #cf222e; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: var(--bg); border: 1px solid #eaeef2;
  border-radius: 6px; padding: 8px 10px; margin: 6px 0 2px; font-size: 12.5px; max-height: 26em; overflow: auto;
  font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
ul { margin: 4px 0; padding-left: 20px; }
.loc { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.note { color: var(--muted); }
section.problems { border-color: #cf222e; background: #fff5f5; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; max-width: 100%; overflow-x: auto; }
figcaption { color: var(--muted); font-size: 12px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.cols { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
details summary { cursor: pointer; font-weight: 600; }
footer { color: var(--muted); font-size: 12px; margin-top: 16px; text-align: center; }
"""
CSS += "".join(
    f".badge.{s} {{ background: {c}; }} tr.check.{s} td:first-child {{ box-shadow: inset 4px 0 0 {c}; }}\n"
    for s, c in STATUS_COLORS.items()
)


def e(value: object) -> str:
    """Escape for text and for quoted attributes alike."""
    return html.escape(str(value), quote=True)


def fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def when(dt: datetime | None) -> str:
    return dt.isoformat(sep=" ", timespec="minutes") if dt else "unknown"


def page(title: str, body: list[str], css: str = "") -> str:
    """The document around `body`: the one place that declares charset, CSP and styles (CSS + `css`)."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(title)}</title>",
            f"<style>{CSS}{css}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


def badge(status: str) -> str:
    """A coloured label; statuses without a colour of their own (missing, not graded yet) are grey."""
    return f'<span class="badge {re.sub(r"[^a-z0-9]+", "-", status.lower())}">{e(status)}</span>'


def meter(fraction: float) -> str:
    f = min(1.0, max(0.0, fraction))
    color = STATUS_COLORS["passed"] if f >= 0.8 else STATUS_COLORS["partial"] if f >= 0.5 else STATUS_COLORS["failed"]
    return f'<div class="meter"><span style="width: {f * 100:.1f}%; background: {color}"></span></div>'


def kv(pairs: list[tuple[str, str]]) -> str:
    """A definition list of already-escaped values."""
    return '<dl class="kv">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _headline(result: GradeResult, shown: list[CheckResult]) -> tuple[float, float, bool]:
    """(score, out of, whether it is the final total). A student who cannot see every check sees the sum of the
    visible ones: the total would reveal how the hidden checks went."""
    if len(shown) == len(result.checks):
        return result.total, result.max_total, True
    return result.shown_score(shown), sum(c.max_score for c in shown), False


def _late_text(late: Lateness, with_points: bool) -> str:
    """When it was submitted and what lateness cost; `with_points=False` (the total is held back) leaves out
    the points and the message that states them, which would give that total away."""
    if late.submitted_at is None:
        return e(late.message)  # the same words as report.md: no time, so no penalty, and how to supply one
    if late.days_late == 0:
        return f"on time: submitted {e(when(late.submitted_at))}, due {e(when(late.due))}"
    off = f"{late.penalty_fraction:.0%} off"
    parts = [
        f"submitted {e(when(late.submitted_at))}",
        f"due {e(when(late.due))}",
        f"{late.days_late} day(s) late: {off}" + (f" ({fmt(late.penalty)} points)" if with_points else ""),
    ]
    text = "; ".join(parts)
    if late.submitted_at_source:
        text += f'<br><span class="note">submission time from {e(late.submitted_at_source)}</span>'
    if late.message and with_points:
        text += f'<br><span class="note">{e(late.message)}</span>'
    return text


def _score_section(result: GradeResult, shown: list[CheckResult], final: bool) -> list[str]:
    """Automatic score, each rubric item and the late penalty, when batch grading added them."""
    adj: Adjustments | None = result.adjustments
    if adj is None:
        return []
    auto, auto_max = result.shown_score(shown), sum(c.max_score for c in shown)
    held = len(result.checks) - len(shown)
    rows = [
        "<tr><td>automatic checks"
        + (f' <span class="note">({held} more graded later)</span>' if held else "")
        + f'</td><td class="num">{fmt(auto)} / {fmt(auto_max)}</td><td></td></tr>'
    ]
    for r in adj.rubric:
        got = fmt(r.score) if r.score is not None else '<span class="pending">not graded yet</span>'
        got += f" / {fmt(r.max_score)}"
        rows.append(
            f'<tr><td>{e(r.name)} <span class="id">{e(r.id)}</span></td><td class="num">{got}</td>'
            f"<td>{e(r.comment)}</td></tr>"
        )
    if adj.late is not None:
        late = adj.late
        pts = f"−{fmt(late.penalty)}" if final else f"−{late.penalty_fraction:.0%}"
        cls = "num penalty" if late.days_late else "num"
        rows.append(f'<tr><td>late penalty</td><td class="{cls}">{pts}</td><td>{_late_text(late, final)}</td></tr>')
    if final:
        rows.append(f'<tr class="total"><td>total</td><td class="num">{fmt(adj.total)} / {fmt(adj.max_total)}</td>'
                    "<td></td></tr>")  # fmt: skip
    return [
        '<section id="score"><h2>Score</h2>',
        '<table><thead><tr><th>part</th><th class="num">points</th><th>comment</th></tr></thead><tbody>',
        *rows,
        "</tbody></table></section>",
    ]


def _location(loc: Location) -> str:
    """`softmax.ipynb cell 8, line 3 in net` (a link to the cell), or `accuracy, defined at softmax.py:82`."""
    at = f'<a href="#cell-{loc.cell}">{e(loc.where())}</a>' if loc.cell else f"{e(loc.file)}:{loc.line}"
    if loc.defined:
        return f"{e(loc.function)}, defined at {at}"
    return at + (f" in {e(loc.function)}" if loc.function else "")


def _check_row(c: CheckResult, audience: Audience, skipped: str | None) -> str:
    name = e(c.name)
    if audience == "instructor" and c.visibility != "visible":
        name += f'<span class="tag">{e(c.visibility)}</span>'
    details = []
    if c.message:
        details.append(f"<pre>{e(c.message)}</pre>")
    if c.locations:
        locs = "".join(f'<li class="loc">{_location(loc)}</li>' for loc in c.locations)
        what = "what this check tests" if c.locations[-1].defined else "in the submitted files (innermost last)"
        details.append(f'<div class="note">{what}:</div><ul>{locs}</ul>')
    if c.notes:
        details.append("<ul>" + "".join(f'<li class="note">{e(n)}</li>' for n in c.notes) + "</ul>")
    if skipped:
        details.append(f'<div class="note">not run: {e(skipped)}</div>')
    return (
        f'<tr class="check {e(c.status)}" id="check-{e(c.id)}"><td>{badge(c.status)}</td>'
        f'<td><strong>{name}</strong><div class="id">{e(c.id)}</div>{"".join(details)}</td>'
        f'<td class="num">{fmt(c.score)} / {fmt(c.max_score)}</td><td class="num">{c.duration_s:.2f} s</td></tr>'
    )


def _checks_section(result: GradeResult, shown: list[CheckResult], audience: Audience) -> list[str]:
    held = [c for c in result.checks if c not in shown]
    out = [
        '<section id="checks"><h2>Checks</h2>',
        '<table><thead><tr><th style="width: 90px">status</th><th>check</th><th class="num">points</th>'
        '<th class="num">time</th></tr></thead><tbody>',
        *(_check_row(c, audience, result.skipped.get(c.id)) for c in shown),
        "</tbody></table>",
    ]
    if held:
        pts = fmt(sum(c.max_score for c in held))
        out.append(f'<p class="note">{len(held)} more check(s) worth {pts} points are graded later.</p>')
    not_run = {k: v for k, v in result.skipped.items() if all(c.id != k for c in result.checks)}
    if not_run and audience == "instructor":  # skipped ids may be hidden checks: never in the student's page
        items = "".join(f'<li><span class="id">{e(k)}</span>: {e(v)}</li>' for k, v in not_run.items())
        out.append(f'<h3>Not run (not counted)</h3><ul class="note">{items}</ul>')
    return [*out, "</section>"]


def _y_label(names: list[str]) -> str:
    return "accuracy (%)" if all("acc" in n.lower() for n in names) else "value"


def _confusion_figure(c: CheckResult) -> str:
    cm = c.confusion
    assert cm is not None
    total = sum(sum(row) for row in cm.matrix)
    right = sum(row[i] for i, row in enumerate(cm.matrix) if i < len(row))
    acc = f": accuracy {right / total:.1%} of {total}" if total else ""
    chart = confusion_svg(cm.labels, cm.matrix, f"confusion matrix{acc}")
    caption = f"{e(c.name)}. Rows: true class; columns: predicted; shading: share of the row."
    return f'<figure class="chart confusion">{chart}<figcaption>{caption}</figcaption></figure>'


def _plots_section(shown: list[CheckResult]) -> list[str]:
    """Per check: the loss curve and the accuracy (or other) trend side by side; then the confusion matrices."""
    lines, matrices = [], []
    for c in shown:
        loss, other = split_loss(c.series)
        if loss:
            chart = line_chart(loss, "loss per epoch", "loss")
            lines.append(f'<figure class="chart loss">{chart}<figcaption>{e(c.name)}</figcaption></figure>')
        if other:
            label = _y_label(list(other))
            chart = line_chart(other, "accuracy per epoch" if label.startswith("acc") else "per epoch", label)
            lines.append(f'<figure class="chart trend">{chart}<figcaption>{e(c.name)}</figcaption></figure>')
        if c.confusion is not None:
            matrices.append(_confusion_figure(c))
    if not lines and not matrices:
        return []
    return ['<section id="plots"><h2>Training and evaluation</h2><div class="charts">', *lines, *matrices,
            "</div></section>"]  # fmt: skip


def _files_section(result: GradeResult) -> list[str]:
    rows = []
    for f in result.files:
        size = f"{f.size:,} B" if f.size is not None else ""
        state = e(f.problem) if f.problem else ("ok" if f.present else "missing")
        cls = ' class="penalty"' if f.problem or not f.present else ""
        rows.append(
            f'<tr><td class="loc">{e(f.name)}</td><td class="num">{size}</td>'
            f'<td class="id">{e((f.sha256 or "")[:12])}</td><td{cls}>{state}</td></tr>'
        )
    if not rows:
        return []
    return [
        '<section id="files"><h2>Submitted files</h2>',
        '<table><thead><tr><th>file</th><th class="num">size</th><th>sha256</th><th>state</th></tr></thead><tbody>',
        *rows,
        "</tbody></table></section>",
    ]


def _notebook_section(result: GradeResult, shown: list[CheckResult]) -> list[str]:
    """Each submitted notebook's code cells as graded, each row the target of the failed checks' links."""
    out = []
    failures = failures_by_cell(shown)
    for f in result.files:
        if not f.cells:
            continue
        nb = f.found_as or f.name
        rows = []
        for c in f.cells:
            if c.kind != "code":
                continue
            failed = " ".join(f'<a href="#check-{e(i)}">{e(i)}</a>' for i in failures.get((nb.rsplit("/", 1)[-1],
                                                                                            c.cell), []))  # fmt: skip
            cls = ' class="penalty"' if failed or c.status == "syntax_error" else ""
            rows.append(f'<tr id="cell-{c.cell}"><td class="num">{c.cell}</td><td{cls}>{e(c.label())}'
                        f'</td><td class="note">{e(c.detail)}</td><td>{failed}</td></tr>')  # fmt: skip
        out += [f'<section id="notebook"><h2>Notebook cells: <span class="loc">{e(nb)}</span></h2>',
                f'<p class="note">{sum(c.kind != "code" for c in f.cells)} markdown or raw cell(s) not run; cells '
                "are numbered from the top, markdown included.</p>",
                '<table><thead><tr><th class="num">cell</th><th>graded</th><th>detail</th><th>failed checks</th>'
                "</tr></thead><tbody>", *rows, "</tbody></table></section>"]  # fmt: skip
    return out


def _probe_rows(probes: Any) -> list[str]:
    """Probe calls aggregated by name, slowest first: one run makes hundreds of calls."""
    agg: dict[str, list[float]] = defaultdict(list)
    for call in probes if isinstance(probes, list) else []:
        if isinstance(call, dict):
            agg[str(call.get("probe", "?"))].append(float(call.get("seconds", 0.0) or 0.0))
    ordered = sorted(agg.items(), key=lambda kv: -sum(kv[1]))
    return [
        f'<tr><td class="loc">{e(name)}</td><td class="num">{len(s)}</td><td class="num">{sum(s):.3f}</td>'
        f'<td class="num">{max(s):.3f}</td></tr>'
        for name, s in ordered
    ]


def _environment_section(result: GradeResult, audience: Audience) -> list[str]:
    env = result.environment
    machine = [
        ("grader", e(env.grader_version)),
        ("Python", e(env.python)),
        ("torch", e(env.torch)),
        ("device", e(env.device)),
        ("platform", e(env.platform)),
        ("started", e(when(result.started_at))),
        ("duration", f"{result.duration_s:.2f} s"),
    ]
    if audience == "student":  # the sandbox's set-up and probe names are the instructor's business
        return ['<section id="environment"><h2>Environment</h2>', kv(machine), "</section>"]
    timings = result.timings
    timing = [("mode", e(result.mode)), ("contestant starts", e(timings.get("contestant_starts", "–")))]
    timing += [(k, e(v)) for k, v in timings.items() if k not in ("contestant_starts", "probes")]
    slow = sorted(result.checks, key=lambda c: -c.duration_s)
    checks = "".join(f'<tr><td class="id">{e(c.id)}</td><td class="num">{c.duration_s:.2f} s</td></tr>' for c in slow)
    probes = _probe_rows(timings.get("probes"))
    out = [
        '<section id="environment"><h2>Environment and timings</h2><div class="cols"><div>',
        "<h3>Grading machine</h3>",
        kv(machine),
        "<h3>Sandbox isolation</h3>",
        kv([(k, e(v)) for k, v in env.sandbox.items()]) if env.sandbox else '<p class="note">not recorded</p>',
        "</div><div>",
        "<h3>Timings</h3>",
        kv(timing),
        '<h3>Per check</h3><table class="compact"><tbody class="check-times">',
        checks,
        "</tbody></table>",
    ]
    if probes:
        out += [
            '<h3>Probes</h3><table class="probes compact"><thead><tr><th>probe</th><th class="num">calls</th>'
            '<th class="num">total s</th><th class="num">max s</th></tr></thead><tbody>',
            *probes,
            "</tbody></table>",
        ]
    return [*out, "</div></div></section>"]


def _output_section(result: GradeResult) -> list[str]:
    text = result.contestant_output
    if not text.strip():
        return []
    cut = len(text) > OUTPUT_CHARS
    shown = text[-OUTPUT_CHARS:]
    lines = len(text.splitlines())
    note = f" (last {OUTPUT_CHARS:,} of {len(text):,} characters)" if cut else ""
    return [
        '<section id="output"><details><summary>Output of the student\'s code: '
        f"{lines} line(s){note}</summary><pre>{e(shown)}</pre></details></section>"
    ]


def to_html(result: GradeResult, audience: Audience = "instructor") -> str:
    """The whole page for one submission; see the module docstring for what each audience sees."""
    shown = result.checks if audience == "instructor" else result.visible_to_student()
    score, top, final = _headline(result, shown)
    who = result.student or result.submission
    label = "total" if final else "visible checks"
    passed = sum(c.status == "passed" for c in shown)
    header = [
        '<header class="top"><div>',
        f"<h1>{e(result.assignment)}</h1>",
        f'<p class="meta">{"student" if result.student else "submission"} <strong class="student">{e(who)}</strong>'
        + (f' · submission <span class="id">{e(result.submission)}</span>' if result.student else "")
        + "</p>",
        f'<p class="meta">graded {e(when(result.started_at))} · {passed} of {len(shown)} checks passed'
        + (" · instructor's copy" if audience == "instructor" else "")
        + "</p>",
        '</div><div class="score">',
        f'<div class="note">{label}</div>',
        f'<div class="total">{fmt(score)} <span class="of">/ {fmt(top)}</span></div>',
        meter(score / top if top else 0.0),
        "</div></header>",
    ]
    notices = result.notices()
    if notices:
        mixed = notices_title(notices) == MIXED
        items = "".join(
            "<li>" + ("<b>Note:</b> " if n.note and mixed else "")
            + (f'<span class="penalty">−{fmt(n.points)} points</span> ' if n.points else "") + e(n.text)
            + ("<ul>" + "".join(f"<li>{e(d)}</li>" for d in n.details) + "</ul>" if n.details else "") + "</li>"
            for n in notices
        )
        header.append(f'<section class="problems" id="problems"><h2>{notices_title(notices)}</h2><ul>{items}</ul>'
                      "</section>")
    body = [
        *header,
        *_score_section(result, shown, final),
        *_checks_section(result, shown, audience),
        *_plots_section(shown),
        *_files_section(result),
        *_notebook_section(result, shown),
        *_environment_section(result, audience),
        *(_output_section(result) if audience == "instructor" else []),
        f"<footer>torch-grader {e(result.environment.grader_version)} · results.json schema "
        f"{result.schema_version}</footer>",
    ]
    return page(f"{result.assignment} · {who}: {fmt(score)} / {fmt(top)}", body)
