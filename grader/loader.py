"""Loading a student's module inside the contestant: under an import budget, and, when the module runs code at
import time that it should not, its definitions only.

The most common student slip is code that runs when the module is imported: a training loop at module level,
a bare `main()`, `argparse` parsing, a dataset download. `import_module` runs the module under a budget of CPU
seconds (load-independent: a busy grading machine does not shorten it) and a wall-clock cap (for code that
sleeps or waits); when it runs past them, exits, or fails, it raises `ImportProblem` saying what happened, where
the code was (file and line), and what to do. The contestant then restarts and `import_definitions` loads only
the imports, functions, classes and assignments, one top-level statement at a time, leaving out loops and
calls (except those that configure, such as `parser.add_argument(...)` or a seed); an assignment that fails or
runs long is left out too. What was left out is reported.
"""

from __future__ import annotations

import ast
import importlib.abc
import importlib.util
import linecache
import re
import signal
import sys
import time
import traceback
import types
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import cuda_on_cpu
from grader.notebook import (
    PYTHON_CELL_MAGICS,
    SUFFIX,
    TRAINING_TAG,
    Converted,
    NotebookError,
    first_line,
    module_source,
)

# An assignment at top level that calls something may build a model (cheap) or train one (not): each gets this
# much CPU time when only definitions are loaded.
STATEMENT_CPU_S = 5.0


class _OverBudget(BaseException):
    """Raised into the module's code by the budget's timers: a BaseException, so `except Exception` lets it by."""

    def __init__(self, what: str, frame: types.FrameType | None) -> None:
        super().__init__(what)
        self.what, self.frame = what, frame


@dataclass
class ImportProblem(Exception):
    """Importing a student's module did something it should not; the message is for the student."""

    # budget | exit | network | input | missing_data | package | skipped_name | exception | syntax | stopped | no_cuda
    kind: str
    message: str
    where: list[dict[str, Any]] = field(default_factory=list)
    recoverable: bool = False  # a syntax error that leaving out a few top-level statements gets past

    def __str__(self) -> str:
        return self.message


@dataclass
class LeftOut:
    line: int
    code: str
    why: str
    where: str = ""  # "cell 7, line 3" in a notebook

    def __str__(self) -> str:
        return f"{self.where or f'line {self.line}'} `{self.code}` ({self.why})"


# Notebooks being imported, by the file name their code is compiled under: their lines map back to cells.
NOTEBOOKS: dict[str, Converted] = {}


def _notebook(path: Path) -> Converted | None:
    return NOTEBOOKS.get(str(path))


def position(path: Path, line: int) -> dict[str, Any]:
    """A module line as a location: in a notebook, its cell and the line in that cell."""
    nb = _notebook(path)
    pos = nb.position(line) if nb else None
    if pos is None:
        return {"file": path.name, "line": line}
    return {"file": path.name, "line": pos[1], "cell": pos[0]}


def quote(path: Path, cell: int, line: int) -> str:
    """The text of a notebook cell's line, for messages."""
    nb = _notebook(path)
    return nb.quote(cell, line) if nb else ""


def _at(path: Path, line: int) -> str:
    """`line 24`, or in a notebook `cell 7, line 3 (`the line`)`."""
    nb = _notebook(path)
    return nb.at(line) if nb else f"line {line}"


@contextmanager
def budget(cpu_s: float, wall_s: float) -> Iterator[None]:
    """Interrupt the main thread's code after `cpu_s` of process CPU time or `wall_s` of wall time, and again
    every second after that (code that catches everything still gets interrupted until it gives up)."""

    def on_cpu(signum: int, frame: types.FrameType | None) -> None:
        raise _OverBudget(f"{cpu_s:g} s of CPU time", frame)

    def on_wall(signum: int, frame: types.FrameType | None) -> None:
        raise _OverBudget(f"{wall_s:g} s", frame)

    old = signal.signal(signal.SIGPROF, on_cpu), signal.signal(signal.SIGALRM, on_wall)
    signal.setitimer(signal.ITIMER_PROF, cpu_s, 1.0)
    signal.setitimer(signal.ITIMER_REAL, wall_s, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, old[0])
        signal.signal(signal.SIGALRM, old[1])


