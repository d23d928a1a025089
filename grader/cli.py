"""The `grader` command line. The only module that prints for people or exits the process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic import BaseModel, Field, ValidationError, field_validator
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grader import __version__
from grader.release import ReleaseError, release
from grader.spec import Course, SpecError, format_validation_error

if TYPE_CHECKING:
    from grader.sandbox.base import Sandbox

app = typer.Typer(help="Grade PyTorch course assignments: sandboxed student code, trusted pytest judge.",
                  no_args_is_help=True, add_completion=False)  # fmt: skip
assets_app = typer.Typer(help="Build the trained weights that examples and tests use.", no_args_is_help=True)
app.add_typer(assets_app, name="assets")
out = Console()
err = Console(stderr=True)

SandboxOpt = Annotated[
    str, typer.Option("--sandbox", help="local or docker (default: $GRADER_SANDBOX, else local)")
]
DataRootOpt = Annotated[
    Path | None, typer.Option("--data-root", help="dataset root (else $GRADER_DATA_ROOT, else assignment.toml)")
]
CourseOpt = Annotated[
    Path | None, typer.Option("--course", help="course root (default: $GRADER_COURSE, then search up from cwd)")
]
STATUS_STYLE = {"passed": "green", "partial": "yellow", "failed": "red", "error": "magenta"}


class RunInput(BaseModel):
    """Validated CLI input for check and grade."""

    assignment: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    submission: Path = Field(description="the folder of files, or one .zip of them")
    out: Path | None = None

    @field_validator("submission")
    @classmethod
    def _folder_or_zip(cls, path: Path) -> Path:
        if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
            return path
        if not path.exists():
            raise ValueError(f"{path} does not exist: pass the folder that holds the files, or a .zip of it")
        raise ValueError(f"{path} is neither a folder nor a .zip: pass the folder that holds the files, or a zip of it")


def _die(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _locate(course: Path | None) -> Course:
    """The course, or exit 2 with how to make one."""
    try:
        return Course.locate(course)
    except SpecError as exc:
        _die(str(exc))
        raise  # unreachable


def _sandbox(option: str) -> Sandbox:
    """The sandbox the --sandbox option (else $GRADER_SANDBOX) names, or exit 2 saying why not."""
    from grader.sandbox.base import SandboxError
    from grader.sandbox.choice import SandboxChoice

    try:
        return SandboxChoice.resolve(option).build()
    except SandboxError as exc:
        _die(str(exc))
        raise  # unreachable


def _validated(**fields: object) -> RunInput:
    try:
        return RunInput.model_validate(fields)
    except ValidationError as exc:
        _die(format_validation_error("command line", exc))
        raise  # unreachable


def _version(value: bool) -> None:
    if value:
        out.print(f"grader {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """torch-grader."""


def _print_result(result, title: str, full: str = "in results.json") -> None:  # noqa: ANN001
    table = Table(title=title, show_lines=False)
    table.add_column("check")
    table.add_column("points", justify="right")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for c in result.checks:
        msg = c.message if len(c.message) < 400 else c.message[:400] + f" [...] (full text {full})"
        msg += "".join(f"\nnote: {n}" for n in c.notes)
        table.add_row(c.id, f"{c.score:.4g}/{c.max_score:.4g}", f"[{STATUS_STYLE[c.status]}]{c.status}[/]", escape(msg))
    out.print(table)
    for n in result.notices():
        out.print(f"[{'cyan' if n.note else 'red'}]{n.label}:[/] {escape(n.text)}", highlight=False)
        for d in n.details:
            out.print(f"    {escape(d)}", highlight=False)
    out.print(f"[bold]score: {result.score:g} / {result.max_score:g}[/bold]  ({result.duration_s:.1f} s)")
    errors = [c.id for c in result.checks if c.status == "error"]
    if errors:
        err.print(f"[magenta]error:[/magenta] {len(errors)} check(s) could not be run because of a mistake in the "
                  f"course or the grading machine, not the submission: {escape(', '.join(errors))}", highlight=False)


def _grade(  # noqa: ANN202
    assignment: str, submission: Path, mode: str, course: Path | None, data_root: Path | None, sandbox: str = "",
    again: bool = False,
):
    """Grade a folder, or a zip unpacked first (before anything starts, so a bad zip costs nothing)."""
    from grader.batch.discover import UnsafeZip, unpacked

    try:
        with unpacked(submission) as folder:
            result = _grade_folder(assignment, folder, mode, course, data_root, sandbox, again)
    except UnsafeZip as exc:
        _die(str(exc))
    result.submission = str(submission)  # the zip the student named, not the folder it was unpacked into
    return result


def _grade_folder(  # noqa: ANN202
    assignment: str, submission: Path, mode: str, course: Path | None, data_root: Path | None, sandbox: str,
    again: bool,
):
    from grader.sandbox.base import SandboxError
    from grader.sandbox.choice import SandboxChoice

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # the CLI's main thread: a handler may be set
        signal.signal(signal.SIGTERM, _on_term)
    try:
        local = SandboxChoice.resolve(sandbox).kind == "local"
    except SandboxError:
        local = False  # said by _sandbox below
    if local:
        from grader.sandbox.local import prestart_for

        prestart_for(course, assignment, many=again)  # its torch import overlaps the judge's, just below
    from grader.data import DataError
    from grader.grading import grade  # imports torch: after the template started
    from grader.judge.outcome import JudgeConfigError

    try:
        sb = _sandbox(sandbox)
        return grade(_locate(course), assignment, submission, mode=mode, data_root=data_root, sandbox=sb)  # type: ignore[arg-type]
    except (SpecError, DataError, SandboxError, JudgeConfigError) as exc:
        _die(str(exc))


@app.command()
def check(
    assignment: Annotated[str, typer.Argument(help="assignment id, e.g. exp1")],
    submission: Annotated[Path, typer.Argument(help="the folder with your files, or a .zip of it")],
    course: CourseOpt = None,
    data_root: DataRootOpt = None,
    sandbox: SandboxOpt = "",
    as_json: Annotated[bool, typer.Option("--json", help="print results.json instead of a table")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="check again each time a file in the folder is saved (Ctrl-C stops)")
    ] = False,
) -> None:
    """Run the public checks on your folder, in a sandbox. Exit 0 if every check passed."""
    args = _validated(assignment=assignment, submission=submission)
    if watch and not args.submission.is_dir():
        _die(f"--watch needs a folder, not {args.submission.name}: unzip it and watch the folder you edit")
    try:
        code = _check_once(args, course, data_root, sandbox, as_json, again=watch)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    if not watch:
        raise typer.Exit(code)
    from grader.watch import MAX_ENTRIES, snapshot, wait_for_change

    # One process for the whole watch: the judge keeps torch and its data loaded and the warm template stays
    # up, so a re-check costs the checks themselves. Each re-check still gets a fresh sandboxed contestant.
    last = snapshot(args.submission)
    if len(last) >= MAX_ENTRIES:
        err.print(f"[yellow]note:[/yellow] {escape(str(args.submission))} holds more than {MAX_ENTRIES} files and "
                  "folders; only the first ones are watched: point --watch at the submission folder itself",
                  highlight=False)  # fmt: skip
    try:
        while True:
            err.print(f"watching {escape(str(args.submission))}: save a file to check again, Ctrl-C to stop",
                      highlight=False)  # fmt: skip
            last = wait_for_change(args.submission, last)
            out.rule(f"{escape(args.submission.name)} changed: checking again")
            _check_once(args, course, data_root, sandbox, as_json, again=True)
    except KeyboardInterrupt as exc:
        err.print("stopped watching", highlight=False)
        raise typer.Exit(_exit_code(exc)) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI job cancelled, `timeout`), raised where Ctrl-C would be: it leaves through the same finally
    blocks, which remove the contestant and its folders. A KeyboardInterrupt, because pytest lets only that
    out of a running check."""


