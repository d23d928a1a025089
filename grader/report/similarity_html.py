"""The similarity section of summary.html, and the side-by-side page of a pair's code.

Self-contained like every report (grader.report.html): inline CSS and SVG, no script, every string escaped.
Code comes from students and is hostile: it is escaped character by character, and the side-by-side page's
links between matching regions are plain fragment links (#b3), which need no script.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import numpy as np

from grader.batch.roster import folder_name
from grader.report.html import e, kv, page
from grader.report.plots import histogram
from grader.similarity.models import Pair, SignalReport, SimilarityReport

if TYPE_CHECKING:  # the comparison imports torch: every batch's summary.html imports this module
    from grader.similarity.compare import CodeView

BEGIN, END = "<!-- similarity -->", "<!-- /similarity -->"  # around summary.html's section: replaced in place
# Region colours, repeated; matching regions share one on both sides.
PALETTE = ("#fff3b0", "#c8f7c5", "#ffd6e0", "#cfe8ff", "#ffe0b2", "#e5d4ff")
SIGNAL_COLORS = {"code": "#0969da", "identical": "#cf222e", "weights": "#bf3989", "predictions": "#8250df"}
SIGNAL_NAMES = {"code": "code", "identical": "identical file", "weights": "weights", "predictions": "predictions"}

SIMILARITY_CSS = """
#similarity .lede { color: var(--muted); margin: 0 0 10px; }
#similarity td.evidence ul { margin: 0; padding-left: 16px; }
#similarity .rules dl.kv { margin-bottom: 8px; }
.signal { display: inline-block; padding: 1px 8px; margin: 1px 2px; border-radius: 10px; color: white;
  font-size: 12px; font-weight: 600; }
