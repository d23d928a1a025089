"""`grader batch`: grade a whole class, resumably, and write every report and export.

The steps, in order (each needs the one before it):
    1. spec      assignment.toml and the dataset root: an instructor's error stops here, before any work
    2. discover  find and unpack the submissions (grader.batch.discover)
    3. match     attach them to roster students; unknown and duplicate ids become problems, never errors
    4. plan      hash each submission; skip those graded before with the same hash and grader fingerprint
    5. grade     the worker pool (grader.batch.runner); each result is saved the moment it arrives
    6. adjust    rubric CSV and late policy, applied to every result (cheap, so redone on every run)
    7. similarity with --similarity: pairs of unusually alike submissions (grader.batch.similarity); after
                 grading, because it compares everyone's stored predictions; before writing, because
                 summary.html shows it. It never changes a grade.
    8. write     per-student reports, then the class: gradebook.csv, canvas.csv, summary.html, batch.json,
                 and the nbgrader gradebook when asked
Steps 6 to 8 run after an interrupted step 5 too, over what was graded so far.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from grader.batch.discover import CANVAS_LATE, discover
from grader.batch.models import ClassRow
from grader.batch.roster import Matched, Matching, folder_name, match, read_roster
from grader.batch.runner import Event, run_pool
from grader.batch.state import Graded, StateStore, content_hash, grader_fingerprint
from grader.batch.worker import WorkerConfig
from grader.data import resolve_data_root
from grader.results import GradeResult
from grader.sandbox.choice import SandboxChoice
from grader.similarity.models import SimilarityReport
from grader.spec import AssignmentSpec, Course


class BatchOptions(BaseModel):
    """Validated `grader batch` input."""

    assignment: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    submissions: Path
    out: Path
    roster: Path | None = None
    rubric: Path | None = Field(None, description="default: OUT/rubric.csv (a template is written there)")
    workers: int | None = Field(None, ge=1, le=64, description="default: 1 locally, what the cluster fits on Ray")
    gpus: list[str] = Field(default_factory=list, description="CUDA device ids, assigned to workers in turn")
    chunk: int = Field(8, ge=1, le=1000, description="submissions a worker takes (and prefetches) at a time")
    threads: int | None = Field(None, ge=1, description="torch threads per worker; default: cores / workers")
    sandbox: SandboxChoice = SandboxChoice()
    data_root: Path | None = None
    nbgrader_db: str | None = Field(None, description="SQLAlchemy URL of an nbgrader gradebook to export into")
    regrade: bool = Field(False, description="ignore saved results and grade everything again")
    ray: str | None = Field(None, pattern=r"^(auto|local|ray://\S+|[\w.-]+:\d+)$",
                            description="grade on a Ray cluster: auto, local or ray://host:port (grader.batch.cluster)")
    gpu_per_submission: float | None = Field(None, ge=0, le=8, description="Ray: GPU share of each judge; default: "
                                             "1 when the assignment needs a GPU, else 0")  # fmt: skip
    similarity: bool = Field(False, description="compare the class's code and models (grader similarity)")
    canvas_column: str | None = Field(None, pattern=r"\S", description="canvas.csv's assignment header as Canvas's "
                                      "own export names it, e.g. 'Lab 2 (12345)'; default: the assignment's title")


class NothingFound(Exception):
    """The input holds no submission the grader can recognise: a wrong path or an unknown layout."""


class BatchReport(BaseModel):
    """OUT/batch.json: what happened in this run."""

    assignment: str
    input_kind: str
    grader: str
    students: int
    graded_now: int = 0
    skipped_unchanged: int = 0
    crashed: int = 0
    missing: int = 0
    grader_errors: int = Field(0, description="graded submissions with a check that could not run on the grader's "
                                              "side: a mistake in the course, or the machine")
    interrupted: bool = False
    wall_s: float = 0.0
    problems: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)
    folders: dict[str, str] = Field(default_factory=dict, description="OUT/.state/<folder> -> student id, for "
                                    "the steps that read the batch afterwards (grader similarity)")
    rows: list[ClassRow] = Field(default_factory=list, exclude=True, description="the class, for the CLI's table")


class Progress(Protocol):
    """What the CLI draws."""

    def planned(self, total: int, skipped: int) -> None: ...

    def event(self, event: Event) -> None: ...


class Silent:
    """The default progress: draws nothing."""

    def planned(self, total: int, skipped: int) -> None:
        pass

    def event(self, event: Event) -> None:
        pass


def run_batch(course: Course, opts: BatchOptions, progress: Progress | None = None) -> BatchReport:
    progress = progress or Silent()
    t0 = time.perf_counter()
    # 1. spec
    spec = course.spec(opts.assignment)
    root = resolve_data_root(spec, opts.data_root, course.root).path if spec.datasets else None
    fingerprint = grader_fingerprint(course, spec)
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # 2. discover, 3. match
    found = discover(opts.submissions.resolve(), out / ".work" / "unpacked", spec.id)
    roster, roster_problems = read_roster(opts.roster) if opts.roster else (None, [])
    if not found.found:
        why = "; ".join(found.problems[:3])
        raise NothingFound(f"found no submissions in {opts.submissions} (read as: {found.kind or 'nothing'})"
                           f"{': ' + why if why else ''}. Expected one folder or zip per student, or an export of "
                           "Canvas, Moodle, Blackboard, Gradescope, GitHub Classroom or nbgrader")  # fmt: skip
    matching = match(found.found, roster)
    report = BatchReport(assignment=spec.id, input_kind=found.kind, grader=fingerprint,
                         students=len(matching.graded) + len(matching.missing), missing=len(matching.missing),
                         problems=found.problems + roster_problems + matching.problems)  # fmt: skip
    # 4. plan
    store = StateStore(out)
    by_folder: dict[str, Matched] = {folder_name(m.student.id): m for m in matching.graded}
    hashes = {f: content_hash(m.found.folder) for f, m in by_folder.items()}
    todo = []
    for f, m in by_folder.items():
        saved = None if opts.regrade else store.load(f)
        if saved and saved.reusable(hashes[f], fingerprint):
            report.skipped_unchanged += 1
        else:
            todo.append((f, str(m.found.folder)))
    progress.planned(len(todo), report.skipped_unchanged)

    # 5. grade
    def record(ev: Event) -> None:
        if ev.kind in ("done", "crashed"):
            result = GradeResult.model_validate_json(ev.payload) if ev.kind == "done" else None
            ev.failed = result is None or any(c.status == "error" for c in result.checks)
            store.save_predictions(ev.student, ev.predictions if result else None)
            store.save(ev.student, Graded(student=by_folder[ev.student].student.id, content_hash=hashes[ev.student],
                                          grader=fingerprint, status="graded" if result else "crashed",
                                          message="" if result else ev.payload, result=result,
                                          submission=str(by_folder[ev.student].found.folder)))  # fmt: skip
            if result:
                report.graded_now += 1
            else:
                report.crashed += 1
        elif ev.kind == "note":
            report.notes.append(ev.payload)
        progress.event(ev)

    workers = opts.workers or 1
    threads = opts.threads or (spec.limits.threads if opts.ray else max(1, (os.cpu_count() or 1) // workers))
    config = WorkerConfig(course_root=course.root, assignment=spec.id, data_root=root, sandbox=opts.sandbox,
                          threads=threads)  # fmt: skip
    try:
        if todo and opts.ray:
            from grader.batch.cluster import run_cluster

            gpu = opts.gpu_per_submission if opts.gpu_per_submission is not None else float(spec.needs_gpu)
            run_cluster(todo, config, course.root, fingerprint, opts.ray, gpu, opts.workers, opts.chunk, record)
        elif todo:
            run_pool(todo, config, workers, opts.gpus, opts.chunk, record)
    except KeyboardInterrupt:
        report.interrupted = True
    # 6. adjust, 7. similarity, 8. write
    rows = report.rows = _class_rows(spec, matching, by_folder, store, out, opts, report)
    report.folders = {f: m.student.id for f, m in by_folder.items()}
    similarity = _similarity(course, spec, out, opts, report)
    report.outputs.update(_write_class(spec, rows, out, opts, report, similarity))
    report.wall_s = round(time.perf_counter() - t0, 2)
    (out / "batch.json").write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return report


def _class_rows(spec: AssignmentSpec, matching: Matching, by_folder: dict[str, Matched], store: StateStore,
                out: Path, opts: BatchOptions, report: BatchReport) -> list[ClassRow]:  # fmt: skip
    """Adjusted results (rubric, late policy), with every student's reports written under OUT/students/."""
    from grader.batch.adjust import adjust
    from grader.batch.rubric import read_rubric, rubric_template
    from grader.report import write_reports

    students = [m.student for m in matching.graded] + matching.missing
    rubric_path = opts.rubric or out / "rubric.csv"
    if spec.rubric and opts.rubric is None and not rubric_path.exists():
        rubric_path.write_text(rubric_template(spec, sorted(students, key=lambda s: s.id)), encoding="utf-8")
        report.notes.append(f"wrote a rubric template to {rubric_path}: fill in the scores and run again")
    sheet = read_rubric(rubric_path, spec, {s.id for s in students}) if spec.rubric else None
    if sheet is not None:
        report.problems += sheet.problems
    rows: list[ClassRow] = []
    for f, m in sorted(by_folder.items()):
        saved = store.load(f)
        row = ClassRow(student=m.student, source=m.found.source, status="graded")
        if CANVAS_LATE in m.found.source and m.found.submitted_at is None:
            row.problems.append("Canvas marked it LATE; no penalty was applied, since the late policy takes times "
                                "only from the roster's submitted_at column or Gradescope's metadata")  # fmt: skip
        if saved is None or saved.result is None:
            row.status = "crashed" if saved else "not graded yet"
            row.problems.append(saved.message if saved else "not graded: the batch was interrupted; run it again")
        else:
            rubric = sheet.scores.get(m.student.id) if sheet else None
            result = saved.result.model_copy(update={"student": m.student.id})
            row.result = adjust(result, spec, rubric, m.found.submitted_at, m.found.submitted_at_source)
            row.duration_s = row.result.duration_s
            write_reports(row.result, out / "students" / f)
            if broken := [c.id for c in row.result.checks if c.status == "error"]:  # never the student's loss
                row.status = "grader-error"
                row.problems.append(f"{', '.join(broken)} could not run on the grader's side (the check's message "
                                    "says why: a mistake in the course, or a fault of the grading machine): no "
                                    "total until the batch is run again")  # fmt: skip
                report.grader_errors += 1
        rows.append(row)
    rows += [ClassRow(student=s, status="missing", problems=["no submission found"]) for s in matching.missing]
    # the matching's own problem line, attached below, says which is graded and whether it is known to be newer
    rows += [ClassRow(student=d.student, source=d.found.source, status="skipped-duplicate")
             for d in matching.duplicates]  # fmt: skip
    for p in report.problems:  # attach each problem to the student it names, for the gradebook's column
        for row in rows:
            if row.source and row.source in p and p not in row.problems:
                row.problems.append(p)
    return rows