def _on_term(signum: int, frame: object) -> None:
    raise Terminated()


def _exit_code(exc: KeyboardInterrupt) -> int:
    return 143 if isinstance(exc, Terminated) else 130


def _interrupted(exc: KeyboardInterrupt) -> NoReturn:
    """Ctrl-C or SIGTERM while grading: the contestant and its folders are gone and nothing half-graded is
    printed or written."""
    err.print("interrupted: nothing was graded", highlight=False)
    raise typer.Exit(_exit_code(exc))


def _check_once(args: RunInput, course: Path | None, data_root: Path | None, sandbox: str, as_json: bool,
                again: bool = False) -> int:  # fmt: skip
    """One run of the public checks, printed; the exit code `grader check` gives for it. `again`: more follow
    (`--watch`)."""
    result = _grade(args.assignment, args.submission, "check", course, data_root, sandbox, again)
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        _print_result(result, f"{args.assignment}: public checks on {args.submission}", "with --json")
    costly = [f.name for f in result.files if f.problem]
    if costly and not as_json:
        err.print(f"[red]not ready to submit:[/red] {escape(', '.join(costly))} will cost points when graded (see the "
                  "problems above), whatever the public checks say", highlight=False)
    if any(c.status == "error" for c in result.checks):
        return 2
    return 0 if result.passed and not costly and not result.deducted else 1