def _frames_in(path: Path, tb: types.TracebackType | None, frame: types.FrameType | None) -> list[dict[str, Any]]:
    """The frames of `path` in a traceback (or above a frame), outermost first."""
    if tb is not None:
        summary = traceback.extract_tb(tb)
    else:
        summary = traceback.extract_stack(frame)
    return [{**position(path, fs.lineno or 0), "function": fs.name}
            for fs in summary if Path(fs.filename) == path]  # fmt: skip


GUARD = 'put the code that should only run when you start the file yourself under `if __name__ == "__main__":`'
NOTEBOOK_GUARD = (f'tag the cells that train or experiment `{TRAINING_TAG}` (Jupyter: View > Cell Toolbar > Tags), '
                  'or put their code under `if __name__ == "__main__":`')  # fmt: skip


def _guard(path: Path) -> str:
    return NOTEBOOK_GUARD if path.suffix == SUFFIX else GUARD.replace("the file", path.name)


def _from_argparse(exc: BaseException) -> bool:
    return any("argparse" in fs.filename for fs in traceback.extract_tb(exc.__traceback__))


def _module_lines(path: Path, exc: BaseException) -> list[int]:
    """The module lines of `path`'s frames, outermost first (before any mapping to cells)."""
    if isinstance(exc, _OverBudget) and exc.__traceback__ is None:
        summary = traceback.extract_stack(exc.frame)
    else:
        summary = traceback.extract_tb(exc.__traceback__)
        if isinstance(exc, _OverBudget) and not any(Path(fs.filename) == path for fs in summary):
            summary = traceback.extract_stack(exc.frame)
    return [fs.lineno or 0 for fs in summary if Path(fs.filename) == path]


def classify_import(path: Path, exc: BaseException) -> ImportProblem:
    """What an exception that escaped the module's top level means, in the student's terms."""
    where = _frames_in(path, exc.__traceback__, exc.frame if isinstance(exc, _OverBudget) else None)
    if isinstance(exc, _OverBudget):
        where = where or _frames_in(path, None, exc.frame)
    line = lines[-1] if (lines := _module_lines(path, exc)) else None
    at = f" at {_at(path, line)}" if line else ""
    if len(where) > 1 and where[-1]["function"] != "<module>" and where[0]["function"] == "<module>":
        at += f", in {where[-1]['function']}(), called at {_at(path, lines[0])}"
    name = path.name
    if isinstance(exc, _OverBudget):
        still = f"still running{at} after {exc.what}" if line else f"still running after {exc.what}"
        return ImportProblem("budget", f"{name} runs code when imported ({still}): {_guard(path)}", where)
    if isinstance(exc, SystemExit):
        why = "argparse's parse_args() exits when the grader's command line lacks your options" if _from_argparse(
            exc) else f"sys.exit({exc.code!r})"  # fmt: skip
        return ImportProblem("exit", f"{name} exits when imported ({why}{at}): {_guard(path)}", where)
    if cuda_on_cpu.asks_for_cuda(exc):
        return ImportProblem("no_cuda", f"{name} fails when imported: it uses CUDA, which this grading machine does "
                             f"not have ({cuda_on_cpu.said(exc)}{at}): {cuda_on_cpu.CHOOSE_DEVICE}", where)  # fmt: skip
    if isinstance(exc, ModuleNotFoundError) and "grading does not provide" in str(exc):
        return ImportProblem("package", f"{exc}{at}", where)
    text = f"{type(exc).__name__}: {exc}"[:300]
    said = str(exc).lower()
    network = isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError)) or any(
        w in said for w in ("name resolution", "urlopen error", "network is unreachable", "error downloading")
    )
    if network:
        text = text.splitlines()[0]
        return ImportProblem("network", f"{name} uses the network when imported ({text}{at}; a download=True?): "
                             f"grading has no network; {_guard(path)}", where)  # fmt: skip
    if isinstance(exc, EOFError) and "reading a line" in str(exc):
        return ImportProblem("input", f"{name} waits for keyboard input when imported (input(){at}): grading has no "
                             f"keyboard; {_guard(path)}", where)  # fmt: skip
    if isinstance(exc, FileNotFoundError) and exc.filename and (path.parent / Path(str(exc.filename)).name).is_file():
        own = Path(str(exc.filename)).name  # submitted, next to the module: the path was relative to the wrong folder
        return ImportProblem("missing_data", f"{name} reads {own} when imported{at}, from the folder it runs in; "
                             f"grading runs it from another, with {own} next to {name}: read it inside a function, "
                             f"from Path(__file__).parent / {own!r}, and {_guard(path)}", where)  # fmt: skip
    if isinstance(exc, FileNotFoundError) or ("not found" in said and "dataset" in said):
        return ImportProblem("missing_data", f"{name} reads files that grading does not have when imported ({text}{at})"
                             f": {_guard(path)}", where)  # fmt: skip
    nb = _notebook(path)
    if isinstance(exc, NameError) and nb is not None and (how := nb.maker(str(getattr(exc, "name", "")))):
        # Restart & Run All runs it in Jupyter: what grading leaves out is the cell's top-level code, at no cost
        return ImportProblem("skipped_name", f"{name} uses {exc.name} when imported{at}, and {how}: the grader "
                             "imported the notebook's definitions only, which costs nothing here; tag the cell that "
                             f"uses {exc.name} `training` too, with its functions in a cell of their own", where)
    if isinstance(exc, NameError) and path.suffix == SUFFIX and where and where[-1]["function"] == "<module>":
        # a cell run out of order in Jupyter, or a leftover one, that Restart & Run All would have shown
        return ImportProblem("exception", f"{name} fails when imported ({text}{at}): that cell uses a name no cell "
                             "above it defines; fix or delete the cell, and check that Kernel > Restart & Run All "
                             "runs the notebook from top to bottom", where)  # fmt: skip
    return ImportProblem("exception", f"{name} fails when imported ({text}{at}): {_guard(path)}", where)


