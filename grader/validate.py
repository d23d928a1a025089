"""`grader validate`: everything about an assignment that can be checked without grading a submission.

Each finding is one line: the file (and line or field), what is wrong, and what to do. `error` findings make
the command exit 2 (an author's mistake); `note` findings are advice.
"""

from __future__ import annotations

import ast
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from grader.grading import contestant_job
from grader.judge.client import ContestantClient, probe_names
from grader.judge.outcome import JudgeConfigError
from grader.notebook import DEFINITIONS, syntax_tree
from grader.release import ReleaseError, release
from grader.sandbox.base import Sandbox, SandboxError
from grader.selftest import MANIFEST, load_manifest
from grader.spec import AssignmentSpec, Course, SpecError


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "note"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def _rel(course: Course, path: Path) -> str:
    try:
        return str(path.relative_to(course.root))
    except ValueError:
        return str(path)


def _tests(tree: ast.Module) -> dict[str, int]:
    """test_<id> functions at module level, with their lines."""
    return {n.name[5:]: n.lineno for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def _probe_calls(tree: ast.Module) -> list[tuple[str, int]]:
    """`something.call("name", ...)`: the probe names a check asks for, with their lines."""
    calls = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "call"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            calls.append((node.args[0].value, node.lineno))
    return calls


def _check_modules(course: Course, spec: AssignmentSpec) -> list[Path]:
    """Every module in the check folders: test files and the helpers they share."""
    folders = [course.assignment_dir(spec.id) / "checks", course.solution_dir(spec.id) / "hidden_checks"]
    return sorted(p for f in folders if f.is_dir() for p in f.glob("*.py"))


def static_findings(course: Course, spec: AssignmentSpec, known_datasets: set[str]) -> list[Finding]:
    """The checks that need no sandbox."""
    found: list[Finding] = []
    toml = f"assignments/{spec.id}/assignment.toml"
    public_dir = course.assignment_dir(spec.id) / "checks"

    probes = course.assignment_dir(spec.id) / spec.probes
    names: set[str] | None = None
    if not probes.is_file():
        found.append(Finding("error", toml, f"probes: {_rel(course, probes)} does not exist; create it (see "
                                            "docs/authoring.md, Probes) or point `probes` at the module"))  # fmt: skip
    else:
        try:
            names = probe_names(probes)
        except JudgeConfigError as exc:
            found.append(Finding("error", _rel(course, probes), str(exc)))

    tests: dict[str, tuple[Path, int]] = {}
    for path in _check_modules(course, spec):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8-sig"), str(path))
        except SyntaxError as exc:
            found.append(Finding("error", f"{_rel(course, path)} line {exc.lineno}", f"syntax error: {exc.msg}"))
            continue
        except (OSError, UnicodeDecodeError):
            continue
        if path.name.startswith("test_"):
            for cid, line in _tests(tree).items():
                tests.setdefault(cid, (path, line))
        for name, line in _probe_calls(tree):
            if names is not None and name not in names:
                known = ", ".join(sorted(names)) or "none"
                found.append(Finding("error", f"{_rel(course, path)} line {line}",
                                     f"calls probe {name!r}, which {spec.probes} does not define (known: {known})"))

    declared = {c.id: c for c in spec.checks}
    for cid, check in declared.items():
        if cid not in tests:
            found.append(Finding("error", f"{toml} checks.{cid}", f"no test_{cid} in the check files; write it "
                                 f"in assignments/{spec.id}/checks/ (visible) or solutions/{spec.id}/hidden_checks/"))
            continue
        path, line = tests[cid]
        shipped = path.parent == public_dir
        if check.visibility != "visible" and shipped:
            found.append(Finding("error", f"{_rel(course, path)} line {line}",
                                 f"test_{cid} is {check.visibility} but sits in the public checks students get; "
                                 f"move it to solutions/{spec.id}/hidden_checks/"))
        elif check.visibility == "visible" and not shipped:
            found.append(Finding("error", f"{_rel(course, path)} line {line}", f"test_{cid} is visible but only in "
                                 "the hidden checks, so `grader check` never runs it; move it to the public checks"))
    for cid, (path, line) in sorted(tests.items()):
        if cid not in declared:
            found.append(Finding("error", f"{_rel(course, path)} line {line}",
                                 f"test_{cid} has no [[checks]] entry with id {cid!r} in {toml}; "
                                 "declare it or rename it"))
    found += _unknown_functions(course, spec)
    for leaked in ("hidden_checks", "solutions"):
        if (course.assignment_dir(spec.id) / leaked).exists():
            found.append(Finding("error", f"assignments/{spec.id}/{leaked}", "students get this folder; "
                                                                           "hidden material belongs under solutions/"))

    for name in spec.datasets:
        if name not in known_datasets:
            found.append(Finding("error", f"{toml} datasets", f"unknown dataset {name!r} (known: "
                                 f"{', '.join(sorted(known_datasets))}); declare it in course.toml [datasets.{name}]"))

    # The notebook edition is checked where the course ships one (grader release ID --format ipynb).
    has_notebook = any(course.assignment_dir(spec.id).glob("*.ipynb"))
    for fmt, command in (("py", f"grader release {spec.id}"), ("ipynb", f"grader release {spec.id} --format ipynb")):
        if fmt == "ipynb" and not has_notebook:
            continue
        try:
            stale = release(course, spec.id, check=True, fmt=fmt)
        except (ReleaseError, OSError) as exc:
            found.append(Finding("error", f"solutions/{spec.id}", str(exc)))
            continue
        shipped_examples = course.examples_dir(spec.id).is_dir()  # an installed copy (Gradescope) has none
        for path in stale:
            if shipped_examples or not path.is_relative_to(course.examples_dir(spec.id)):
                found.append(Finding("error", _rel(course, path), f"stale against its solution: run `{command}`"))

    points = sum(c.points for c in spec.checks if c.enabled)  # a disabled check (an optional re-run) is extra
    if spec.total is None:
        found.append(Finding("note", toml, f"the checks add up to {points:g} points; add `total = {points:g}` "
                                           "to have every later change checked against it"))  # fmt: skip

    if not course.examples_dir(spec.id).is_dir():
        pass  # no examples here: nothing to self-test
    elif not (course.examples_dir(spec.id) / MANIFEST).is_file():
        found.append(Finding("note", f"examples/{spec.id}/{MANIFEST}", "missing: `grader selftest` needs the score "
                                                                     "each example should get"))
    else:
        try:
            load_manifest(course, spec)
        except SpecError as exc:
            found.append(Finding("error", f"examples/{spec.id}/{MANIFEST}", str(exc).split(": ", 1)[-1]))
    return found


def _unknown_functions(course: Course, spec: AssignmentSpec) -> list[Finding]:
    """Every function a check tests must be one the solution defines at its top level, and every function a rule
    covers one it defines anywhere (a rule reads methods too): a misspelt name would point no failure anywhere,
    or exempt the whole function from its rule."""
    found: list[Finding] = []
    top: dict[str, set[str]] = {}
    anywhere: dict[str, set[str]] = {}
    for name in {f.name for f in spec.files if f.name.endswith(".py")}:
        path = course.solution_dir(spec.id) / name
        tree = syntax_tree(path.read_text(encoding="utf-8-sig")) if path.is_file() else None
        if isinstance(tree, ast.Module):  # else the release check says what is wrong with the solution
            top[name] = {n.name for n in tree.body if isinstance(n, DEFINITIONS)}
            anywhere[name] = {n.name for n in ast.walk(tree) if isinstance(n, DEFINITIONS)}
    toml = f"assignments/{spec.id}/assignment.toml"
    owners = [(f"checks.{c.id}", c.functions, c.files, top) for c in spec.checks]
    owners += [(f"rules.{r.id}", r.functions, [r.file], anywhere) for r in spec.rules]
    for where, functions, files, defined in owners:
        known = [f for f in files if f in defined]
        for fn in functions:
            if known and not any(fn in defined[f] for f in known):
                found.append(Finding("error", f"{toml} {where}", f"names function {fn!r}, which the solution "
                                     f"({', '.join(f'solutions/{spec.id}/{f}' for f in known)}) does not define"
                                     f"{' at top level' if defined is top else ''}; fix the name"))
    return found


def probes_import(course: Course, spec: AssignmentSpec, sandbox: Sandbox) -> list[Finding]:
    """Start a contestant with no student code: the probe module must import there."""
    probes = course.assignment_dir(spec.id) / spec.probes
    with tempfile.TemporaryDirectory(prefix="grader-validate-") as tmp:
        empty = Path(tmp) / "submission"
        empty.mkdir()
        job = contestant_job(course, spec, empty, None)
        client = ContestantClient(sandbox, replace(job, loading=replace(job.loading, modules=())))
        try:
            client.start()
        except JudgeConfigError as exc:
            return [Finding("error", _rel(course, probes), str(exc).replace("\n", " | ")[:2000])]
        except SandboxError as exc:
            return [Finding("error", _rel(course, probes), f"could not start a contestant to import it: {exc}")]
        finally:
            client.close()
    return []


def validate(course: Course, assignment_id: str, sandbox: Sandbox | None, known_datasets: set[str]) -> list[Finding]:
    try:
        spec = course.spec(assignment_id)
    except SpecError as exc:  # its text starts with the file's full path, which the finding names already
        toml = course.assignment_dir(assignment_id) / "assignment.toml"
        return [Finding("error", f"assignments/{assignment_id}/assignment.toml",
                        str(exc).removeprefix(f"{toml}: "))]  # fmt: skip
    found = static_findings(course, spec, known_datasets)
    if sandbox is not None and not any(f.level == "error" and f.where.endswith(spec.probes) for f in found):
        if (course.assignment_dir(spec.id) / spec.probes).is_file():
            found += probes_import(course, spec, sandbox)
    return found
