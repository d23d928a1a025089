"""summary.html: the class at a glance for the instructor. Counts, a score histogram, each check's pass rate,
rubric completion, late submissions, the slowest submissions and every student, linked to their report.html;
and, once `grader similarity` ran, the pairs of unusually alike submissions (grader.report.similarity_html).

Self-contained like report.html (grader.report.html): inline CSS and SVG, no script, every string escaped."""

from __future__ import annotations

import statistics
from collections import Counter
from urllib.parse import quote

from grader.batch.models import ClassRow
from grader.batch.roster import folder_name
from grader.report.html import STATUS_COLORS, badge, e, fmt, kv, page, when
from grader.report.plots import bars, histogram
from grader.report.similarity_html import BEGIN, END, SIMILARITY_CSS, similarity_section
from grader.results import GradeResult, Lateness
from grader.similarity.models import SimilarityReport
from grader.spec import AssignmentSpec

SLOWEST = 10
MAIN_STATUSES = ("graded", "missing", "crashed")  # always shown, even at 0

SUMMARY_CSS = """
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 16px; min-width: 120px; background: white; }
.card .n { font-size: 26px; font-weight: 700; }
.card .what { color: var(--muted); font-size: 12px; }
a { color: #0969da; }
td.student-problems { color: #cf222e; }
""" + SIMILARITY_CSS
# A graded row is green and a crashed one red, in the same colours as a check's passed and failed.
SUMMARY_CSS += f".badge.graded {{ background: {STATUS_COLORS['passed']}; }}\n"
SUMMARY_CSS += f".badge.crashed {{ background: {STATUS_COLORS['failed']}; }}\n"


def report_link(student_id: str) -> str:
    """students/<folder>/report.html, where batch grading wrote it: the folder is the id made safe by
    `folder_name` (a roster id like '../x' cannot leave students/), percent-encoded for the URL."""
    return f"students/{quote(folder_name(student_id), safe='')}/report.html"


def _card(n: object, what: str) -> str:
    return f'<div class="card"><div class="n">{e(n)}</div><div class="what">{e(what)}</div></div>'


def _graded(rows: list[ClassRow]) -> list[GradeResult]:
    """The results the class's figures count: not those a check that failed on the grader's side left partial."""
    return [r.result for r in rows if r.result is not None and r.status != "grader-error"]


def _max_total(spec: AssignmentSpec, results: list[GradeResult]) -> float:
    return results[0].max_total if results else spec.max_score + spec.rubric_points


def _lateness(result: GradeResult | None) -> Lateness | None:
    """The late record of a submission that was late; None for one on time or without a late policy."""
    late = result.adjustments.late if result and result.adjustments else None
    return late if late is not None and late.days_late > 0 else None


def _overview(spec: AssignmentSpec, rows: list[ClassRow], results: list[GradeResult]) -> list[str]:
    totals = [r.total for r in results]
    top = _max_total(spec, results)
    count = Counter(r.status for r in rows)
    others = sorted(s for s in count if s not in MAIN_STATUSES)  # e.g. skipped-duplicate, not graded yet
    cards = [
        _card(len(rows), "students"),
        *(_card(count[s], s) for s in (*MAIN_STATUSES, *others)),
        _card(f"{fmt(statistics.mean(totals))}" if totals else "–", f"mean total / {fmt(top)}"),
        _card(f"{fmt(statistics.median(totals))}" if totals else "–", f"median total / {fmt(top)}"),
        _card(sum(_lateness(r) is not None for r in results), "late submissions"),
    ]
    chart = histogram(totals, 0.0, top, 10, "Totals (bins of 10% of the maximum)", f"total out of {fmt(top)}")
    return [
        '<section id="overview"><h2>Overview</h2><div class="cards">',
        *cards,
        "</div>",
        f'<figure class="chart histogram">{chart}</figure>',
        "</section>",
    ]


def _late_policy(spec: AssignmentSpec) -> str:
    late = spec.late
    if late is None:
        return "no late policy"
    text = f"due {when(late.due)}, {late.penalty_per_day:.0%} off per started day"
    if late.grace_minutes:
        text += f" after {late.grace_minutes} minutes' grace"
    if late.max_days is not None:
        text += f"; 0 after {late.max_days} days"
    return text


def _checks(spec: AssignmentSpec, results: list[GradeResult]) -> list[str]:
    """Pass rate and mean score of every check in assignment.toml, over the students who were graded."""
    n = len(results)
    items, rows = [], []
    for check in spec.checks:
        got = [c for r in results for c in r.checks if c.id == check.id]
        passed = sum(c.status == "passed" for c in got)
        rate = passed / n if n else 0.0
        mean = statistics.mean(c.score for c in got) if got else None
        mean_text = f"{fmt(mean)} / {fmt(check.points)}" if mean is not None else "not run"
        items.append((check.id, rate, f"{rate:.0%} ({passed}/{n})"))
        rows.append(
            f'<tr><td><strong>{e(check.name)}</strong><div class="id">{e(check.id)}</div></td>'
            f"<td>{e(check.visibility)}</td>"
            f'<td class="num pass-rate">{rate:.0%}</td><td class="num">{passed} / {n}</td>'
            f'<td class="num">{mean_text}</td></tr>'
        )
    return [
        '<section id="checks"><h2>Checks</h2>',
        f'<figure class="chart pass-rates">{bars(items, "Pass rate: share of graded students with full marks")}'
        "</figure>",
        '<table><thead><tr><th>check</th><th>visibility</th><th class="num">pass rate</th><th class="num">passed</th>'
        '<th class="num">mean score</th></tr></thead><tbody>',
        *rows,
        "</tbody></table></section>",
    ]