def _display(*objs: Any, **kwargs: Any) -> None:
    """Jupyter's `display()` in a module: nothing is shown when grading."""


# What nbconvert writes for a notebook's magics and shell escapes in the .py it exports.
_EXPORTED = re.compile(r"get_ipython\(\)\.(?:run_line_magic|run_cell_magic|system|getoutput|magic)\(")


class _NotebookShell:
    """`get_ipython()` in a .py file exported from a notebook (`%matplotlib inline` became
    `get_ipython().run_line_magic('matplotlib', 'inline')`, `!pip install d2l` `get_ipython().system(...)`): as in
    a notebook the grader runs, magics and shell escapes do nothing, and a `%%time` cell's body runs."""

    @staticmethod
    def run_cell_magic(magic: str, line: str = "", cell: str = "") -> None:
        if magic in PYTHON_CELL_MAGICS:
            exec(compile(cell, f"<%%{magic} cell>", "exec"), sys._getframe(1).f_globals)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


_SHELL = _NotebookShell()


IPYTHON_DOC = "Automatically created module for IPython interactive environment"


def _new_module(name: str, path: Path, source: str = "") -> types.ModuleType:
    if path.suffix == SUFFIX:  # no import machinery loads a notebook: a plain module, run by exec like a .py
        module = types.ModuleType(name, IPYTHON_DOC)  # Jupyter's __doc__, which a handout's argparse may read
        module.__file__ = str(path)
        module.__dict__["display"] = _display  # Jupyter's builtin, used by d2l's plots
        sys.modules[name] = module
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    if _EXPORTED.search(source):  # a notebook's export runs as the notebook does, with Jupyter's display too
        module.__dict__["get_ipython"] = lambda: _SHELL
        module.__dict__["display"] = _display
    sys.modules[name] = module
    return module


def source_encoding(data: bytes) -> str:
    """The encoding a module's bytes are read in: the one its `# -*- coding: gbk -*-` line declares (PEP 263), else
    UTF-8, else (bytes that are not UTF-8, which Python itself would refuse) GB18030 where they are valid in it,
    the encoding a Chinese Windows editor saves in."""
    import codecs
    import io
    import tokenize

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        codecs.lookup(encoding)
    except (SyntaxError, LookupError):
        encoding = "utf-8"
    if encoding not in ("utf-8", "utf-8-sig"):
        return encoding
    for candidate in ("utf-8-sig", "gb18030"):
        try:
            data.decode(candidate)
            return candidate
        except UnicodeDecodeError:
            continue
    return "utf-8-sig"


