"""The pytest plugin that turns an assignment's check files into scored results.

A check is a test function named `test_<check id>` in `assignments/<id>/checks/` (public) or
`solutions/<id>/hidden_checks/` (hidden). Points, visibility and timeouts come from assignment.toml, never
from the test file. Fixtures give a check what it may use: `contestant` (run probes on student code in the
sandbox), `submission` (the submitted files, weights loaded safely), `check` (notes and plot data),
`data_root` (the dataset folder).
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from grader.intake import Submission
from grader.judge.client import ContestantClient, ContestantError
from grader.judge.outcome import CheckFailed, Deferred, JudgeConfigError, Partial, deferred
from grader.judge.weights import load_weights
from grader.results import CheckResult, Confusion, Location
from grader.sandbox.base import SandboxError
from grader.spec import AssignmentSpec, CheckSpec


@dataclass
class CheckHandle:
    spec: CheckSpec
    notes: list[str] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    confusion_matrix: Confusion | None = None

    def note(self, text: str) -> None:
        """A remark shown with the result that does not change the score."""
        self.notes.append(text)

    def plot(self, name: str, values: list[float]) -> None:
        """A per-epoch series the reports draw (e.g. the claimed test accuracy)."""
        self.series[name] = [float(v) for v in values]

    def confusion(self, matrix: list[list[int]], labels: list[str]) -> None:
        """A classifier's confusion matrix (rows: true class, columns: predicted), drawn in report.html."""
        self.confusion_matrix = Confusion(labels=list(labels), matrix=matrix)



class SubmissionView:
    """What a check may read of the submission: paths and safely loaded weights. Never student code."""

    def __init__(self, submission: Submission) -> None:
        self._sub = submission

    def path(self, name: str) -> Path:
        rec = self._sub.record(name)
        return self._sub.source / (rec.found_as or rec.name)

    def text(self, name: str) -> str:
        """A submitted source file's text (a UTF-8 BOM and CRLF line ends normalized away; a notebook standing
        in for it: its code cells as the module the contestant imports)."""
        return self._sub.text(name, MAX_TEXT_BYTES)

    def at(self, name: str, line: int) -> str:
        """Where line `line` of text(name) is as the student sees it: `line 12`, or in a notebook standing in for
        the file `cell 7, line 3 (`scheduler.step()`)`."""
        converted = self._sub.converted(name)
        return converted.at(line) if converted else f"line {line}"

    def weights(self, name: str) -> Any:
        return load_weights(self.path(name))


MAX_TEXT_BYTES = 4 << 20
COURSE_MISTAKE = "a mistake in the course, not in the submission: tell the instructor"


def _where_in_check(exc: BaseException) -> str:
    """`checks/test_x.py:42: ` for the innermost frame of the course's check code (not pytest's, not the grader's)."""
    import grader

    package = Path(grader.__file__).parent
    frames = [fs for fs in traceback.extract_tb(exc.__traceback__)
              if not Path(fs.filename).is_relative_to(package) and "site-packages" not in fs.filename]  # fmt: skip
    if not frames:
        return ""
    fs = frames[-1]
    path = Path(fs.filename)
    return f"{path.parent.name}/{path.name}:{fs.lineno}: "


# How a name the student's module lacks shows in a check's message: a probe's `m.f` or the student's own call.
MISSING_NAME = re.compile(r"module '\w+' has no attribute '(\w+)'|name '(\w+)' is not defined|^(\w+) is not there: ")


def _message(exc: BaseException) -> str:
    if isinstance(exc, (Partial, ContestantError)):
        return exc.message
    text = str(exc)
    # pytest's assertion rewriting appends an introspection of the failed expression; keep the author's text.
    return text.split("\nassert ")[0].strip() or f"{type(exc).__name__} in the check"