def _rubric(spec: AssignmentSpec, results: list[GradeResult]) -> list[str]:
    if not spec.rubric:
        return []
    rows = []
    for item in spec.rubric:
        scores = [
            s.score
            for r in results
            for s in (r.adjustments.rubric if r.adjustments else [])
            if s.id == item.id and s.score is not None
        ]
        pending = len(results) - len(scores)  # no adjustments at all counts as not graded yet, too
        mean = f"{fmt(statistics.mean(scores))} / {fmt(item.points)}" if scores else "–"
        cls = "num pending" if pending else "num"
        rows.append(
            f'<tr><td>{e(item.name)}<div class="id">{e(item.id)}</div></td><td class="num">{len(scores)}</td>'
            f'<td class="{cls}">{pending}</td><td class="num">{mean}</td></tr>'
        )
    return [
        '<section id="rubric"><h2>Rubric (graded by hand)</h2>',
        '<table><thead><tr><th>item</th><th class="num">scored</th><th class="num">not graded yet</th>'
        '<th class="num">mean</th></tr></thead><tbody>',
        *rows,
        "</tbody></table></section>",
    ]


def _late(spec: AssignmentSpec, rows: list[ClassRow]) -> list[str]:
    late_rows = [(r, late) for r in rows if (late := _lateness(r.result))]
    out = ['<section id="late"><h2>Late submissions</h2>', f'<p class="note">{e(_late_policy(spec))}</p>']
    if not late_rows:
        return [*out, "<p>none</p></section>"]
    body = []
    for r, late in sorted(late_rows, key=lambda pair: -pair[1].days_late):
        body.append(
            f'<tr><td><a href="{e(report_link(r.student.id))}">{e(r.student.id)}</a></td>'
            f"<td>{e(when(late.submitted_at))}</td>"
            f'<td class="num">{late.days_late}</td><td class="num">{late.penalty_fraction:.0%}</td>'
            f'<td class="num">−{fmt(late.penalty)}</td></tr>'
        )
    return [
        *out,
        '<table><thead><tr><th>student</th><th>submitted</th><th class="num">days late</th>'
        '<th class="num">penalty</th><th class="num">points</th></tr></thead><tbody>',
        *body,
        "</tbody></table></section>",
    ]


def _student_cell(row: ClassRow) -> str:
    sid = e(row.student.id)
    return f'<a href="{e(report_link(row.student.id))}">{sid}</a>' if row.result is not None else sid


def _slowest(rows: list[ClassRow]) -> list[str]:
    timed = sorted((r for r in rows if r.duration_s > 0), key=lambda r: -r.duration_s)[:SLOWEST]
    if not timed:
        return []
    body = "".join(
        f'<tr><td class="num">{i}</td><td>{_student_cell(r)}</td><td>{e(r.student.name)}</td>'
        f"<td>{badge(r.status)}</td>"
        f'<td class="num duration">{r.duration_s:.1f} s</td></tr>'
        for i, r in enumerate(timed, 1)
    )
    return [
        f'<section id="slowest"><h2>Slowest {len(timed)} submissions</h2>',
        '<table><thead><tr><th class="num">#</th><th>student</th><th>name</th><th>status</th>'
        f'<th class="num">grading time</th></tr></thead><tbody>{body}</tbody></table></section>',
    ]


def _students(rows: list[ClassRow]) -> list[str]:
    body = []
    for r in sorted(rows, key=lambda r: r.student.id):
        res = r.result
        total = f"{fmt(res.total)} / {fmt(res.max_total)}" if res and r.status != "grader-error" else "–"
        late = f"{lateness.days_late} d" if (lateness := _lateness(res)) else ""
        problems = "<br>".join(e(p) for p in r.problems)
        body.append(
            f'<tr class="student" id="student-{e(r.student.id)}"><td>{_student_cell(r)}</td>'
            f'<td>{e(r.student.name)}</td><td class="num">{total}</td><td>{badge(r.status)}</td>'
            f'<td class="num">{late}</td><td class="student-problems">{problems}</td></tr>'
        )
    return [
        '<section id="students"><h2>Students</h2>',
        '<table><thead><tr><th>student</th><th>name</th><th class="num">total</th><th>status</th>'
        '<th class="num">late</th><th>problems</th></tr></thead><tbody>',
        *body,
        "</tbody></table></section>",
    ]


def summary_html(spec: AssignmentSpec, rows: list[ClassRow], title: str = "",
                 similarity: SimilarityReport | None = None, similarity_note: str = "") -> str:  # fmt: skip
    """The class summary page for one assignment's batch run. The similarity section sits between two comments
    that `grader similarity` replaces in place (grader.batch.similarity.splice_summary)."""
    results = _graded(rows)
    heading = title or f"{spec.title}: class summary"
    header = [
        '<header class="top"><div>',
        f"<h1>{e(heading)}</h1>",
        f'<p class="meta">assignment <span class="id">{e(spec.id)}</span> · {len(rows)} students · '
        f"{e(_late_policy(spec))}</p>",
        "</div></header>",
    ]
    facts = kv([
        ("automatic checks", f"{len(spec.checks)} worth {fmt(spec.max_score)} points"),
        ("rubric", f"{len(spec.rubric)} item(s) worth {fmt(spec.rubric_points)} points"),
    ])  # fmt: skip
    body = [
        *header,
        *_overview(spec, rows, results),
        *_checks(spec, results),
        *_rubric(spec, results),
        *_late(spec, rows),
        *_slowest(rows),
        BEGIN,
        *similarity_section(similarity, report_link, similarity_note),
        END,
        *_students(rows),
        f'<section id="about"><h2>Assignment</h2>{facts}</section>',
    ]
    return page(heading, body, SUMMARY_CSS)
