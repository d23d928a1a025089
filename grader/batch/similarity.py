"""The batch's similarity step: `grader batch ... --similarity`, or `grader similarity OUT` on a finished batch.

Reads what the batch left in OUT (batch.json: the class; .state/: each student's graded folder and the judge's
test-set predictions), compares the class (grader.similarity), and writes:
    OUT/similarity.json       the report (grader.similarity.models.SimilarityReport)
    OUT/similarity.csv        one row per compared pair, flagged pairs first
    OUT/similarity/*.html     side-by-side code of the flagged pairs (and the closest few that were not)
and the similarity section of OUT/summary.html. Nothing it finds changes a grade.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from grader.batch.state import StateStore, content_hash
from grader.similarity.models import SimilarityReport
from grader.spec import AssignmentSpec, Course

if TYPE_CHECKING:  # the comparison imports torch (1.3 s); a batch without --similarity only reads the last report
    from grader.similarity.compare import Comparison, Entry


class SimilarityError(Exception):
    """OUT is not a finished batch's output folder (the message says what is missing)."""


def class_folders(out: Path) -> tuple[str, dict[str, str]]:
    """(assignment id, state folder -> student id) of the batch in OUT."""
    try:
        batch = json.loads((out / "batch.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SimilarityError(f"{out / 'batch.json'}: cannot be read ({exc}); run `grader batch ... --out {out}` "
                              "first") from None  # fmt: skip
    folders = batch.get("folders")
    if not isinstance(folders, dict):  # written by an older grader: every student the state folder knows
        store = StateStore(out)
        folders = {p.stem: g.student for p in sorted(store.dir.glob("*.json")) if (g := store.load(p.stem))}
    return str(batch.get("assignment", "")), {str(k): str(v) for k, v in folders.items()}


def entries(out: Path, folders: dict[str, str], predictor: object = None, data_root: Path | None = None,
            notes: list[str] | None = None) -> list[Entry]:  # fmt: skip
    """One Entry per graded student: the folder that was graded, and the judge's stored predictions (computed
    now by the assignment's hook, in this trusted process, where the batch did not store them). A folder whose
    files changed since grading is compared as it is now, with a note."""
    from grader.batch.worker import predictions as judge_predictions
    from grader.similarity.compare import Entry

    store = StateStore(out)
    found = []
    for folder, student in sorted(folders.items(), key=lambda kv: kv[1]):
        g = store.load(folder)
        where = (g.submission or (g.result.submission if g.result else "")) if g else ""
        path = Path(where) if where and Path(where).is_dir() else None
        why = "" if path else ("not graded" if g is None else f"its folder {where or '(unknown)'} is gone")
        if g is not None and path is not None and notes is not None and content_hash(path) != g.content_hash:
            notes.append(f"{student}: the files changed since they were graded; compared as they are now")
        preds = store.load_predictions(folder)
        if preds is None and path is not None and predictor is not None:
            preds = judge_predictions(predictor, path, data_root)
            store.save_predictions(folder, preds)
        found.append(Entry(student=student, folder=path, predictions=preds, why_no_folder=why))
    return found


def inputs(out: Path, folders: dict[str, str]) -> dict[str, str]:
    """student -> the content hash their saved result was graded from (a later change makes the report stale)."""
    store = StateStore(out)
    return {student: g.content_hash for folder, student in folders.items() if (g := store.load(folder))}


def pairs_csv(report: SimilarityReport) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["student_a", "student_b", "flagged", "code_similarity", "code_share_a", "code_share_b",
                "code_overlap", "code_z", "identical_files", "weights_ratio", "weights_distance",
                "weights_travelled", "weights_start", "agreement", "agreement_z", "view", "evidence"])  # fmt: skip

    def num(x: float | None, digits: int = 4) -> str:
        return "" if x is None else f"{x:.{digits}g}" if abs(x) != float("inf") else "inf"

    for p in report.pairs:
        shares = p.code_shares or (None, None)
        w.writerow([p.a, p.b, ";".join(p.flags), num(p.code), num(shares[0]), num(shares[1]),
                    "" if p.code_overlap is None else p.code_overlap, num(p.code_z, 3), ";".join(p.identical),
                    num(p.weights_ratio), num(p.weights_distance), num(p.weights_travelled), p.weights_start or "",
                    num(p.agreement), num(p.agreement_z, 3), p.view or "", " | ".join(p.evidence)])  # fmt: skip
    return buf.getvalue()