def read_source_text(data: bytes) -> str:
    """A module's text as Python reads it, in `source_encoding`; a byte-order mark and CRLF line ends change
    nothing. Bytes that do not decode become U+FFFD rather than a failure."""
    return data.decode(source_encoding(data), errors="replace").replace("\r\n", "\n")


def read_source(path: Path) -> str:
    """A student module's Python text; a notebook's code cells as one module (grader.notebook), registered so
    that positions in it read as cells and tracebacks quote its lines."""
    if path.suffix != SUFFIX:
        return read_source_text(path.read_bytes())
    nb = module_source(path.read_bytes(), path.name)
    NOTEBOOKS[str(path)] = nb
    linecache.cache[str(path)] = (len(nb.source), None, nb.source.splitlines(True), str(path))
    return nb.source


def import_module(name: str, path: Path, cpu_s: float, wall_s: float) -> types.ModuleType:
    """Import `path` as module `name` under the budget; raise ImportProblem (syntax errors included)."""
    try:
        source = read_source(path)
    except NotebookError as exc:
        raise ImportProblem("syntax", str(exc)) from None
    try:
        tree = ast.parse(source, str(path))  # parsed once: compiled, and read for what the notes need
        code = compile(tree, str(path), "exec")
    except SyntaxError as exc:
        where = [{**position(path, exc.lineno or 0), "function": "<module>"}]
        raise ImportProblem("syntax", f"{path.name} {_at(path, exc.lineno or 0)}: {exc.msg}: fix the syntax error "
                            "and resubmit", where, recoverable=past_syntax_errors(source, path) is not None) from None
    module = _new_module(name, path, source)
    _note_guarded_defs(tree, path)
    try:
        with budget(cpu_s, wall_s):
            exec(code, module.__dict__)
    except BaseException as exc:  # noqa: BLE001 - whatever escapes the module's top level is the student's
        if _exits_at_the_end(tree, path, exc):
            return module
        sys.modules.pop(name, None)
        raise classify_import(path, exc) from None
    return module


def _note_guarded_defs(tree: ast.Module, path: Path) -> None:
    """Functions and classes defined only under `if __name__ == "__main__":` never exist when the module is
    imported: say so where a check or the student's code looks for one (LEFT_OUT_NAMES)."""
    for node in tree.body:
        if not _is_main_guard(node):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                LEFT_OUT_NAMES.setdefault(inner.name, (
                    f"{path.name} defines it inside `if __name__ == \"__main__\":` ({_at(path, inner.lineno)}), "
                    "which runs only when you start the file yourself: define it at the top level"))  # fmt: skip


def _exits_at_the_end(tree: ast.Module, path: Path, exc: BaseException) -> bool:
    """A successful sys.exit() (or exit()) as the script's last statement: everything the module defines has run,
    as when the student runs it, so the module is complete and nothing is charged."""
    if not isinstance(exc, SystemExit) or exc.code not in (0, None) or path.suffix == SUFFIX:
        return False
    lines = _module_lines(path, exc)
    body = tree.body
    last = body[-1] if body else None
    return bool(lines and last and last.lineno <= lines[0] <= (last.end_lineno or last.lineno))


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) and "__name__" in ast.unparse(node.test)


def _has_call(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
ASSIGNMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign)
# Calls at top level that only configure what the kept assignments use: without `parser.add_argument(...)` a kept
# `args = parser.parse_args()` has none of the student's options, and without a seed a module-level model is
# initialised differently. They run under the same budget as an assignment that calls something.
CONFIGURING = {"add_argument", "add_argument_group", "add_mutually_exclusive_group", "set_defaults", "manual_seed",
               "seed", "filterwarnings", "simplefilter", "set_printoptions"}  # fmt: skip


def _configures(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Attribute) and node.value.func.attr in CONFIGURING)  # fmt: skip


def statement_line(source: str, node: ast.stmt) -> str:
    """How a message quotes a top-level statement: its first line."""
    return first_line(ast.get_source_segment(source, node) or "")


