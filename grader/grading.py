"""Grade one submission: the pipeline from a folder to a `GradeResult`.

The steps, in order (each needs the one before it):
    1. spec     load and validate assignment.toml
    2. intake   find the declared files, sizes, hashes; a bad file fails only the checks that read it
    3. stage    copy the usable files to a private folder: the sandbox sees nothing else
    4. judge    pytest runs the checks here, in the trusted process; the contestant (student code) is
                started lazily in the sandbox by the first check that needs it
    5. result   one CheckResult per selected check, in assignment.toml's order
Rendering the result into files is grader.report's job.
"""

from __future__ import annotations

import ast
import platform
import re
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from grader import __version__
from grader.cuda_on_cpu import CHOOSE_DEVICE
from grader.data import resolve_data_root
from grader.intake import IntakeError, Submission, intake
from grader.judge.client import STARTUP_TIMEOUT_S, ContestantClient, ModuleImport
from grader.judge.plugin import MISSING_NAME, GraderPlugin, run_checks
from grader.judge.source_rules import package_problems, point_at_definitions, rule_problems
from grader.loader import GUARD, NOTEBOOK_GUARD, definitions, statement_line
from grader.notebook import Converted
from grader.results import CheckResult, Environment, FileRecord, GradeResult, Location, Mode, Problem
from grader.sandbox.base import ContestantJob, LoadPlan, Sandbox
from grader.sandbox.choice import SandboxChoice
from grader.spec import AssignmentSpec, Course


def check_files(course: Course, spec: AssignmentSpec, mode: Mode) -> list[Path]:
    public = sorted((course.assignment_dir(spec.id) / "checks").glob("test_*.py"))
    hidden = sorted((course.solution_dir(spec.id) / "hidden_checks").glob("test_*.py")) if mode == "grade" else []
    return public + hidden


def check_folders(course: Course, spec: AssignmentSpec, mode: Mode) -> list[Path]:
    """Folders whose helper modules the checks import (`from exp2_judge import ...`): put on sys.path."""
    folders = [course.assignment_dir(spec.id) / "checks"]
    return folders + [course.solution_dir(spec.id) / "hidden_checks"] if mode == "grade" else folders


def uses_graphs(folders: list[Path]) -> bool:
    """Whether the checks measure models in the judge's graph runner (they, or a helper next to them, import
    grader.judge.measured or grader.graphs): then the runner starts ahead, while the contestant starts."""
    return any(
        "grader.judge.measured" in (text := f.read_text(encoding="utf-8", errors="replace")) or "grader.graphs" in text
        for folder in folders
        for f in folder.glob("*.py")
    )