@app.command("grade")
def grade_cmd(
    assignment: Annotated[str, typer.Argument(help="assignment id, e.g. exp1")],
    submission: Annotated[Path, typer.Argument(help="the student's folder, or a .zip of it")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder for results.json, gradescope/results.json, report.md")],
    course: CourseOpt = None,
    data_root: DataRootOpt = None,
    sandbox: SandboxOpt = "",
) -> None:
    """Run public and hidden checks and write the reports. Exit 0 once graded, whatever the score."""
    from grader.report import write_reports

    args = _validated(assignment=assignment, submission=submission, out=out_dir)
    try:
        result = _grade(args.assignment, args.submission, "grade", course, data_root, sandbox)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    files = write_reports(result, out_dir)
    _print_result(result, f"{assignment}: {submission}")
    for name, path in files.items():
        out.print(f"  {name}: {path}", highlight=False)
    if any(c.status == "error" for c in result.checks):
        raise typer.Exit(2)  # the reports are written, but the grade is not one to trust


@app.command("release")
def release_cmd(
    assignment: Annotated[str, typer.Argument(help="assignment id")],
    check_only: Annotated[bool, typer.Option("--check", help="write nothing; exit 1 if a stub is stale")] = False,
    course: CourseOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="py: the .py stub; ipynb: the student notebook and "
                                     "nbgrader's source notebook (grader.release_notebook)")] = "py",
) -> None:
    """Regenerate the student stub (and the solution/stub examples) from solutions/<id>/."""
    c = _locate(course)
    if fmt not in ("py", "ipynb"):
        _die(f"--format {fmt!r}: expected py or ipynb")
    try:
        c.spec(assignment)
        stale = release(c, assignment, check=check_only, fmt=fmt)
    except (SpecError, ReleaseError) as exc:
        _die(str(exc))
    for path in stale:
        out.print(f"{'stale' if check_only else 'wrote'}: {path.relative_to(c.root)}", highlight=False, markup=False)
    if not stale:
        out.print(f"{assignment}: stubs are up to date")
    raise typer.Exit(1 if check_only and stale else 0)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="the new course folder")],
    samples: Annotated[str, typer.Option("--samples", help="bundled assignments to copy in, e.g. exp1,softmax")] = "",
) -> None:
    """Create a course folder (course.toml, README), optionally with bundled sample assignments."""
    from grader.init_course import init_course

    try:
        done = init_course(folder, [s for s in samples.split(",") if s])
    except SpecError as exc:
        _die(str(exc))
    for line in done:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    first = next((s for s in samples.split(",") if s), "linreg")
    out.print(f"next: cd {folder} && grader new linreg   (or: grader validate {first}; grader selftest {first})",
              highlight=False, markup=False, soft_wrap=True)  # fmt: skip


@app.command()
def new(
    assignment: Annotated[str, typer.Argument(help="the new assignment's id (also the student's module name)")],
    course: CourseOpt = None,
) -> None:
    """Scaffold a small complete assignment that grades to full marks; edit it into yours."""
    from grader.new_assignment import scaffold

    c = _locate(course)
    try:
        written = scaffold(c, assignment)
    except SpecError as exc:
        _die(str(exc))
    for path in written:
        out.print(f"wrote {path.relative_to(c.root)}", highlight=False, markup=False)
    out.print(f"next: grader validate {assignment} && grader selftest {assignment}", highlight=False, markup=False)