def definitions(tree: ast.Module, source: str) -> tuple[list[ast.stmt], list[LeftOut]]:
    """The top-level statements a definitions-only import runs, and those it leaves out (with why)."""
    keep: list[ast.stmt] = []
    left: list[LeftOut] = []
    for node in tree.body:
        # a docstring, or a bare string anywhere (a notebook's cells may open with one): runs nothing
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if isinstance(node, DEFINITIONS + ASSIGNMENTS + (ast.Pass,)) or docstring or _configures(node):
            keep.append(node)
        elif _is_main_guard(node):
            continue  # runs only when the file is started itself: never at import
        elif isinstance(node, (ast.If, ast.Try)) and all(
            isinstance(n, DEFINITIONS + ASSIGNMENTS + (ast.Pass, ast.If, ast.Try, ast.ExceptHandler, ast.Raise))
            for n in ast.walk(node) if isinstance(n, ast.stmt)
        ):  # fmt: skip
            keep.append(node)  # `try: import x except ImportError: ...`, `if cuda: device = ...`
        else:
            why = "a loop" if isinstance(node, (ast.For, ast.While, ast.AsyncFor)) else (
                "a call" if isinstance(node, ast.Expr) else "a statement that runs code")  # fmt: skip
            left.append(LeftOut(node.lineno, statement_line(source, node), why))
    return keep, left


# Top-level lines that continue the statement before them rather than start one.
_CONTINUES = (")", "]", "}", "else", "elif", "except", "finally", "#")
SYNTAX_DROPS = 3  # at most this many top-level statements are left out to get past syntax errors
# Names left out of a module (a syntax error, a failed `from x import name`), with why: what a check that looks
# for one is told (grader.contestant).
LEFT_OUT_NAMES: dict[str, str] = {}


def past_syntax_errors(source: str, path: Path) -> tuple[str, list[LeftOut]] | None:
    """`source` with the few top-level statements (a def, a class, a line) that hold its syntax errors blanked
    out, line numbers kept, and those statements as left out; None when that does not give valid Python. A typo
    in one function then costs the checks that need that function, not every check."""
    lines = source.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() and not line[0].isspace()
              and not line.startswith(_CONTINUES) and not (i and lines[i - 1].startswith("@"))]  # fmt: skip
    left: list[LeftOut] = []
    for _ in range(SYNTAX_DROPS + 1):
        try:
            compile("\n".join(lines), str(path), "exec", dont_inherit=True)
            return "\n".join(lines), left
        except SyntaxError as exc:
            err = (exc.lineno or 1) - 1
            if len(left) == SYNTAX_DROPS or not (before := [k for k, start in enumerate(starts) if start <= err]):
                return None
            a = starts[before[-1]]
            b = starts[before[-1] + 1] if before[-1] + 1 < len(starts) else len(lines)
            if not any(lines[i].strip() for i in range(a, b)):
                return None  # already left out: no way past this one
            first = next(line for line in lines[a:b] if not line.startswith("@"))
            why = f"a syntax error at line {exc.lineno}: {exc.msg}"
            if named := re.match(r"(?:async\s+)?(?:def|class)\s+(\w+)|(\w+)\s*[:=]", first):
                LEFT_OUT_NAMES[named[1] or named[2]] = (f"the grader left it out for a syntax error ({path.name} "
                                                        f"{_at(path, exc.lineno or 0)}: {exc.msg}); fix it")
            left.append(LeftOut(a + 1, first_line(lines[a].strip()), why))
            lines[a:b] = [""] * (b - a)
    return None