def _similarity(course: Course, spec: AssignmentSpec, out: Path, opts: BatchOptions,
                report: BatchReport) -> tuple[SimilarityReport | None, str]:  # fmt: skip
    """(the similarity report, or why there is none for summary.html): made now with --similarity, else the one
    a previous run or `grader similarity` left, while the submissions it compared are unchanged."""
    from grader.batch.similarity import inputs, load_report, run_similarity

    if not opts.similarity:
        return load_report(out, inputs(out, report.folders))
    if report.interrupted:  # Ctrl-C means stop: compare the class once it is all graded
        report.notes.append("similarity skipped: the batch was interrupted; run it again to grade the rest")
        return None, ""
    try:
        made, written = run_similarity(course, out, opts.data_root, spec, report.folders)
    except Exception as exc:  # noqa: BLE001 - the grades are made; the class's outputs must still be written
        report.problems.append(f"similarity failed: {type(exc).__name__}: {exc}")
        return None, ""
    report.outputs.update(written)
    return made, ""


def _write_class(spec: AssignmentSpec, rows: list[ClassRow], out: Path, opts: BatchOptions, report: BatchReport,
                 similarity: tuple[SimilarityReport | None, str]) -> dict[str, str]:  # fmt: skip
    from grader.batch.gradebook import CanvasKey, canvas_csv, gradebook_csv
    from grader.report.summary import summary_html

    graded = [r for r in rows if r.status != "skipped-duplicate"]
    files = {"gradebook": out / "gradebook.csv", "canvas": out / "canvas.csv", "summary": out / "summary.html"}
    files["gradebook"].write_text(gradebook_csv(spec, graded), encoding="utf-8")
    # a Canvas export names students by Canvas's own user ids, which its import reads from the ID column
    key: CanvasKey = "id" if report.input_kind == "Canvas export" and not opts.roster else "sis_user_id"
    files["canvas"].write_text(canvas_csv(spec, graded, opts.canvas_column or spec.title, key=key), encoding="utf-8")
    page = summary_html(spec, rows, title=f"{spec.title}: class summary", similarity=similarity[0],
                        similarity_note=similarity[1])  # fmt: skip
    files["summary"].write_text(page, encoding="utf-8")
    written = {k: str(v) for k, v in files.items()}
    if opts.nbgrader_db:
        from grader.batch.nbgrader_export import NbgraderError, export_to_nbgrader

        try:
            done = export_to_nbgrader(spec, graded, opts.nbgrader_db)
        except NbgraderError as exc:  # the grades are safe in the other outputs; say what to fix and go on
            report.problems.append(f"nbgrader export failed: {exc}")
        else:
            report.problems += [f"nbgrader: {p}" for p in done.problems]
            written["nbgrader"] = opts.nbgrader_db
    return written