@app.command()
def validate(
    assignment: Annotated[str | None, typer.Argument(help="assignment id (default: every assignment)")] = None,
    no_sandbox: Annotated[bool, typer.Option("--no-sandbox", help="skip importing probes.py in the sandbox")] = False,
    sandbox: SandboxOpt = "",
    course: CourseOpt = None,
) -> None:
    """Check an assignment without grading: spec, probes, checks, visibility, stub, points, expected scores.
    Exits 2 when anything is wrong (each problem one line: file, field or line, what to do)."""
    from grader.data import datasets
    from grader.validate import validate as run_validate

    c = _locate(course)
    ids = [assignment] if assignment else c.assignment_ids()
    if not ids:
        _die(f"{c.root} has no assignments yet: create one with `grader new ID`")
    try:
        known = set(datasets(c.root))
    except SpecError as exc:
        _die(str(exc))
    sb = None if no_sandbox else _sandbox(sandbox)
    errors = 0
    for aid in ids:
        findings = run_validate(c, aid, sb, known)
        errors += sum(f.level == "error" for f in findings)
        for f in findings:
            (err if f.level == "error" else out).print(str(f), highlight=False, markup=False, soft_wrap=True)
        if not any(f.level == "error" for f in findings):
            checks = c.spec(aid).checks
            points = sum(check.points for check in checks if check.enabled)
            out.print(f"[green]ok[/green] {escape(aid)}: {len(checks)} checks, {points:g} points")
    raise typer.Exit(2 if errors else 0)


@app.command()
def selftest(
    assignment: Annotated[str | None, typer.Argument(help="assignment id (default: every assignment)")] = None,
    data_root: DataRootOpt = None,
    sandbox: SandboxOpt = "",
    course: CourseOpt = None,
) -> None:
    """Grade every example and compare with examples/<id>/expected.toml; exit 1 on any difference."""
    from grader.data import DataError
    from grader.selftest import selftest as run_selftest

    c = _locate(course)
    ids = [assignment] if assignment else c.assignment_ids()
    differ = 0
    for aid in ids:
        def show(o, aid=aid) -> None:  # noqa: ANN001
            mark = "[green]ok[/green]" if not o.diffs else "[red]DIFFERS[/red]"
            out.print(f"{mark} {escape(aid)}/{escape(o.example)}: {o.score:g} (expected {o.expected_score:g})")
            for d in o.diffs:
                out.print(f"    {d}", highlight=False, markup=False, soft_wrap=True)

        try:
            outcomes = run_selftest(c, aid, data_root, on_outcome=show)
        except (SpecError, DataError) as exc:
            _die(str(exc))
        differ += sum(bool(o.diffs) for o in outcomes)
    raise typer.Exit(1 if differ else 0)


@app.command()
def demo(
    assignment: Annotated[str, typer.Argument(help="assignment id")] = "exp1",
    out_dir: Annotated[Path, typer.Option("--out", help="where the reports go")] = Path("out/demo"),
    course: CourseOpt = None,
    data_root: DataRootOpt = None,
) -> None:
    """Grade every bundled example submission of an assignment and print a score table."""
    from grader.report import write_reports

    c = _locate(course)
    if not c.examples_dir(assignment).is_dir():
        _die(f"{assignment} has no bundled examples under {c.examples_dir(assignment)}")
    examples = sorted(p for p in c.examples_dir(assignment).iterdir() if p.is_dir())
    table = Table(title=f"{assignment}: bundled examples")
    table.add_column("example")
    table.add_column("score", justify="right")
    table.add_column("failed checks", overflow="fold")
    for ex in examples:
        result = _grade(assignment, ex, "grade", course, data_root)
        write_reports(result, out_dir / assignment / ex.name)
        failed = ", ".join(ch.id for ch in result.checks if ch.status != "passed") or "-"
        table.add_row(ex.name, f"{result.score:.4g}/{result.max_score:.4g}", failed)
    out.print(table)
    out.print(f"reports: {out_dir / assignment}/<example>/report.md", highlight=False)