def import_definitions(name: str, path: Path, cpu_s: float) -> tuple[types.ModuleType, list[LeftOut]]:
    """Import only the definitions of `path`, statement by statement; return the module and what was left out.
    A syntax error leaves out the top-level statements that hold it (past_syntax_errors).

    Raises ImportProblem when even that fails (a definition that raises)."""
    source = read_source(path)
    dropped: list[LeftOut] = []
    try:
        tree = ast.parse(source, str(path))
    except SyntaxError:
        if (past := past_syntax_errors(source, path)) is None:
            raise ImportProblem("syntax", f"{path.name} has syntax errors that the grader cannot get past") from None
        source, dropped = past
        tree = ast.parse(source, str(path))
    keep, left = definitions(tree, source)
    left = dropped + left
    module = _new_module(name, path, source)
    started = time.process_time()
    unbound: dict[str, int] = {}  # names an import that failed would have bound -> its line
    for node in keep:
        code = compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec")
        guarded = isinstance(node, ASSIGNMENTS + (ast.If, ast.Try, ast.Expr)) and _has_call(node)
        left_so_far = max(0.1, cpu_s - (time.process_time() - started))
        try:
            if guarded:
                with budget(min(STATEMENT_CPU_S, left_so_far), 3 * STATEMENT_CPU_S):
                    exec(code, module.__dict__)
            else:
                exec(code, module.__dict__)
        except BaseException as exc:  # noqa: BLE001
            # a def or class that raises: nothing sensible is left; CUDA asked for where there is none: the judge
            # starts again with CUDA mapped to the CPU, as a full import gets (the grade a GPU machine gives)
            cuda = cuda_on_cpu.asks_for_cuda(exc) and cuda_on_cpu.available() and not cuda_on_cpu.installed()
            if isinstance(node, DEFINITIONS[2:]) or cuda:
                sys.modules.pop(name, None)
                raise classify_import(path, exc) from None
            why = f"ran past {exc.what}" if isinstance(exc, _OverBudget) else f"raised {type(exc).__name__}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                unbound |= {(a.asname or a.name).split(".")[0]: node.lineno for a in node.names}
            elif isinstance(exc, NameError) and (missing := getattr(exc, "name", None)) in unbound:
                # `device = d2l.try_gpu()` after d2l's import failed: that import's slip, not one of its own
                why = f"uses {missing}, whose import at {_at(path, unbound[missing])} failed"
                for target in (t for n in ast.walk(node) if isinstance(n, ast.Assign) for t in n.targets):
                    if isinstance(target, ast.Name):
                        LEFT_OUT_NAMES.setdefault(target.id, f"{path.name} {_at(path, node.lineno)} sets it from "
                                                  f"{missing}, whose import failed: set it without {missing}")
            if isinstance(node, ast.ImportFrom) and isinstance(exc, ImportError):
                at = f"{path.name} {_at(path, node.lineno)}"
                missing = getattr(exc, "name", None) or ""
                if "grading does not provide" in str(exc) and missing not in ("", (node.module or "").split(".")[0]):
                    # the student's own module was staged, and stopped at a package grading lacks
                    said, fix = f"imports {missing}, which grading does not provide", "remove that import"
                else:
                    said = ("grading does not provide" if "grading does not provide" in str(exc)
                            else f"failed ({type(exc).__name__}: {str(exc)[:120]})")  # fmt: skip
                    fix = f"put it in {path.name}"
                for alias in node.names:  # what the checks will look for in vain: say where it was to come from
                    LEFT_OUT_NAMES[alias.asname or alias.name] = (  # "*": whatever is missing, likeliest from there
                        f"{at} imports * from {node.module}, which {said}; if it was to come from there, "
                        f"{fix}" if alias.name == "*" else
                        f"{at} imports it from {node.module}, which {said}: {fix}")  # fmt: skip
            left.append(LeftOut(node.lineno, statement_line(source, node), why))
    left.sort(key=lambda lo: lo.line)
    if _notebook(path):
        for lo in left:
            pos = position(path, lo.line)
            lo.where = f"cell {pos['cell']}, line {pos['line']}" if "cell" in pos else ""
    return module, left


class AllowedImports(importlib.abc.MetaPathFinder):
    """Refuses, with a message naming the allowed list, any package outside it that student code imports.

    Only imports made by the student's own files are checked (torch importing its dependencies is not)."""

    def __init__(self, allowed: set[str], submission: Path, own: Callable[[], set[str]]) -> None:
        self.allowed, self.submission, self.own = allowed, submission, own

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        top = fullname.partition(".")[0]
        if top in self.allowed or top in sys.stdlib_module_names or top in self.own() or "." in fullname:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back  # type: ignore[assignment]
        if frame is None or not Path(frame.f_code.co_filename).is_relative_to(self.submission):
            return None  # not the student's own files (its helper packages, lib/utils.py, are)
        allowed = ", ".join(sorted(self.allowed))
        raise ModuleNotFoundError(
            f"{Path(frame.f_code.co_filename).name} imports {top}, which grading does not provide (allowed besides "
            f"Python's standard library: {allowed}): copy what you need from {top} into your file, or remove it",
            name=top,
        )