class GraderPlugin:
    def __init__(
        self,
        spec: AssignmentSpec,
        submission: Submission,
        client: ContestantClient,
        selected: list[str],
        data_root: Path | None,
        after_collection: Callable[[], object] | None = None,
    ) -> None:
        # Private names: pytest reads this object's attributes looking for fixtures.
        self._spec, self._sub, self._client = spec, submission, client
        self._selected = selected
        self._data_root = data_root
        self._after_collection = after_collection  # work to overlap with the first contestant's start
        self.results: dict[str, CheckResult] = {}
        self.collect_errors: list[str] = []
        self.interrupt: BaseException | None = None
        self._handles: dict[str, CheckHandle] = {}
        self._started: dict[str, float] = {}
        # A slip that several checks meet (code asking for CUDA, a name the module lacks) -> the first check it
        # failed, which alone is charged
        self._first: dict[str, str] = {}

    def charged(self, slip: str) -> bool:
        """Whether a check was charged `slip` (`cuda`, `missing:<name>`)."""
        return slip in self._first

    def pytest_configure(self, config: pytest.Config) -> None:
        # The results carry the plugin's own messages: pytest's AST-annotated tracebacks of each failed check
        # would be wasted work (0.1 s a submission); a collection error's native traceback still says where.
        config.option.tbstyle = "native"

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest ends the session on Ctrl-C (or a batch worker's Stop) and returns normally: keep the
        # exception, so that run_checks raises it instead of grading what did not run as failed. A check file
        # that cannot be collected ends it the same way (Session.Interrupted): that is the course's mistake,
        # which collect_errors already holds, not an interruption.
        if isinstance(excinfo.value, pytest.Session.Interrupted) and self.collect_errors:
            return
        self.interrupt = excinfo.value

    # -- collection -------------------------------------------------------------------------------
    @staticmethod
    def check_id(item: pytest.Item) -> str:
        name = getattr(item, "originalname", item.name)
        return name.removeprefix("test_")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = report.longreprtext
            # pytest's own frames say nothing about the check file; its "E " lines hold the error itself
            said = [line[4:] for line in text.splitlines() if line.startswith("E   ")]
            text = "\n".join(said) if said else text
            self.collect_errors.append(f"{report.nodeid}: the file cannot be imported:\n{text[-2000:]}\n(fix it, then "
                                       "check the assignment with `grader validate`)")  # fmt: skip

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        declared = {c.id for c in self._spec.checks}
        defined = [self.check_id(i) for i in items]
        unknown = sorted(set(defined) - declared)
        if unknown:
            self.collect_errors.append(f"check files define tests for undeclared checks: {', '.join(unknown)}")
        twice = sorted({d for d in defined if defined.count(d) > 1})
        if twice:
            self.collect_errors.append(f"more than one test per check: {', '.join(twice)}")
        missing = sorted(set(self._selected) - set(defined))
        if missing and not self.collect_errors:  # else a file that failed to collect is why: said above
            self.collect_errors.append(f"no test implements the checks {', '.join(missing)}")
        order = {cid: n for n, cid in enumerate(self._selected)}
        keep = [i for i in items if self.check_id(i) in order]
        keep.sort(key=lambda i: order[self.check_id(i)])
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._after_collection is not None:
            self._after_collection()

    # -- fixtures ---------------------------------------------------------------------------------
    @pytest.fixture
    def contestant(self) -> ContestantClient:
        return self._client

    @pytest.fixture
    def submission(self) -> SubmissionView:
        return SubmissionView(self._sub)

    @pytest.fixture
    def check(self, request: pytest.FixtureRequest) -> CheckHandle:
        return self._handles[self.check_id(request.node)]

    @pytest.fixture
    def data_root(self) -> Path:
        """The dataset root (already checked to hold the assignment's datasets)."""
        if self._data_root is None:
            raise CheckFailed("no dataset root is configured for this assignment (an instructor must set it)")
        return self._data_root

    # -- running ----------------------------------------------------------------------------------
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        spec = self._spec.check(self.check_id(item))
        self._handles[spec.id] = CheckHandle(spec)
        self._started[spec.id] = time.perf_counter()
        self._client.budget_s = spec.timeout
        self._client.deadline = time.monotonic() + spec.timeout
        problems = [r.problem for r in self._sub.files if r.name in spec.files and r.problem]
        if problems:
            raise CheckFailed("; ".join(problems))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
        outcome = yield
        report = outcome.get_result()
        cid = self.check_id(item)
        if cid in self.results or not (call.when == "call" or report.failed):
            return
        spec = self._spec.check(cid)
        try:
            self.results[cid] = self._result(spec, call)
        except Exception as exc:  # noqa: BLE001 - a pytest hook that raises stops the whole run (INTERNAL_ERROR)
            self.results[cid] = CheckResult(
                id=cid, name=spec.name, max_score=spec.points, score=0, status="error",
                message=f"the grader could not record this check ({type(exc).__name__}: {exc}); please tell the "
                "instructor", visibility=spec.visibility, tags=spec.tags,
            )  # fmt: skip

    def _result(self, spec: CheckSpec, call: pytest.CallInfo[Any]) -> CheckResult:
        cid = spec.id
        handle = self._handles.get(cid) or CheckHandle(spec)
        exc = call.excinfo.value if call.excinfo is not None else None
        fraction, status, message, where = 1.0, "passed", "", []
        measured: dict[str, float] = {}
        # Code written for the GPU that grading lacks, or a function the student's module lacks (renamed, deleted,
        # defined under the main guard): one slip, charged by the first check it fails.
        slip: tuple[str, str] | None = None
        if isinstance(exc, ContestantError) and exc.kind == "no_cuda":
            slip = ("cuda", "your code asks for CUDA, which this grading machine does not have")
        elif isinstance(exc, ContestantError) and (gone := MISSING_NAME.search(exc.message)):
            name = next(g for g in gone.groups() if g)
            slip = (f"missing:{name}", f"your code has no {name}")
        if slip and self._first.setdefault(slip[0], cid) != cid:
            exc = deferred(self._first[slip[0]], slip[1])
        if isinstance(exc, Deferred):
            handle.notes.append(exc.message)
        elif isinstance(exc, Partial):
            fraction, message = exc.fraction, exc.message
            measured = exc.measured
            status = "passed" if fraction >= 1 else "partial" if fraction > 0 else "failed"
        elif isinstance(exc, AssertionError):  # CheckFailed, ContestantError, WeightsError, plain assert
            fraction, status, message = 0.0, "failed", _message(exc)
            if isinstance(exc, ContestantError):
                where = [Location(**w) for w in exc.where]
        elif isinstance(exc, SandboxError):
            fraction, status = 0.0, "error"
            message = (
                f"the sandbox could not run the code: {exc}\n(a problem of the grading machine, not of the submission)"
            )
        elif isinstance(exc, JudgeConfigError):
            fraction, status = 0.0, "error"
            message = f"{_where_in_check(exc)}{exc}\n({COURSE_MISTAKE})"
        elif exc is not None:
            fraction, status = 0.0, "error"
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
            what = f"the check itself failed ({type(exc).__name__}: {exc})"
            message = f"{_where_in_check(exc)}{what}: {COURSE_MISTAKE}\n{tb}"
        return CheckResult(
            id=cid,
            name=spec.name,
            max_score=spec.points,
            score=round(spec.points * fraction, 4),
            status=status,
            message=message,
            notes=handle.notes,
            series=handle.series,
            confusion=handle.confusion_matrix,
            measured=measured,
            visibility=spec.visibility,
            tags=spec.tags,
            duration_s=round(time.perf_counter() - self._started.get(cid, time.perf_counter()), 4),
            locations=where,
        )


def pytest_args(files: list[Path], rootdir: Path, ini: Path) -> list[str]:
    return [
        *map(str, files),
        f"--rootdir={rootdir}",
        "-c", str(ini),
        "-p", "no:cacheprovider",
        "-p", "no:terminal",
        "-p", "no:warnings",
        # Not wanted, and costly for every submission: these two gc.collect() the judge at each session's end.
        "-p", "no:unraisableexception",
        "-p", "no:threadexception",
        "--import-mode=importlib",
        "-s",  # the judge prints nothing worth capturing; keeps pytest from swapping fds under threads
    ]  # fmt: skip


_loaded_from: set[Path] = set()  # the check folders whose modules this process has imported


def _forget_other_courses(folders: list[Path]) -> None:
    """Check modules and their helpers are imported by names relative to the course (`exp1_judge`,
    `assignments.exp1.checks.test_exp1_public`), so a second course in the same process would get the first
    one's. Forget modules from other folders; keep this course's (their caches, e.g. a batch prefetch)."""
    wanted = {f.resolve() for f in folders}
    stale = _loaded_from - wanted
    if stale:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and any(Path(file).resolve().is_relative_to(folder) for folder in stale):
                del sys.modules[name]
    _loaded_from.clear()
    _loaded_from.update(wanted)


def run_checks(plugin: GraderPlugin, files: list[Path], rootdir: Path, ini: Path, extra_path: list[Path]) -> None:
    """Run pytest on `files` in this process. Raises JudgeConfigError for an instructor's mistake."""
    _forget_other_courses(extra_path)
    added = [str(p) for p in extra_path if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        code = pytest.main(pytest_args(files, rootdir, ini), plugins=[plugin])
    finally:
        for p in added:
            sys.path.remove(p)
    if plugin.interrupt is not None:
        raise plugin.interrupt
    if code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        raise JudgeConfigError(f"pytest stopped with {code!r} while running {', '.join(map(str, files))}")
    if plugin.collect_errors:
        raise JudgeConfigError("\n".join(plugin.collect_errors))
