"""Compare a whole class: code, weights and predictions, each against the class's own distribution.

The input is one Entry per student (their submission folder and the judge's stored predictions); the output is
the SimilarityReport and, for the code pairs worth a look, what the side-by-side view needs. Pure: it reads
the submissions and the assignment's given files, and writes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grader.similarity import code as code_sim
from grader.similarity import predictions as pred_sim
from grader.similarity import weights as weights_sim
from grader.similarity.models import Pair, SignalReport, SimilarityReport
from grader.similarity.stats import class_threshold
from grader.spec import AssignmentSpec

# At least this share of one submission's own code (beyond the stub) found in the other. Independent authors of
# exp2 share 29-51% (the assignment dictates much of it: `self.bn1 = nn.BatchNorm2d(c_out)` is everyone's line);
# a copy with renamed variables and reordered functions keeps 87-96%.
CODE_FLOOR = 0.7
CLOSEST = 5  # side-by-side views also for the most alike code pairs that were not flagged: what normal looks like


@dataclass
class Entry:
    """One student as the similarity step sees them."""

    student: str
    folder: Path | None  # None: nothing to read (the submission could not be graded)
    predictions: np.ndarray | None = None
    why_no_folder: str = ""


@dataclass
class CodeView:
    """What the side-by-side page of one pair shows."""

    a: str
    b: str
    text_a: str
    text_b: str
    slices_a: np.ndarray  # (2, n) region starts and ends in text_a
    slices_b: np.ndarray
    to_b: list[int]  # for each region of a, the region of b it matches most (-1: none)
    to_a: list[int]
    files_a: list[str] = field(default_factory=list)
    files_b: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    report: SimilarityReport
    views: dict[tuple[str, str], CodeView]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _given_files(assignment_dir: Path, names: list[str]) -> list[str]:
    """The released versions of the code files: the stub the class filled in."""
    given = code_sim.read_code(assignment_dir, names)
    return [given.text] if given.files else []


def _code(spec: AssignmentSpec, assignment_dir: Path, entries: list[Entry],
          pairs: dict[tuple[str, str], Pair]) -> tuple[SignalReport, dict[tuple[str, str], CodeView]]:  # fmt: skip
    t0 = time.perf_counter()
    names = spec.code_files
    caps = {f.name: f.max_kb * 1024 for f in spec.files}
    boilerplate = code_sim.boilerplate_hashes(_given_files(assignment_dir, names))
    prints: dict[str, code_sim.Fingerprinted] = {}
    left_out = []
    for e in entries:
        if e.folder is None:
            left_out.append(f"{e.student}: {e.why_no_folder or 'no submission folder'}")
            continue
        text = code_sim.read_code(e.folder, names, caps)
        if not text.files:
            left_out.append(f"{e.student}: no {' or '.join(names)}" + (f" ({'; '.join(text.problems)})"
                                                                         if text.problems else ""))  # fmt: skip
            continue
        fp = code_sim.fingerprint(text, boilerplate)
        if fp.own < code_sim.MIN_OWN_CODE:
            left_out.append(f"{e.student}: {fp.own} characters of code beyond the given stub (fewer than "
                            f"{code_sim.MIN_OWN_CODE}: too little to compare)")  # fmt: skip
            continue
        prints[e.student] = fp
    students = sorted(prints)
    matches = {}
    for i, a in enumerate(students):
        for b in students[i + 1 :]:
            matches[(a, b)] = code_sim.compare(prints[a], prints[b])
    th = class_threshold([m.score for m in matches.values()], CODE_FLOOR)
    for (a, b), m in matches.items():
        p = pairs.setdefault((a, b), Pair(a=a, b=b))
        p.code, p.code_shares, p.code_overlap, p.code_z = m.score, (m.share_a, m.share_b), m.overlap, th.z(m.score)
        if th.flags(m.score):
            p.flags.append("code")
            p.evidence.append(f"code: {_pct(m.share_a)} of {a}'s own code (beyond the given stub) is found in "
                              f"{b}'s, and {_pct(m.share_b)} of {b}'s in {a}'s ({m.overlap} matching characters "
                              f"of filtered code); flagged from {_pct(th.threshold)}")  # fmt: skip
    # Views: every flagged pair, and the closest few that were not, for comparison.
    ranked = sorted(matches, key=lambda k: -matches[k].score)
    shown = [k for k in ranked if "code" in pairs[k].flags] + [k for k in ranked if "code" not in pairs[k].flags][
        :CLOSEST
    ]
    views = {}
    for a, b in shown:
        m = matches[(a, b)]
        to_b, to_a = code_sim.partners(prints[a], prints[b], m)
        views[(a, b)] = CodeView(a, b, prints[a].code.text, prints[b].code.text, m.slices_a, m.slices_b, to_b,
                                 to_a, prints[a].code.files, prints[b].code.files)  # fmt: skip
    report = SignalReport(
        signal="code",
        statistic="copydetect similarity: the share of one submission's own code (its filtered tokens, with the "
        "given stub removed) that lies in runs of at least 25 characters also found in the other; the larger "
        "of the two shares",
        rule=th.describe("similarity"),
        threshold=th.threshold,
        class_threshold=th,
        compared=len(matches),
        values=[m.score for m in matches.values()],
        not_compared=left_out,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return report, views


def _weights(spec: AssignmentSpec, assignment_dir: Path, entries: list[Entry],
             pairs: dict[tuple[str, str], Pair]) -> list[SignalReport]:  # fmt: skip
    t0 = time.perf_counter()
    names = spec.weights_files
    caps = {f.name: f.max_kb * 1024 for f in spec.files}
    shared_paths = [assignment_dir / s for s in spec.similarity.shared_weights]
    shared = weights_sim.read_shared(shared_paths, names)
    shared_hashes = {w.sha256[n] for _, w in shared for n in w.sha256}
    loaded: dict[str, weights_sim.Weights] = {}
    hashes: dict[str, dict[str, str]] = {}
    left_out = []
    for e in entries:
        if e.folder is None:
            left_out.append(f"{e.student}: {e.why_no_folder or 'no submission folder'}")
            continue
        w, h, problems = weights_sim.read_weights(e.folder, names, caps)
        hashes[e.student] = h
        if w is None:
            left_out.append(f"{e.student}: {'; '.join(problems)}")
        else:
            loaded[e.student] = w
    # Identical files, whatever their content (even files the judge refuses to load are copies when equal);
    # a file identical to a given checkpoint is the assignment's, not a copy.
    identical = 0
    students = sorted(hashes)
    for i, a in enumerate(students):
        for b in students[i + 1 :]:
            same = [n for n in names if n in hashes[a] and hashes[a][n] == hashes[b].get(n)
                    and hashes[a][n] not in shared_hashes]  # fmt: skip
            if same:
                identical += 1
                p = pairs.setdefault((a, b), Pair(a=a, b=b))
                p.identical = same
                p.flags.append("identical")
                p.evidence += [f"{n}: identical files (sha256 {hashes[a][n][:12]}…)" for n in same]
    # Near-identical weights, within each group of the same parameter names and shapes.
    groups: dict[tuple, list[str]] = {}
    for s in sorted(loaded):
        groups.setdefault(loaded[s].signature, []).append(s)
    if len(groups) > 1:
        main = max(groups, key=lambda g: len(groups[g]))
        for g, members in groups.items():
            if g != main:
                left_out += [f"{s}: other parameter names or shapes than most of the class (compared only with "
                             f"{len(members) - 1} other(s) of the same kind)" for s in members]  # fmt: skip
    values = []
    for sig, members in groups.items():
        if len(members) < 2:
            continue
        starts = [(name, w) for name, w in shared if w.signature == sig]
        for (i, j), wp in weights_sim.compare_group([loaded[s] for s in members], starts).items():
            a, b = members[i], members[j]
            p = pairs.setdefault((a, b), Pair(a=a, b=b))
            p.weights_ratio, p.weights_distance = wp.ratio, wp.distance
            p.weights_travelled, p.weights_start = wp.travelled, wp.start
            values.append(wp.ratio)
            if wp.ratio <= weights_sim.RATIO_MAX:
                p.flags.append("weights")
                start = "zero (no shared start)" if wp.start == "none" else wp.start
                p.evidence.append(f"weights: {wp.distance:.3g} apart, while the nearer of the two is "
                                  f"{wp.travelled:.3g} from {start}: ratio {wp.ratio:.3f} (flagged at ≤ "
                                  f"{weights_sim.RATIO_MAX:g})")  # fmt: skip
    given = ", ".join(spec.similarity.shared_weights) or "none declared"
    return [
        SignalReport(
            signal="identical",
            statistic=f"sha256 of each weights file ({', '.join(names)}); files equal to a given checkpoint "
            f"({given}) do not count",
            rule="identical bytes",
            direction="equal",
            compared=len(students) * (len(students) - 1) // 2,
            values=[],
            not_compared=[],
            seconds=0.0,
        ),
        SignalReport(
            signal="weights",
            statistic="||a − b|| / min(||a − s||, ||b − s||) over the learned parameters (BatchNorm statistics "
            f"left out), for s = each shared checkpoint ({given}) and s = 0, the largest of them: how far apart "
            "the two ended, as a share of how far the nearer travelled from where the class started",
            rule=f"ratio ≤ {weights_sim.RATIO_MAX:g} (fixed: the ratio is already relative to each pair's own "
            "training; on exp2 independent resumers measure 0.7-1.4, a copy fine-tuned for 50 steps 0.1-0.25)",
            threshold=weights_sim.RATIO_MAX,
            direction="at most",
            compared=len(values),
            values=[v for v in values if math.isfinite(v)],
            not_compared=left_out,
            seconds=round(time.perf_counter() - t0, 3),
        ),
    ]


def _predictions(entries: list[Entry], pairs: dict[tuple[str, str], Pair]) -> SignalReport:
    t0 = time.perf_counter()
    have = sorted((e for e in entries if e.predictions is not None and len(e.predictions)), key=lambda e: e.student)
    left_out = [f"{e.student}: no predictions (no model the judge could measure)" for e in entries
                if e.predictions is None or not len(e.predictions)]  # fmt: skip
    matrix = pred_sim.agreement_matrix([np.asarray(e.predictions) for e in have])
    values = {}
    for i in range(len(have)):
        for j in range(i + 1, len(have)):
            if not math.isnan(matrix[i, j]):
                values[(have[i].student, have[j].student)] = float(matrix[i, j])
    images = max((len(e.predictions) for e in have if e.predictions is not None), default=1)
    alike = {k: pred_sim.alikeness(v, images) for k, v in values.items()}
    th = class_threshold(list(alike.values()), pred_sim.alikeness(pred_sim.FLOOR, images))
    threshold = pred_sim.agreement_at(th.threshold, images)
    if th.class_relative and th.median is not None:
        median = _pct(pred_sim.agreement_at(th.median, images))
        rule = (f"agreement ≥ {_pct(pred_sim.FLOOR)} and modified z ≥ 3.5 of -ln(disagreement + 1/{images}) "
                f"against the class's {th.pairs} pairs (median agreement {median}, MAD {th.mad:.3f} on that log "
                f"scale): agreement ≥ {_pct(threshold)}")  # fmt: skip
    else:
        rule = (f"agreement ≥ {_pct(pred_sim.FLOOR)} (the floor alone: {th.pairs} pairs are too few for the "
                "class's own distribution)")  # fmt: skip
    for (a, b), v in values.items():
        p = pairs.setdefault((a, b), Pair(a=a, b=b))
        p.agreement, p.agreement_z = v, th.z(alike[(a, b)])
        if th.flags(alike[(a, b)]):
            p.flags.append("predictions")
            z = f", modified z {p.agreement_z:.1f}" if p.agreement_z is not None else ""
            med = (f"; the class's median pair agrees on {_pct(pred_sim.agreement_at(th.median, images))}"
                   if th.median is not None else "")  # fmt: skip
            p.evidence.append(f"predictions: the same class on {_pct(v)} of {images} test images{med}{z}; "
                              f"flagged from {_pct(threshold)}")  # fmt: skip
    return SignalReport(
        signal="predictions",
        statistic=f"agreement: the share of the {images} test images on which the two models predict the same "
        "class (the judge's predictions, measured while grading); blind to how the weights are arranged",
        rule=rule,
        threshold=threshold,
        class_threshold=th,
        compared=len(values),
        values=list(values.values()),
        not_compared=left_out,
        seconds=round(time.perf_counter() - t0, 3),
    )


def _strength(p: Pair) -> tuple:
    return (-len(p.flags), -(p.code or 0.0), p.weights_ratio if p.weights_ratio is not None else math.inf,
            -(p.agreement or 0.0), p.a, p.b)  # fmt: skip


def compare_class(spec: AssignmentSpec, assignment_dir: Path, entries: list[Entry]) -> Comparison:
    """Every signal the assignment supports, over every pair of `entries`."""
    t0 = time.perf_counter()
    pairs: dict[tuple[str, str], Pair] = {}
    signals: list[SignalReport] = []
    views: dict[tuple[str, str], CodeView] = {}
    notes = []
    if spec.code_files:
        code_report, views = _code(spec, assignment_dir, entries, pairs)
        signals.append(code_report)
    if spec.weights_files:
        signals += _weights(spec, assignment_dir, entries, pairs)
    if any(e.predictions is not None for e in entries):
        signals.append(_predictions(entries, pairs))
    elif spec.similarity.predictions:
        notes.append("no stored predictions: run the batch again (nothing is regraded) or pass --data-root")
    ranked = sorted(pairs.values(), key=_strength)
    report = SimilarityReport(assignment=spec.id, students=sorted(e.student for e in entries), signals=signals,
                              pairs=ranked, notes=notes, duration_s=round(time.perf_counter() - t0, 3))  # fmt: skip
    return Comparison(report, views)