def selected_checks(
    spec: AssignmentSpec, mode: Mode, only: list[str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """The checks to run, and those left out with the reason (not counted in the score)."""
    run, skipped = [], {}
    for c in spec.checks:
        if (mode == "check" and c.visibility != "visible") or (only is not None and c.id not in only):
            continue
        if not c.enabled:
            skipped[c.id] = "disabled in assignment.toml"
        elif c.needs_gpu and not torch.cuda.is_available():
            skipped[c.id] = "needs a GPU; this grader has none"
        else:
            run.append(c.id)
    return run, skipped


def environment(sandbox: Sandbox, isolation: dict[str, str]) -> Environment:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return Environment(
        grader_version=__version__,
        python=platform.python_version(),
        torch=torch.__version__,
        device=device,
        platform=f"{platform.system()} {platform.machine()}",
        sandbox={**sandbox.describe(), **isolation},
    )


def contestant_lifetime(spec: AssignmentSpec) -> float:
    """A contestant's hard deadline: starting up, then every check's timeout, with a minute to spare."""
    return STARTUP_TIMEOUT_S + sum(c.timeout for c in spec.checks) + 60


# A statement of a definitions-only import that failed for a reason of its own, not for a package grading lacks.
_FROM_OWN = re.compile(r"ImportError: cannot import name '[^']+' from '([\w.]+)'")  # Python's own wording
_FAILED_ITSELF = re.compile(r"\((?:raised (?!ModuleNotFoundError\)|ImportError\))\w+|ran past [^)]*)\)$")


# A full import that took this share of the budget (and at least SLOW_IMPORT_S, past any package's import on a busy
# machine) runs something heavy at import, training most often: it is within the rules, but the same code on a
# slower machine, or with more epochs, would run past the budget.
SLOW_IMPORT_SHARE, SLOW_IMPORT_S = 0.25, 5.0


def _slow_import(spec: AssignmentSpec, name: str, seconds: float, source: str, notebook: Converted | None
                 ) -> Problem | None:  # fmt: skip
    """A note that costs nothing for a full import that was slow because the module runs code at import (a
    top-level call or loop, as a definitions-only import would leave out); None when it runs none (a slow import
    of packages is not the student's to fix)."""
    try:
        tree = ast.parse(source)
        keep, left = definitions(tree, source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    own = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}

    def calls_own(node: ast.stmt) -> bool:
        return not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and any(
            isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in own for c in ast.walk(node))

    left_lines = {lo.line for lo in left}
    # the statement that most likely took the time: one that runs the module's own code, a bare call or loop
    # first (main(), for lr in lrs: train(...)), then an assignment (losses = train(...)); else a top-level loop,
    # else the first statement a definitions-only import leaves out
    runs = [n for n in tree.body if n in keep or n.lineno in left_lines]  # not the main guard's body
    running = sorted((n for n in runs if calls_own(n)), key=lambda n: n.lineno not in left_lines)
    loops = [n for n in tree.body if n.lineno in left_lines and isinstance(n, (ast.For, ast.While))]
    chosen = (running or loops or [n for n in runs if n.lineno in left_lines] or [None])[0]
    if chosen is None:
        return None
    at = f"line {chosen.lineno} "
    if notebook is not None:
        cell = notebook.position(chosen.lineno)
        at = f"cell {cell[0]}, line {cell[1]} " if cell else ""
    guard = NOTEBOOK_GUARD if notebook else GUARD.replace("the file", f"{name}.py")
    file = (notebook.file or f"{name}.ipynb") if notebook else f"{name}.py"
    return Problem(id=f"import:{name}", message=(
        f"{file} took {seconds:.1f} s to import: it runs code at import ({at}`{statement_line(source, chosen)}`, "
        f"among others). It was graded as it is and this costs nothing, but an import that runs past "
        f"{spec.imports.cpu_seconds:g} s of CPU time is graded from its definitions only, for "
        f"{spec.imports.fallback_penalty:.0%} of the points: {guard}"))  # fmt: skip


def cuda_on_cpu_note(where: list[Location]) -> Problem:
    """Student code asked for CUDA on a machine without it, and was graded with CUDA mapped to the CPU."""
    last = where[-1] if where else None
    at = f" ({last.where()}{'' if last.function in ('', '<module>') else f', in {last.function}'})" if last else ""
    return Problem(id="cuda", locations=where[-1:], message=(
        f"your code asks for CUDA{at}, which this grading machine does not have: it was run with CUDA mapped to the "
        f"CPU and graded as a machine with a GPU would grade it, so this costs nothing. On a machine without a GPU "
        f"it stops there: {CHOOSE_DEVICE}"))  # fmt: skip


def import_problems(
    spec: AssignmentSpec, imports: dict[str, ModuleImport], max_score: float, said: set[str],
    sources: dict[str, str] | None = None, notebooks: dict[str, Converted] | None = None,
) -> list[Problem]:  # fmt: skip
    """One problem per student module whose full import went wrong, with the fallback's penalty when only its
    definitions could be graded (the checks then pass or fail on their own merits: the slip is charged once); a
    note that costs nothing for one whose import was slow but finished because it runs code at import.
    `sources`: file name -> its source as imported; `notebooks`: module -> the notebook that stood in for it."""
    out = []
    # A helper module (intake) that imports a package grading lacks: the scan said so, naming the helper.
    helpers_said = {s for s in said if s.startswith("packages:")} - {f"packages:{m}.py" for m in spec.modules}
    for name, record in sorted(imports.items()):
        first = record.problem
        if first is None:
            source = (sources or {}).get(f"{name}.py")
            limit = max(SLOW_IMPORT_S, SLOW_IMPORT_SHARE * spec.imports.cpu_seconds)
            if record.mode == "full" and record.seconds >= limit and source:
                if note := _slow_import(spec, name, record.seconds, source, (notebooks or {}).get(name)):
                    out.append(note)
            continue
        message, points, details, fallback = first.message, 0.0, [], record.mode == "definitions"
        # a package alone costs nothing, nor a name only skipped cells set: only what fails by itself
        charged = fallback and first.kind not in ("package", "skipped_name")
        own = _FROM_OWN.search(first.message)
        helper = imports.get(own.group(1).split(".")[0]) if own else None
        if helper is not None and helper.problem is not None:
            continue  # it imports a name its helper module lost to that module's own problem: charged there
        if first.kind == "package" and (f"packages:{name}.py" in said or helpers_said):
            # The package is said once, by the source scan; the full import stopped at it, so whether the rest
            # runs code at import shows only in what the definitions-only import left out after failing itself.
            failed = [lo for lo in record.left_out if _FAILED_ITSELF.search(lo)] if fallback else []
            if not failed:
                continue
            file = first.where[0].file if first.where else f"{name}.py"
            guard = NOTEBOOK_GUARD if file.endswith(".ipynb") else GUARD.replace("the file", file)
            message, charged = f"{file} also runs code when imported that fails by itself ({failed[0]}): {guard}", True
        if charged:
            points = round(spec.imports.fallback_penalty * max_score, 4)
            message += (f". The grader then imported only its definitions (imports, functions, classes and "
                        f"assignments) and graded those; this costs {spec.imports.fallback_penalty:.0%} of the "
                        "points")  # fmt: skip
            details = [f"left out: {lo}" for lo in record.left_out]
        elif record.mode == "failed":
            message += ". Not even its definitions could be imported, so every check that needs it fails"
        out.append(Problem(id=f"import:{name}", message=message, points=points,
                           locations=list(first.where), details=details))  # fmt: skip
    return out


def contestant_job(
    course: Course, spec: AssignmentSpec, staged: Path, data_root: Path | None, selected: list[str] | None = None,
    helpers: list[str] | None = None,
) -> ContestantJob:
    """What the sandbox needs to start a contestant on the staged submission, for the `selected` checks;
    `helpers`: the student's own modules staged with it, which its modules may import."""
    return ContestantJob(
        submission=staged,
        probes=course.assignment_dir(spec.id) / spec.probes,
        limits=spec.limits,
        data_root=data_root,
        # A check that needs a GPU (exp2's re-run) runs only where CUDA is: its contestant gets the GPU.
        gpu=spec.needs_gpu or any(spec.check(cid).needs_gpu for cid in selected or []),
        private=(course.root,),
        lifetime_s=contestant_lifetime(spec),
        loading=LoadPlan(
            modules=tuple(spec.modules), cpu_seconds=spec.imports.cpu_seconds,
            wall_seconds=spec.imports.wall_seconds, packages=tuple(spec.imports.packages),
            helpers=tuple(helpers or ()),
        ),
    )  # fmt: skip


def notebook_problems(notebooks: dict[str, Converted]) -> list[Problem]:
    """A notebook cell that is not valid Python was left out (Jupyter too runs the others): said once, costing
    only what the checks that need its code lose."""
    out = []
    for name, nb in sorted(notebooks.items()):
        if nb.broken:
            file = name[:-3] + ".ipynb"
            cells = "; ".join(f"cell {c}, line {n}: {msg} (`{nb.quote(c, n)}`)" for c, n, msg in nb.broken)
            out.append(Problem(id=f"notebook:{name}", message=f"{file} has code cells that are not valid Python, "
                               f"left out when grading ({cells}): fix them and resubmit",
                               locations=[Location(file=file, line=n, cell=c) for c, n, _ in nb.broken]))  # fmt: skip
    return out


LEFT_OUT_CELL = re.compile(r"^cell (\d+), line \d+ ")


def cells_as_run(files: list[FileRecord], imports: dict[str, ModuleImport]) -> list[FileRecord]:
    """A notebook's cells as its import really ran them: a definitions-only import left statements of some cells
    out (`partly run`); a module that could not be imported ran none."""
    out = []
    for rec in files:
        record = imports.get(rec.name[:-3])
        if not rec.cells or record is None or record.mode == "full":
            out.append(rec)
            continue
        left: dict[int, list[str]] = {}
        for text in record.left_out:
            if m := LEFT_OUT_CELL.match(text):
                left.setdefault(int(m[1]), []).append(text[m.end() - 1 :].strip())
        cells = []
        for c in rec.cells:
            if c.kind == "code" and c.status in ("run", "commented"):
                if record.mode == "failed":
                    c = c.model_copy(update={"status": "not_run", "detail": "the module could not be imported"})
                elif c.cell in left:
                    c = c.model_copy(update={"status": "partly_run", "detail": "definitions only; left out: "
                                             + "; ".join(left[c.cell][:3])})  # fmt: skip
            cells.append(c)
        out.append(rec.model_copy(update={"cells": cells}))
    return out


def _from_skipped_code(checks: list[CheckResult], notebooks: dict[str, Converted]) -> list[CheckResult]:
    """A check that failed on a function or name the module lacks, which only a skipped cell (Jupyter copies a
    cell's `training` tag with it) or a cell's main guard sets: its message says so, and what to do."""
    out = []
    for c in checks:
        gone = MISSING_NAME.search(c.message) if c.status == "failed" else None
        name = next((g for g in gone.groups() if g), "") if gone else ""
        how = next((h for nb in notebooks.values() if (h := nb.maker(name))), None) if name else None
        if how:
            c = c.model_copy(update={"message": f"{c.message} ({name}: {how}; put it in a cell that grading runs)"})
        out.append(c)
    return out


def _unrun(spec: AssignmentSpec, cid: str, message: str) -> CheckResult:
    c = spec.check(cid)
    return CheckResult(
        id=cid, name=c.name, max_score=c.points, score=0, status="failed", message=message,
        visibility=c.visibility, tags=c.tags,
    )  # fmt: skip


def grade(
    course: Course,
    assignment_id: str,
    folder: Path,
    mode: Mode = "grade",
    sandbox: Sandbox | None = None,
    data_root: Path | None = None,
    only: list[str] | None = None,
) -> GradeResult:
    """Grade `folder`. Bad submissions become results; only instructor errors (bad spec, no data) raise.

    `data_root` is the --data-root option; see grader.data for the precedence."""
    spec = course.spec(assignment_id)
    root = resolve_data_root(spec, data_root, course.root).path if spec.datasets else None
    sandbox = sandbox or SandboxChoice.resolve().build()
    started_at, t0 = datetime.now(timezone.utc), time.perf_counter()
    selected, skipped = selected_checks(spec, mode, only)
    output, isolation, timings = "", {}, {}
    problems: list[Problem] = []
    try:
        sub = intake(spec, folder)
    except IntakeError as exc:
        sub = Submission(source=folder, files=[], ignored=[])
        checks = [_unrun(spec, cid, str(exc)) for cid in selected]
    else:
        usable = [r.name for r in sub.files if r.name.endswith(".py") and r.present and r.problem is None]
        helpers = [h.name for h in sub.helpers]
        sources = {name: sub.text(name, sub.record(name).size or 0) for name in [*usable, *helpers]}
        positions = {name: nb for name in usable if (nb := sub.converted(name)) is not None}
        problems = notebook_problems(positions) + rule_problems(spec, sources, positions, helpers)
        problems += package_problems(spec, sources, positions, sub.helper_modules)
        with tempfile.TemporaryDirectory(prefix="grader-judge-") as tmp:
            staged = sub.stage(Path(tmp) / "submission")
            ini = Path(tmp) / "pytest.ini"
            ini.write_text("[pytest]\n")
            graphs = uses_graphs(check_folders(course, spec, mode))
            if graphs:
                from grader.graphs import runner
                from grader.graphs.reference import import_ahead

                runner().start_ahead()
            job = contestant_job(course, spec, staged, root, selected, sub.helper_modules)
            client = ContestantClient(sandbox, job)
            plugin = GraderPlugin(spec, sub, client, selected, root, import_ahead if graphs else None)
            try:
                run_checks(
                    plugin,
                    check_files(course, spec, mode),
                    rootdir=course.root,
                    ini=ini,
                    extra_path=check_folders(course, spec, mode),
                )
            finally:
                output = client.output()
                client.close()
            isolation = client.isolation
            timings = {"contestant_starts": client.starts, "probes": client.calls,
                       "imports": {m: i.seconds for m, i in client.imports.items()}}  # fmt: skip
        checks = [plugin.results.get(cid) or _unrun(spec, cid, "this check did not run") for cid in selected]
        checks = _from_skipped_code(point_at_definitions(spec, checks, sources, positions), positions)
        max_score = sum(c.max_score for c in checks)
        notebooks = {name[:-3]: nb for name, nb in positions.items()}
        problems += import_problems(spec, client.imports, max_score, {p.id for p in problems}, sources, notebooks)
        if client.cuda_on_cpu is not None and not plugin.charged("cuda"):  # else the charged check says it all
            problems.append(cuda_on_cpu_note(client.cuda_on_cpu))
        sub.files = cells_as_run(sub.files, client.imports)
    earned = sum(c.score for c in checks) - sum(p.points for p in problems)
    return GradeResult(
        assignment=spec.id,
        submission=str(folder),
        mode=mode,
        score=round(max(0.0, earned), 4),
        problems=problems,
        max_score=sum(c.max_score for c in checks),
        checks=checks,
        files=sub.files,
        started_at=started_at,
        duration_s=round(time.perf_counter() - t0, 3),
        environment=environment(sandbox, isolation),
        skipped=skipped,
        contestant_output=output,
        timings=timings,
    )