class _BatchProgress:
    """The batch's rich progress bar: done, failed and running counts with an ETA."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("failed {task.fields[failed]}  running {task.fields[running]}"),
                            TimeRemainingColumn(), console=err, transient=False)  # fmt: skip
        self.task = self.bar.add_task("grading", start=False, total=None, failed=0, running=0)
        self.running: set[str] = set()
        self.failed = 0

    def planned(self, total: int, skipped: int) -> None:
        if skipped:
            err.print(f"{skipped} submission(s) unchanged since the last run: skipped (--regrade grades them again)")
        self.bar.start()
        self.bar.update(self.task, total=total)
        self.bar.start_task(self.task)

    def event(self, ev) -> None:  # noqa: ANN001
        if ev.kind == "start":
            self.running.add(ev.student)
        elif ev.kind in ("done", "crashed"):
            self.running.discard(ev.student)
            self.failed += ev.failed
            self.bar.advance(self.task)
        elif ev.kind == "note":
            self.bar.console.print(f"[yellow]note:[/yellow] {ev.payload}", highlight=False)
        self.bar.update(self.task, failed=self.failed, running=len(self.running))

    def stop(self) -> None:
        self.bar.stop()


@app.command("batch")
def batch_cmd(
    assignment: Annotated[str, typer.Argument(help="assignment id, e.g. exp2")],
    submissions: Annotated[Path, typer.Argument(help="folder of student folders or zips, or an export zip")],
    out_dir: Annotated[Path, typer.Option("--out", help="output folder (also where resume state lives)")],
    roster: Annotated[Path | None, typer.Option("--roster", help="CSV: id, name, email, aliases")] = None,
    rubric: Annotated[Path | None, typer.Option("--rubric", help="manual scores CSV (default OUT/rubric.csv)")] = None,
    workers: Annotated[int | None, typer.Option("--workers", "-j", help="parallel grading workers (default 1; "
                                                "with --ray, what the cluster fits)")] = None,
    gpus: Annotated[str, typer.Option("--gpus", help="CUDA device ids for the workers, e.g. 0,1")] = "",
    chunk: Annotated[int, typer.Option("--chunk", help="most submissions a worker takes at a time")] = 8,
    threads: Annotated[int | None, typer.Option("--threads", help="torch threads per worker")] = None,
    nbgrader_db: Annotated[str | None, typer.Option("--nbgrader-db", help="export into this nbgrader gradebook, "
                                                    "e.g. sqlite:///gradebook.db")] = None,  # fmt: skip
    regrade: Annotated[bool, typer.Option("--regrade", help="ignore saved results")] = False,
    similarity: Annotated[bool, typer.Option("--similarity", help="also compare the class's code and models "
                                             "(as grader similarity OUT)")] = False,  # fmt: skip
    canvas_column: Annotated[str | None, typer.Option("--canvas-column", help="canvas.csv's assignment column as "
                             "Canvas's gradebook export names it, e.g. 'Lab 2 (12345)' (default: the assignment's "
                             "title)")] = None,  # fmt: skip
    course: CourseOpt = None,
    data_root: DataRootOpt = None,
    sandbox: SandboxOpt = "",
    ray: Annotated[str | None, typer.Option("--ray", help="grade on a Ray cluster: auto, local or ray://host:port "
                                            "(docs/scale.md)")] = None,
    gpu_per_submission: Annotated[float | None, typer.Option("--gpu-per-submission", help="with --ray: the GPU "
                                                             "share of each judge, e.g. 0.25")] = None,
) -> None:
    """Grade a whole class in parallel. Ctrl-C stops cleanly; the same command again resumes.

    Writes OUT/students/<id>/ (report.html, report.md, results.json, gradescope/results.json), OUT/gradebook.csv,
    OUT/canvas.csv, OUT/summary.html, OUT/rubric.csv (a template, when the assignment has rubric items) and
    OUT/batch.json; with --similarity also OUT/similarity.csv, similarity.json and similarity/ (side-by-side
    code). Exit 0 once the class is graded, 130 when interrupted, 2 on bad input or a mistake in the course."""
    from grader.batch.roster import RosterError
    from grader.batch.run import BatchOptions, NothingFound, run_batch
    from grader.batch.runner import PoolError
    from grader.data import DataError
    from grader.sandbox.base import SandboxError
    from grader.sandbox.choice import SandboxChoice

    if not submissions.exists():
        _die(f"{submissions}: no such file or folder; pass the folder of submissions or the export zip")
    # Instructor mistakes in the options stop here, before any grading: found afterwards they would cost a run.
    if rubric is not None and not rubric.is_file():
        _die(f"--rubric {rubric}: {'a folder, not a file' if rubric.is_dir() else 'no such file'}; pass the rubric "
             f"CSV you filled in (`grader rubric template {assignment}` writes an empty one), or leave --rubric out "
             "to use OUT/rubric.csv")  # fmt: skip
    if canvas_column is not None and not canvas_column.strip():
        _die("--canvas-column: empty; give the assignment's column header as Canvas's own gradebook export (Grades "
             "> Export) names it, e.g. 'Lab 2 (12345)'")  # fmt: skip
    try:
        opts = BatchOptions(assignment=assignment, submissions=submissions, out=out_dir, roster=roster,
                            rubric=rubric, workers=workers, gpus=[g for g in gpus.split(",") if g.strip()],
                            chunk=chunk, threads=threads, sandbox=SandboxChoice.resolve(sandbox),
                            data_root=data_root, nbgrader_db=nbgrader_db, regrade=regrade, ray=ray,
                            gpu_per_submission=gpu_per_submission, similarity=similarity,
                            canvas_column=canvas_column)  # fmt: skip
    except ValidationError as exc:
        _die(format_validation_error("command line", exc))
    progress = _BatchProgress()
    try:
        report = run_batch(_locate(course), opts, progress)
    except (SpecError, DataError, SandboxError, RosterError, NothingFound) as exc:
        progress.stop()
        _die(str(exc))
    except PoolError as exc:  # a worker that cannot start (a batch_prefetch module that does not exist), a check
        progress.stop()       # file that does not import, an unreachable Ray cluster: the message says which
        _die(str(exc))
    progress.stop()
    _print_batch(report)
    if report.grader_errors and not report.interrupted:
        _die(f"{report.grader_errors} submission(s) have checks that could not run on the grader's side (status "
             "grader-error; each check's message says why: a mistake in the course, or a fault of the grading "
             "machine): their totals are left empty, and no student lost points. Fix it, then run the same "
             "command again, which grades them again")  # fmt: skip
    raise typer.Exit(130 if report.interrupted else 0)


def _print_batch(report) -> None:  # noqa: ANN001
    table = Table(title=f"{report.assignment}: {report.students} students ({report.input_kind})")
    for col in ("student", "total", "status", "time (s)"):
        table.add_column(col, justify="right" if col in ("total", "time (s)") else "left")
    for row in report.rows:
        r = row.result
        total = f"{r.total:g} / {r.max_total:g}" if r and row.status != "grader-error" else "-"
        table.add_row(row.student.id, total, row.status, f"{row.duration_s:.1f}" if r else "-")
    out.print(table)
    out.print(f"graded now {report.graded_now}, unchanged {report.skipped_unchanged}, crashed {report.crashed}, "
              f"missing {report.missing}; {report.wall_s:.1f} s", highlight=False)  # fmt: skip
    for p in report.problems:
        err.print(f"[yellow]problem:[/yellow] {escape(str(p))}", highlight=False)
    for n in report.notes:
        err.print(f"note: {escape(str(n))}", highlight=False)
    if report.interrupted:
        err.print("[red]interrupted:[/red] run the same command again to grade the rest", highlight=False)
    for name, path in report.outputs.items():
        out.print(f"  {name}: {path}", highlight=False)


@app.command("similarity")
def similarity_cmd(
    out_dir: Annotated[Path, typer.Argument(help="a finished batch's output folder (grader batch --out)")],
    course: CourseOpt = None,
    data_root: DataRootOpt = None,
) -> None:
    """Pairs of submissions whose code or trained models are unusually alike. Nothing changes a grade.

    Code: copydetect with the released stub as boilerplate. Models: identical weight files, weights near-identical
    once the shared starting checkpoint is removed, test-set predictions that agree far more than the class's
    other pairs do (see README, "Integrity"). Writes OUT/similarity.csv, OUT/similarity.json, side-by-side code
    pages under OUT/similarity/ and the similarity section of OUT/summary.html. Exit 0 when done (whatever it
    found), 2 on bad input."""
    from grader.batch.similarity import SimilarityError, run_similarity, splice_summary

    if not out_dir.is_dir():
        _die(f"{out_dir}: no such folder; pass the --out folder of a finished `grader batch`")
    try:
        report, written = run_similarity(Course.locate(course), out_dir, data_root)
    except (SimilarityError, SpecError) as exc:
        _die(str(exc))
    if splice_summary(out_dir.resolve(), report):
        written["summary"] = str(out_dir / "summary.html")
    else:
        err.print("note: no summary.html with a similarity section to update; run the batch again to write one",
                  highlight=False)  # fmt: skip
    table = Table(title=f"{report.assignment}: {len(report.flagged)} flagged of {len(report.pairs)} pairs "
                        f"({len(report.students)} students)")  # fmt: skip
    for col in ("pair", "signals", "evidence"):
        table.add_column(col)
    for p in report.flagged:
        table.add_row(f"{p.a} / {p.b}", ", ".join(p.flags), "\n".join(p.evidence))
    out.print(table)
    for s in report.signals:
        out.print(f"{s.signal}: {s.rule}", highlight=False)
    for n in report.notes:
        err.print(f"note: {n}", highlight=False)
    for name, path in written.items():
        out.print(f"  {name}: {path}", highlight=False)


rubric_app = typer.Typer(help="Manual rubric items (written reports).", no_args_is_help=True)
app.add_typer(rubric_app, name="rubric")


@rubric_app.command("template")
def rubric_template_cmd(
    assignment: Annotated[str, typer.Argument(help="assignment id")],
    roster: Annotated[Path | None, typer.Option("--roster", help="roster CSV: one row per student")] = None,
    course: CourseOpt = None,
) -> None:
    """Print an empty rubric CSV (student_id, <item>, <item>_comment) to fill in and pass to `grader batch`."""
    from grader.batch.roster import RosterError, read_roster
    from grader.batch.rubric import rubric_template

    try:
        spec = _locate(course).spec(assignment)
        students = read_roster(roster)[0] if roster else []
    except (SpecError, RosterError) as exc:
        _die(str(exc))
    if not spec.rubric:
        _die(f"{assignment} has no [[rubric]] items in its assignment.toml")
    typer.echo(rubric_template(spec, students), nl=False)


image_app = typer.Typer(help="Build the grading image for the Docker sandbox.", no_args_is_help=True)
app.add_typer(image_app, name="image")


@image_app.command("build")
def image_build(
    cpu: Annotated[bool, typer.Option("--cpu", help="CPU image")] = False,
    cuda: Annotated[bool, typer.Option("--cuda", help="CUDA image (the default)")] = False,
    base_image: Annotated[str | None, typer.Option("--base-image", help="the BASE_IMAGE build arg")] = None,
    tag: Annotated[str | None, typer.Option("--tag")] = None,
    wheels: Annotated[Path | None, typer.Option("--wheels", help="wheels to prefer over the index")] = None,
    ca_bundle: Annotated[Path | None, typer.Option("--ca-bundle", help="CA bundle for pip inside the build")] = None,
    torch_index_url: Annotated[
        str | None, typer.Option("--torch-index-url", help="extra index for torch ('' for none; default for --cpu: "
                                 "the CPU index)")] = None,  # fmt: skip
) -> None:
    """Build torch-grader:cpu or torch-grader:cuda from docker/Dockerfile."""
    from grader import image
    from grader.sandbox.base import SandboxError

    if cpu and cuda:
        _die("--cpu and --cuda exclude each other")
    try:
        plan = image.plan("cpu" if cpu else "cuda", base_image, tag, wheels, torch_index_url, None, ca_bundle)
        built = image.build(plan, log=lambda line: err.print(line, highlight=False, markup=False))
    except SandboxError as exc:
        _die(str(exc))
    out.print(f"built {built.tag}: {built.size_bytes / 1e9:.2f} GB in {built.seconds:.0f} s")


data_app = typer.Typer(help="Provision the datasets assignments need.", no_args_is_help=True)
app.add_typer(data_app, name="data")
from grader.ci.cli import ci_app  # noqa: E402

app.add_typer(ci_app, name="ci")


@data_app.command("prepare")
def data_prepare(
    dataset: Annotated[str, typer.Argument(help="cifar10, fashion-mnist, timemachine, or one the course declares")],
    root: Annotated[Path, typer.Option("--root", help="dataset root to fill")],
    course: CourseOpt = None,
) -> None:
    """Provision a dataset into ROOT (its own prepare(): a download for the built-in ones), or explain how to
    provision it offline."""
    from grader.data import DataError, prepare

    try:
        course_root = Course.locate(course).root
    except SpecError:
        course_root = None  # outside a course: the built-in datasets only
    try:
        out.print(prepare(dataset, root, course_root), highlight=False, markup=False, soft_wrap=True)
    except (DataError, SpecError) as exc:
        _die(str(exc), code=1)


@assets_app.command("build")
def assets_build(
    assignment: Annotated[str, typer.Argument(help="assignment id")],
    only: Annotated[list[str] | None, typer.Option("--only", help="build only these examples")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="dataset root for training")] = None,
    course: CourseOpt = None,
) -> None:
    """Train the weights of the bundled examples by running each example's own script in its folder.

    The plan comes from solutions/<id>/assets.json. These are the course's own files (trusted), so they run as
    plain subprocesses, one thread each, with the seeds fixed in the scripts."""
    from grader.assets import AssetsError, build_assets

    c = _locate(course)
    try:
        build_assets(c, assignment, only=only, data_root=data_root, log=out.print)
    except (AssetsError, SpecError) as exc:
        _die(str(exc))


gradescope_app = typer.Typer(help="Gradescope: the autograder zip for an assignment.", no_args_is_help=True)
app.add_typer(gradescope_app, name="gradescope")


@gradescope_app.command("build")
def gradescope_build(
    assignment: Annotated[str, typer.Argument(help="assignment id, e.g. exp1")],
    out_zip: Annotated[Path, typer.Option("--out", help="the zip to upload to Gradescope")] = Path("autograder.zip"),
    torch_build: Annotated[str, typer.Option("--torch", help="cpu (default) or cuda")] = "cpu",
    data_root: Annotated[Path | None, typer.Option("--data-root", help="bundle the datasets from this root "
                                                   "(else setup.sh provisions them)")] = None,  # fmt: skip
    pins: Annotated[Path | None, typer.Option("--requirements", help="pinned requirements to ship instead of "
                                              "this environment's versions")] = None,  # fmt: skip
    wheel: Annotated[Path | None, typer.Option("--wheel", help="the grader wheel to ship (default: build it)")] = None,
    no_leaderboard: Annotated[bool, typer.Option("--no-leaderboard", help="leave the measured accuracy out")] = False,
    course: CourseOpt = None,
) -> None:
    """Build the Gradescope autograder zip: setup.sh and run_autograder at its root (docs/gradescope.md)."""
    from grader.gradescope.build import BuildError, build_bundle, summary

    if torch_build not in ("cpu", "cuda"):
        _die(f"--torch {torch_build!r}: expected cpu or cuda")
    try:
        built = build_bundle(Course.locate(course), assignment, out_zip, torch=torch_build,  # type: ignore[arg-type]
                             data_root=data_root, pins=pins, wheel=wheel, leaderboard=not no_leaderboard)  # fmt: skip
    except (SpecError, BuildError) as exc:
        _die(str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. the wheel build (SandboxError) or a full disk
        _die(f"could not build {out_zip}: {exc}")
    for line in summary(built):
        out.print(line, highlight=False)


if __name__ == "__main__":
    app()
