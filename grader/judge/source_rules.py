"""Rules the handout states about the submitted source, checked by reading it (the judge never imports it).

Two kinds: `[[rules]]` in assignment.toml forbid library shortcuts ("softmax regression from scratch": no
`torch.softmax`, no `F.cross_entropy`, no `torch.optim`), and `[imports] packages` lists what student code may
import. Names are resolved through the file's own imports, so `import torch.nn.functional as F` then
`F.softmax(x)` is `torch.nn.functional.softmax`, and `from torch import optim` then `optim.SGD` is
`torch.optim.SGD`.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from grader import loggers
from grader.notebook import DEFINITIONS, Converted, first_line, syntax_tree
from grader.results import CheckResult, Location, Problem
from grader.spec import AssignmentSpec, Rule

Positions = dict[str, Converted]  # file name -> the notebook standing in for it (its lines are cells' lines)


def _at(name: str, line: int, positions: Positions | None) -> str:
    nb = (positions or {}).get(name)
    return nb.at(line) if nb else f"line {line}"


def _shown(name: str, positions: Positions | None) -> str:
    """The file as the student submitted it: exp1.ipynb (or `Copy of exp1.ipynb`) where a notebook stands in for
    exp1.py."""
    nb = (positions or {}).get(name)
    return name if nb is None else nb.file or name[:-3] + ".ipynb"


def _location(name: str, line: int, positions: Positions | None, function: str = "", defined: bool = False
              ) -> Location:  # fmt: skip
    nb = (positions or {}).get(name)
    pos = nb.position(line) if nb else None
    if pos is None:
        return Location(file=name, line=line, function=function, defined=defined)
    return Location(file=_shown(name, positions), line=pos[1], cell=pos[0], function=function, defined=defined)


@dataclass(frozen=True)
class Use:
    line: int
    name: str  # the resolved dotted name, e.g. torch.nn.functional.softmax
    written: str  # as the student wrote it, e.g. F.softmax
    function: str


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from every import in the file."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.partition(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([aliases.get(node.id, node.id), *reversed(parts)])


def _matches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


class _Finder(ast.NodeVisitor):
    def __init__(self, source: str, aliases: dict[str, str], forbid: list[str], allow: list[str]) -> None:
        self.source, self.aliases, self.allow = source, aliases, allow
        self.names = [f for f in forbid if not f.startswith(".")]
        self.methods = {f[1:] for f in forbid if f.startswith(".")}
        self.function = "<module>"
        self.uses: list[Use] = []

    def _record(self, node: ast.expr, name: str) -> None:
        written = ast.get_source_segment(self.source, node) or name
        self.uses.append(Use(node.lineno, name, first_line(written), self.function))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        # Annotations name types, they compute nothing: `params: list[torch.nn.Parameter]` uses no torch.nn
        for child in [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(child)
        for statement in node.body:
            self.visit(statement)
        self.function = outer

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        for child in (node.target, node.value):
            if child is not None:
                self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815 - ast.NodeVisitor's naming

    def _check(self, node: ast.Attribute | ast.Name) -> bool:
        name = _dotted(node, self.aliases)
        if name is not None and any(_matches(name, a) for a in self.allow):
            return True  # `F.one_hot`: neither it nor the `F` in it is a use
        if name is not None and any(_matches(name, f) for f in self.names):
            self._record(node, name)
            return True
        return False

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not self._check(node):
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.aliases:  # `softmax(x)` after `from torch.nn.functional import softmax`
            self._check(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in self.methods:
            if not self._check(func):  # `x.softmax(1)`: a method of anything
                self._record(func, "." + func.attr)
                self.visit(func.value)
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                self.visit(arg)
            return
        self.generic_visit(node)


def forbidden_uses(source: str, rule: Rule) -> list[Use]:
    """Every use of a name `rule` forbids, in the functions it covers (the whole file when it names none)."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    finder = _Finder(source, aliases, rule.forbid, rule.allow)
    if not rule.functions:
        finder.visit(tree)
    else:
        for node in _covered(tree, rule.functions):
            finder.visit(node)
    return sorted(set(finder.uses), key=lambda u: (u.line, u.written))


def _covered(tree: ast.Module, functions: list[str]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The graded definitions of the rule's functions (methods too), and the file's own functions and classes they
    call, transitively: a softmax that hands its work to a helper `_row_softmax` is read through it."""
    shadowed = _redefined(tree)
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n not in shadowed]
    own = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
           and n not in shadowed}  # fmt: skip
    todo: list[ast.AST] = [n for n in defs if n.name in functions]
    seen: list[ast.AST] = []
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.append(node)
        called = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        todo += [own[name] for name in called if name in own]
    out: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in seen:  # a class called (a helper model built in get_params): its methods
        out += [node] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else [
            n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]  # type: ignore[attr-defined]
    return sorted(set(out), key=lambda n: n.lineno)


def _redefined(tree: ast.Module) -> set[ast.AST]:
    """Function definitions a later one of the same name replaces in the same module or class body: a notebook's
    first try in cell 8 redefined in cell 10 is not what is graded, nor what a rule reads."""
    out: set[ast.AST] = set()
    for body in [tree.body, *(n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
        last: dict[str, ast.AST] = {}
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.name in last:
                    out.add(last[node.name])
                last[node.name] = node
    return out


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) for every absolute import in the file."""
    return [(line, module.partition(".")[0]) for line, module in imported_modules(source)]


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module as written: google.colab) for every absolute import in the file."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.lineno, node.module))
    return out