def write_outputs(out: Path, spec: AssignmentSpec, comparison: Comparison) -> dict[str, str]:
    """similarity.json, similarity.csv and the side-by-side pages; the report's pairs get their view links."""
    from grader.report.similarity_html import side_by_side, view_path

    report = comparison.report
    views = out / "similarity"
    shutil.rmtree(views, ignore_errors=True)  # pages of pairs no longer shown must not linger
    views.mkdir(parents=True)
    by_key = {p.key: p for p in report.pairs}
    for key, view in comparison.views.items():
        pair = by_key[key]
        pair.view = view_path(*key)
        (out / pair.view).write_text(side_by_side(view, pair, spec.id), encoding="utf-8")
    (out / "similarity.json").write_text(report.model_dump_json(indent=1) + "\n", encoding="utf-8")
    (out / "similarity.csv").write_text(pairs_csv(report), encoding="utf-8")
    return {"similarity": str(out / "similarity.json"), "similarity_csv": str(out / "similarity.csv"),
            "similarity_views": str(views)}  # fmt: skip


def load_report(out: Path, current: dict[str, str]) -> tuple[SimilarityReport | None, str]:
    """OUT/similarity.json if there is one: (the report, '') while it matches the class's submissions, else
    (None, why it is out of date)."""
    path = out / "similarity.json"
    if not path.is_file():
        return None, ""
    try:
        report = SimilarityReport.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        return None, f"similarity.json could not be read ({exc}); run `grader similarity {out}` again"
    if report.inputs != current:
        return None, (f"similarity.json is out of date (submissions changed since it was made); run "
                      f"`grader similarity {out}` again")  # fmt: skip
    return report, ""


def splice_summary(out: Path, report: SimilarityReport) -> bool:
    """Replace summary.html's similarity section in place (the rest of the page needs the whole batch to
    render). False when there is no summary.html with the markers to replace."""
    from grader.report.similarity_html import BEGIN, END, similarity_section
    from grader.report.summary import report_link

    path = out / "summary.html"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    section = "\n".join([BEGIN, *similarity_section(report, report_link), END])
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: section, text, count=1), encoding="utf-8")
    return True


def run_similarity(course: Course, out: Path, data_root: Path | None = None, spec: AssignmentSpec | None = None,
                   folders: dict[str, str] | None = None) -> tuple[SimilarityReport, dict[str, str]]:  # fmt: skip
    """Compare the class graded into OUT and write the outputs. The batch passes its `spec` and `folders` (state
    folder -> student id); `grader similarity OUT` reads them from OUT/batch.json."""
    from grader.batch.worker import load_hook
    from grader.data import DataError, resolve_data_root
    from grader.similarity.compare import compare_class

    out = out.resolve()
    if spec is None or folders is None:
        assignment, folders = class_folders(out)
        if not assignment:
            raise SimilarityError(f"{out / 'batch.json'} does not name an assignment")
        spec = course.spec(assignment)
    notes = []
    predictor, root = None, None
    if spec.similarity.predictions and spec.datasets:
        try:
            root = resolve_data_root(spec, data_root, course.root).path
            predictor = load_hook(course, spec, "grade", spec.similarity.predictions)
        except DataError as exc:  # stored predictions still count; only missing ones cannot be made
            notes.append(f"predictions the batch did not store cannot be computed: {exc}")
    comparison = compare_class(spec, course.assignment_dir(spec.id), entries(out, folders, predictor, root, notes))
    comparison.report.notes += notes
    comparison.report.inputs = inputs(out, folders)
    written = write_outputs(out, spec, comparison)
    return comparison.report, written