""" + "".join(f".signal.{k} {{ background: {c}; }}\n" for k, c in SIGNAL_COLORS.items())

VIEW_CSS = """
main { max-width: 1600px; }
.sxs { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
.sxs .side { min-width: 0; }
.sxs h2 { margin: 0 0 6px; }
table.regions td { padding: 1px 8px; }
table.regions { width: auto; }
.sxs pre { max-height: 80vh; overflow: auto; white-space: pre; font-size: 12px; line-height: 1.45; }
.ln { display: inline-block; width: 3.5em; color: #8c959f; user-select: none; text-align: right;
  padding-right: 1em; }
a.m { color: inherit; text-decoration: none; border-radius: 2px; }
a.m:target { outline: 2px solid #cf222e; }
""" + "".join(f"a.m.c{i} {{ background: {c}; }}\n" for i, c in enumerate(PALETTE))


def view_path(a: str, b: str) -> str:
    """Where a pair's side-by-side page goes, relative to OUT (student ids made safe as file names)."""
    return f"similarity/{folder_name(a)}--{folder_name(b)}.html"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _signals(p: Pair) -> str:
    return "".join(f'<span class="signal {s}">{e(SIGNAL_NAMES[s])}</span>' for s in p.flags)


def _pair_row(n: int, p: Pair, link: Callable[[str], str]) -> str:
    evidence = "".join(f"<li>{e(x)}</li>" for x in p.evidence)
    view = f'<a href="{e(quote(p.view))}">side by side</a>' if p.view else ""
    return (f'<tr class="pair"><td class="num">{n}</td><td><a href="{e(link(p.a))}">{e(p.a)}</a> and '
            f'<a href="{e(link(p.b))}">{e(p.b)}</a></td><td>{_signals(p)}</td>'
            f'<td class="evidence"><ul>{evidence}</ul></td><td>{view}</td></tr>')  # fmt: skip


CHARTS = {  # signal: (lo, hi, axis label)
    "code": (0.0, 1.0, "similarity (share of own code found in the other)"),
    "weights": (0.0, 2.0, "distance ratio (lower: more alike; 2 and above in the last bin)"),
    "predictions": (0.0, 1.0, "agreement (share of test images predicted alike)"),
}


def _rule(s: SignalReport) -> str:
    rows = [("measures", e(s.statistic)), ("flagged when", e(s.rule)), ("pairs compared", e(s.compared))]
    if s.not_compared:
        items = "".join(f"<li>{e(x)}</li>" for x in s.not_compared)
        rows.append(("left out", f"<details><summary>{len(s.not_compared)} student(s)</summary><ul>{items}</ul>"
                                 "</details>"))  # fmt: skip
    chart = ""
    if s.signal in CHARTS and s.values:
        lo, hi, label = CHARTS[s.signal]
        marker = s.threshold if s.threshold is not None and math.isfinite(s.threshold) else None
        svg = histogram([min(v, hi) for v in s.values], lo, hi, 20, f"{SIGNAL_NAMES[s.signal]}: every pair",
                        label, y_label="pairs", marker=marker, marker_label=f"threshold {marker:.3g}" if marker
                        is not None else "")  # fmt: skip
        chart = f'<figure class="chart similarity-{s.signal}">{svg}</figure>'
    return f'<h3><span class="signal {s.signal}">{e(SIGNAL_NAMES[s.signal])}</span></h3>{kv(rows)}{chart}'


def similarity_section(report: SimilarityReport | None, link: Callable[[str], str], stale: str = "") -> list[str]:
    """summary.html's similarity section: the flagged pairs with their evidence, then how each signal decides."""
    if report is None:
        note = f'<section id="similarity"><h2>Similarity</h2><p class="note">{e(stale)}</p></section>'
        return [note] if stale else []
    flagged = report.flagged
    out = [
        '<section id="similarity"><h2>Similarity</h2>',
        '<p class="lede">Nothing here changes a grade: pairs of submissions that are unusually alike, for a person '
        "to look at, with the evidence. A flag is a reason to look, not a finding.</p>",
    ]
    if stale:
        out.append(f'<p class="note">{e(stale)}</p>')
    if flagged:
        out += ['<table class="pairs"><thead><tr><th class="num">#</th><th>students</th><th>signals</th>'
                "<th>evidence</th><th>view</th></tr></thead><tbody>",
                *(_pair_row(n, p, link) for n, p in enumerate(flagged[:LISTED], 1)), "</tbody></table>"]  # fmt: skip
        if len(flagged) > LISTED:
            out.append(f'<p class="note">and {len(flagged) - LISTED} more flagged pairs in similarity.csv: so many '
                       "usually means the class shares something the assignment does not declare (a given "
                       "checkpoint missing from shared_weights, a starter file missing from the stub)</p>")  # fmt: skip
    else:
        out.append(f'<p class="none">No pair stands out among {len(report.students)} students.</p>')
    out.append('<div class="rules"><h3>How pairs are flagged</h3>')
    out += [_rule(s) for s in report.signals]
    out += [f'<p class="note">{e(n)}</p>' for n in report.notes]
    out.append(f'<p class="note">{len(report.students)} students, {len(report.pairs)} pairs compared in '
               f"{report.duration_s:.1f} s; every pair's numbers are in similarity.csv.</p>")  # fmt: skip
    out.append("</div></section>")
    return out


class _Code:
    """Escaped code with a line-number gutter, built piece by piece so that highlights may span lines."""

    def __init__(self) -> None:
        self.parts: list[str] = ['<span class="ln">1</span>']
        self.line = 1

    def add(self, text: str) -> None:
        chunks = text.split("\n")
        for i, chunk in enumerate(chunks):
            if i:
                self.line += 1
                self.parts.append(f'\n<span class="ln">{self.line}</span>')
            self.parts.append(e(chunk))


def _highlighted(text: str, slices: np.ndarray, partners: list[int], colors: list[int], side: str,
                 other: str) -> str:  # fmt: skip
    code = _Code()
    pos = 0
    for r in range(slices.shape[1]):
        start, end = int(slices[0, r]), int(slices[1, r])
        if start < pos:  # overlapping runs: continue from where the last one ended
            start = pos
        code.add(text[pos:start])
        href = f' href="#{other}{partners[r] + 1}"' if partners[r] >= 0 else ""
        code.parts.append(f'<a class="m c{colors[r] % len(PALETTE)}" id="{side}{r + 1}"{href}>')
        code.add(text[start:end])
        code.parts.append("</a>")
        pos = max(pos, end)
    code.add(text[pos:])
    return "".join(code.parts)


LISTED = 200  # flagged pairs shown in summary.html; similarity.csv has all of them
REGIONS_LISTED = 80  # the region table's length; the code below highlights every region whatever the count


def _lines(text: str, start: int, end: int) -> str:
    first, last = text.count("\n", 0, start) + 1, text.count("\n", 0, max(start, end - 1)) + 1
    return f"{first}" if first == last else f"{first}–{last}"


def _regions(view: CodeView) -> list[str]:
    """A table of the matching regions: lines on each side, each linked to the region in the code below."""
    n = view.slices_a.shape[1]
    if not n:
        return []
    rows = []
    for r in range(min(n, REGIONS_LISTED)):
        a = _lines(view.text_a, int(view.slices_a[0, r]), int(view.slices_a[1, r]))
        t = view.to_b[r]
        b = (f'<a href="#b{t + 1}">{_lines(view.text_b, int(view.slices_b[0, t]), int(view.slices_b[1, t]))}</a>'
             if t >= 0 else "–")  # fmt: skip
        rows.append(f'<tr><td class="num">{r + 1}</td><td><a href="#a{r + 1}">{a}</a></td><td>{b}</td></tr>')
    more = f'<p class="note">and {n - REGIONS_LISTED} more below</p>' if n > REGIONS_LISTED else ""
    return [
        f'<section id="regions"><h2>Matching regions ({n})</h2>',
        f'<table class="regions"><thead><tr><th class="num">#</th><th>{e(view.a)}: lines</th>'
        f"<th>{e(view.b)}: lines</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{more}</section>",
    ]


def side_by_side(view: CodeView, pair: Pair, assignment: str) -> str:
    """One pair's code, side by side: the matching regions highlighted, each linked to its counterpart."""
    colors_a = list(range(view.slices_a.shape[1]))
    colors_b = [t if t >= 0 else j for j, t in enumerate(view.to_a)]  # b's regions take their partner's colour
    title = f"{assignment}: {view.a} and {view.b}"
    evidence = "".join(f"<li>{e(x)}</li>" for x in pair.evidence) or "<li>not flagged: shown for comparison</li>"
    shares = pair.code_shares or (0.0, 0.0)
    body = [
        '<header class="top"><div>',
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">{_pct(shares[0])} of {e(view.a)}\'s own code is found in {e(view.b)}\'s, '
        f"{_pct(shares[1])} the other way. Matching regions are highlighted in the same colour on both sides; "
        "click one to jump to its counterpart. The given stub is boilerplate: it is never highlighted.</p>",
        "</div></header>",
        f'<section id="evidence"><h2>Evidence</h2><ul>{evidence}</ul>'
        '<p class="note">Nothing here changes a grade.</p></section>',
        *_regions(view),
        '<section id="code"><div class="sxs">',
        f'<div class="side a"><h2>{e(view.a)}</h2><p class="note">{e(", ".join(view.files_a))}</p>'
        f"<pre>{_highlighted(view.text_a, view.slices_a, view.to_b, colors_a, 'a', 'b')}</pre></div>",
        f'<div class="side b"><h2>{e(view.b)}</h2><p class="note">{e(", ".join(view.files_b))}</p>'
        f"<pre>{_highlighted(view.text_b, view.slices_b, view.to_a, colors_b, 'b', 'a')}</pre></div>",
        "</div></section>",
    ]
    return page(title, body, VIEW_CSS)