# Modules that exist only on one hosted notebook service: nothing of them can be copied into a file.
HOSTED = {"google.colab": "Google Colab", "kaggle_secrets": "Kaggle", "kaggle_datasets": "Kaggle"}


def _hosted(module: str) -> str | None:
    return next((where for name, where in HOSTED.items() if module == name or module.startswith(name + ".")), None)


def rule_problems(spec: AssignmentSpec, sources: dict[str, str], positions: Positions | None = None,
                  helpers: Sequence[str] = ()) -> list[Problem]:  # fmt: skip
    """One problem per broken rule, naming each forbidden use and its line. `sources`: file name -> text
    (files that are missing or do not parse are left to the checks, which already say so); `positions`: the
    notebooks among them, whose uses are named by cell; `helpers`: the student's own modules staged with the
    declared ones (intake), where a rule of a declared file applies as well."""
    problems = []
    for rule in spec.rules:
        if rule.file not in sources:
            continue
        uses: list[tuple[str, Use]] = []
        for name in [rule.file, *helpers]:
            try:
                uses += [(name, u) for u in forbidden_uses(sources.get(name, ""), rule)]
            except SyntaxError:
                continue
        if not uses:
            continue
        listed = ", ".join(f"{u.written} ({'' if f == rule.file else f + ' '}{_at(f, u.line, positions)}, in "
                           f"{u.function})" for f, u in uses[:8])  # fmt: skip
        more = f" and {len(uses) - 8} more" if len(uses) > 8 else ""
        problems.append(Problem(
            id=f"rule:{rule.id}", points=rule.points,
            message=f"{_shown(rule.file, positions)} uses {listed}{more}, which the handout does not allow: {rule.why}",
            locations=[_location(f, u.line, positions, u.function) for f, u in uses],
        ))  # fmt: skip
    return problems


def package_problems(
    spec: AssignmentSpec, sources: dict[str, str], positions: Positions | None = None, own: Sequence[str] = ()
) -> list[Problem]:
    """One problem per file that imports a package grading does not provide (its checks then fail where the
    package is needed; this says why, once, before they run). `own`: the student's staged helper modules."""
    allowed = set(spec.imports.packages) | set(sys.stdlib_module_names) | set(spec.modules) | {"__future__", *own}
    allowed |= loggers.PACKAGES  # answered by stand-ins in the sandbox, with a note (grader.loggers)
    problems = []
    for name, source in sources.items():
        try:
            bad = [(line, mod) for line, mod in imported_modules(source) if mod.partition(".")[0] not in allowed]
        except SyntaxError:
            continue
        if not bad:
            continue
        places = [(mod, _at(name, line, positions)) for line, mod in bad[:6]]
        lines = ", ".join(f"{mod} ({at})" if at.startswith("line") else f"{mod} in {at}" for mod, at in places)
        fixes = []
        if pkgs := sorted({mod.partition(".")[0] for _, mod in bad if not _hosted(mod)}):
            fixes.append(f"copy what you need from {' and '.join(pkgs)} into your file, or remove the import")
        for mod, where in sorted({(mod, w) for _, mod in bad if (w := _hosted(mod))}):
            skip = ("tag that cell `training` so that grading skips it, or delete it" if name in (positions or {})
                    else "remove it and what uses it")  # fmt: skip
            fixes.append(f"{mod} exists only on {where} (mounting a drive, uploading files): {skip}")
        problems.append(Problem(
            id=f"packages:{name}",
            message=f"{_shown(name, positions)} imports {lines}, which grading does not provide (allowed besides "
                    f"Python's standard library: {', '.join(sorted(spec.imports.packages))}): {'; '.join(fixes)}",
            locations=[_location(name, line, positions) for line, _ in bad],
        ))  # fmt: skip
    return problems


def definitions(source: str) -> dict[str, int]:
    """Each top-level function and class -> the line of its graded definition (the last of that name: a
    notebook's first try rewritten in a later cell is not what runs); none where the file does not parse."""
    return {n.name: n.lineno for n in getattr(syntax_tree(source), "body", []) if isinstance(n, DEFINITIONS)}


def point_at_definitions(spec: AssignmentSpec, checks: list[CheckResult], sources: dict[str, str],
                         positions: Positions | None = None) -> list[CheckResult]:  # fmt: skip
    """A check that failed on a wrong value has no line of the student's code to show: it points at the
    definitions of the functions it tests (its `functions`), so that the reports link the notebook cell or the
    line to look at."""
    specs = {c.id: c for c in spec.checks}
    lines = {name: definitions(text) for name, text in sources.items() if name.endswith(".py")}
    out = []
    for c in checks:
        check = specs.get(c.id)
        if c.status in ("failed", "partial") and not c.locations and check is not None and check.functions:
            where = []
            for fn in check.functions:
                if (f := next((f for f in check.files if fn in lines.get(f, {})), None)) is not None:
                    where.append(_location(f, lines[f][fn], positions, fn, defined=True))
            c = c.model_copy(update={"locations": where})
        out.append(c)
    return out
