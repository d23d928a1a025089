"""A submitted Jupyter notebook as one Python module: pure functions on its JSON, never running it.

The judge reads a notebook only as data (its code cells' text, for the static rules and the reports); the
contestant turns the same cells into one module and imports it with grader.loader, under the same budget and
definitions-only fallback as a `.py` file. Both sides use `convert`, so they agree on every line.

How cells become a module, in notebook order:
- markdown and raw cells are left out; outputs, execution counts and widget metadata are ignored;
- a code cell tagged `training` (TRAINING_TAG) is skipped: the handout tags its training and experiment cells,
  and a student may tag their own (Jupyter: View > Cell Toolbar > Tags; Colab keeps tags in the file too);
  a later cell with no functions or classes that reads a name only skipped cells bind (a plot of the history
  that the training cell filled) is skipped too: it could only fail;
- IPython magics, shell escapes and help queries (`%matplotlib inline`, `!pip install d2l`, `x = !ls`, `%%time`,
  `torch.norm?`) where a logical line starts are commented out and listed; a cell magic whose body is not Python
  (`%%bash`, `%%writefile`) comments out the whole cell;
- a cell that is still not valid Python is left out and reported, as Jupyter would only fail that cell.

Positions are in notebook terms: cells are numbered from 1 counting every cell, markdown included (the n-th
cell from the top), and lines from 1 within the cell.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from typing import Any

TRAINING_TAG = "training"
SUFFIX = ".ipynb"
# Cell magics whose body is Python: only the magic line is commented out (`%%time` then runs the body).
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
_MAGIC = re.compile(r"^\s*(?:[A-Za-z_][\w.,\s\[\]]*=\s*)?[%!]")
_HELP = re.compile(r"^\s*(?:\?{1,2}[\w.]+|[\w.]+\?{1,2})\s*$")  # IPython's help: `torch.norm?`, `??len`
_MAGICS_READ_CLOSELY = 200  # above this many magic-like lines in a cell, each is taken as one without tokenizing


class NotebookError(ValueError):
    """The file is not a notebook the grader can read; the message says what is wrong and what to do."""


@dataclass
class CellInfo:
    """What grading did with one cell."""

    cell: int  # 1-based, counting every cell
    kind: str  # code | markdown | raw
    status: str  # run | skipped | commented | syntax_error | empty | text
    detail: str = ""


def first_line(text: str, width: int = 60) -> str:
    """How a message quotes source: the first line of `text`, cut to `width` characters."""
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= width else line[: width - 3] + "..."


@dataclass
class Converted:
    """A notebook's code cells as one module, with the map back to cells."""

    source: str
    origin: list[tuple[int, int]] = field(default_factory=list)  # module line - 1 -> (cell, line in cell)
    cell_lines: dict[int, list[str]] = field(default_factory=dict)  # cell -> its original lines
    cells: list[CellInfo] = field(default_factory=list)
    commented: list[tuple[int, int, str]] = field(default_factory=list)  # (cell, line, text)
    broken: list[tuple[int, int, str]] = field(default_factory=list)  # (cell, line, syntax error)
    redone: list[tuple[int, str, int]] = field(default_factory=list)  # (skipped cell, name it defines, run cell's)
    # a name that only code grading does not run binds -> its cell: a skipped cell, or a run cell's
    # `if __name__ == "__main__":` block (true in Jupyter, false when the grader imports the notebook)
    made: dict[str, int] = field(default_factory=dict)
    guarded: set[int] = field(default_factory=set)  # the run cells whose main-guarded names are in `made`

    def maker(self, name: str) -> str | None:
        """Where `name` comes from when only code grading skips binds it, for messages; else None."""
        if name not in self.made:
            return None
        cell = self.made[name]
        if cell in self.guarded:
            return (f'cell {cell} sets it only under `if __name__ == "__main__":`, which is false when grading '
                    "imports the notebook")
        return f"only cell {cell}, which grading skips, sets it"
    file: str = ""  # the notebook's name as submitted (`Copy of lenet.ipynb`), once intake found it

    def position(self, line: int) -> tuple[int, int] | None:
        """(cell, line in cell) of a module line, or None outside every cell."""
        return self.origin[line - 1] if 0 < line <= len(self.origin) else None

    def quote(self, cell: int, line: int) -> str:
        lines = self.cell_lines.get(cell, [])
        return first_line(lines[line - 1].strip() if 0 < line <= len(lines) else "")

    def at(self, line: int) -> str:
        """`cell 7, line 3 (`train(model)`)` for a module line."""
        pos = self.position(line)
        if pos is None:
            return f"line {line}"
        quoted = self.quote(*pos)
        return f"cell {pos[0]}, line {pos[1]}" + (f" (`{quoted}`)" if quoted else "")

    def summary(self) -> str:
        """One sentence for the file's note: what ran, what did not."""
        run = [c.cell for c in self.cells if c.status in ("run", "commented")]
        parts = [f"its {len(run)} code cell(s) run in order as one module"]
        tagged = [c.cell for c in self.cells if c.status == "skipped" and c.detail.startswith("tagged")]
        if tagged:
            parts.append(f"skipped cell(s) {', '.join(map(str, tagged))} (tagged `{TRAINING_TAG}`)")
        after = [c.cell for c in self.cells if c.status == "skipped" and c.cell not in tagged]
        if after:
            parts.append(f"skipped cell(s) {', '.join(map(str, after))}, which use what a skipped cell makes")
        if self.commented:
            shown = "; ".join(f"cell {c}, line {n}: `{t[:40]}`" for c, n, t in self.commented[:6])
            more = f" and {len(self.commented) - 6} more" if len(self.commented) > 6 else ""
            parts.append(f"commented out {len(self.commented)} magic(s) and shell escape(s) ({shown}{more})")
        for c, n, msg in self.broken:
            parts.append(f"left out cell {c}: a syntax error at line {n} ({msg}); fix it and resubmit")
        for c, name, first in self.redone:
            parts.append(f"cell {c}, tagged `{TRAINING_TAG}` and skipped, defines {name} again: the {name} graded is "
                         f"cell {first}'s; move a fix out of the tagged cell")  # fmt: skip
        return "; ".join(parts)


def _text(value: Any) -> str:
    """A cell's source: nbformat allows a string or a list of strings."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return "".join(value)
    raise NotebookError("a cell's source is neither text nor a list of lines")


def parse(data: bytes, name: str) -> list[dict[str, Any]]:
    """The cells of a notebook file (type, source text, tags), or NotebookError saying what is wrong."""
    try:
        nb = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise NotebookError(f"{name} is not a notebook: it is not UTF-8 text; save it again from Jupyter") from None
    except json.JSONDecodeError as exc:
        raise NotebookError(f"{name} is not a valid notebook: its JSON is broken at line {exc.lineno}, column "
                            f"{exc.colno} ({exc.msg}); open it in Jupyter, save it again and resubmit") from None
    except RecursionError:
        raise NotebookError(f"{name} is not a valid notebook: its JSON nests too deeply") from None
    if isinstance(nb, dict) and "nbformat" in nb and nb["nbformat"] != 4:
        raise NotebookError(f"{name} is in notebook format {nb['nbformat']!r}; the grader reads format 4 (Jupyter "
                            "since 2015, Colab): open it in a current Jupyter, save it and resubmit")  # fmt: skip
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{name} is not a Jupyter notebook (no list of cells); submit the .ipynb that "
                            "Jupyter or Colab saved")  # fmt: skip
    cells = []
    for i, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict):
            raise NotebookError(f"{name}: cell {i} is not a cell object; save the notebook again from Jupyter")
        try:
            source = _text(cell.get("source", ""))
        except NotebookError as exc:
            raise NotebookError(f"{name}: cell {i}: {exc}") from None
        meta = cell.get("metadata")
        tags = meta.get("tags") if isinstance(meta, dict) else None
        tags = tags if isinstance(tags, list) else []
        cells.append({"cell_type": str(cell.get("cell_type", "")), "source": source,
                      "metadata": {"tags": [t for t in tags if isinstance(t, str)]}})  # fmt: skip
    return cells


def normalized(cells: list[dict[str, Any]]) -> bytes:
    """The cells alone as a notebook file (no outputs, no metadata but tags): what the sandbox is given."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


def _uncomment_magics(cell: int, lines: list[str], out: Converted) -> list[str]:
    first = lines[0].strip() if lines else ""
    if first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        out.commented.append((cell, 1, first))
        if magic not in PYTHON_CELL_MAGICS:  # the body is shell, HTML, a file's text: none of it is Python
            return ["# " + line for line in lines]
        lines = ["# " + lines[0], *lines[1:]]
    done: list[str] = []
    close = sum(1 for line in lines if _MAGIC.match(line) or _HELP.match(line)) <= _MAGICS_READ_CLOSELY
    for n, line in enumerate(lines, start=1):
        if n > 1 or not first.startswith("%%"):
            if (_MAGIC.match(line) or _HELP.match(line)) and not (close and _continues(done)):
                indent = line[: len(line) - len(line.lstrip())]
                out.commented.append((cell, n, line.strip()))
                # in a block, `pass` keeps it valid; at the top a comment keeps a docstring first
                line = f"{indent}pass  # {line.strip()}" if indent else f"# {line.strip()}"
        done.append(line)
    return done


def _continues(lines: list[str]) -> bool:
    """Whether the line after `lines` continues a statement or string they leave open (`print('%d' ...` then
    `    % (i, loss))`): IPython reads `%` and `!` as magics only where a logical line starts."""
    try:
        for _ in tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline):
            pass
    except tokenize.TokenError:
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # bad indentation, hostile text: not open
        return False
    return False


def _parse_error(source: str) -> tuple[int, str] | None:
    """(line, what) when `source` is not valid Python; whatever the parser raises on hostile text is data here."""
    try:
        ast.parse(source)
    except SyntaxError as exc:
        return exc.lineno or 0, exc.msg
    except (ValueError, RecursionError, MemoryError) as exc:  # a NUL byte; nesting the parser cannot hold
        return 0, f"{type(exc).__name__}: {str(exc)[:100]}"
    return None


def convert(cells: list[dict[str, Any]]) -> Converted:
    """The code cells as one module's source, with where each line came from (see the module's docstring)."""
    out = Converted(source="")
    body: list[str] = []
    have: set[str] = set()  # the names the cells run so far bind
    made: dict[str, int] = {}  # a name only a skipped cell binds -> that cell
    defined: dict[str, int] = {}  # a function or class a run cell defines -> the last such cell
    for number, cell in enumerate(cells, start=1):
        kind = cell.get("cell_type", "")
        source = cell.get("source", "")
        if kind != "code":
            out.cells.append(CellInfo(number, kind or "raw", "text"))
            continue
        lines = source.replace("\r\n", "\n").split("\n")
        out.cell_lines[number] = lines
        if TRAINING_TAG in cell.get("metadata", {}).get("tags", []):
            out.cells.append(CellInfo(number, "code", "skipped", f"tagged `{TRAINING_TAG}`"))
            as_python = "\n".join(_uncomment_magics(number, lines, Converted(source="")))  # `%%time` above training
            tagged = syntax_tree(as_python)
            made |= dict.fromkeys(_bound(tagged) - have, number)
            out.redone += [(number, n, defined[n]) for n in _defined(tagged) if n in defined]
            continue
        if not source.strip():
            out.cells.append(CellInfo(number, "code", "empty"))
            continue
        before = len(out.commented)
        if _parse_error(source) is not None:
            lines = _uncomment_magics(number, lines, out)
        error = _parse_error("\n".join(lines))
        if error is not None:
            out.broken.append((number, *error))
            out.cells.append(CellInfo(number, "code", "syntax_error", f"line {error[0]}: {error[1]}"))
            continue
        tree = ast.parse("\n".join(lines))
        needs = [n for n in _used(tree) if n in made]
        if needs and not any(isinstance(n, DEFINITIONS) for n in tree.body):
            # It plots or prints what a skipped cell trained: it would only fail, and the tag was the student's
            # intent for both. A cell with functions or classes stays, for the definitions-only fallback.
            which = (f"cell {made[needs[0]]} makes under its main guard" if made[needs[0]] in out.guarded
                     else f"skipped cell {made[needs[0]]} makes")  # fmt: skip
            out.cells.append(CellInfo(number, "code", "skipped", f"uses `{needs[0]}`, which {which}"))
            made |= dict.fromkeys(_bound(tree) - have, number)
            del out.commented[before:]  # its magics were not run either
            continue
        guarded = _main_guarded(tree) - have
        if guarded:
            made |= dict.fromkeys(guarded, number)
            out.guarded.add(number)
        have |= _bound(tree) - guarded
        defined |= dict.fromkeys(_defined(tree), number)
        made = {n: c for n, c in made.items() if n not in have}
        magics = len(out.commented) - before
        status = "commented" if magics else "run"
        detail = f"{magics} magic(s) or shell escape(s) commented out" if magics else ""
        out.cells.append(CellInfo(number, "code", "run" if status == "run" else "commented", detail))
        for n, line in enumerate(lines, start=1):
            body.append(line)
            out.origin.append((number, n))
        body.append("")  # cells end with a blank line: a cell without a final newline stays apart
        out.origin.append((number, len(lines)))
    out.source = "\n".join(body) + "\n"
    out.made = made
    return out


def _main_guarded(tree: ast.Module) -> set[str]:
    """The names a cell binds only inside `if __name__ == "__main__":`, which runs in Jupyter but not when the
    grader imports the notebook as a module."""
    inside: set[str] = set()
    outside: list[ast.stmt] = []
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(test := node.test, ast.Compare)
                and isinstance(test.left, ast.Name) and test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)):  # fmt: skip
            inside |= _bound(ast.Module(body=node.body, type_ignores=[]))
            outside += node.orelse
        else:
            outside.append(node)
    return inside - _bound(ast.Module(body=outside, type_ignores=[]))


DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_SCOPES = (*DEFINITIONS, ast.Lambda)


def syntax_tree(cell: str | ast.AST | None) -> ast.AST | None:
    """The syntax tree of a cell or file, or None where it does not parse (whatever the parser raises on hostile
    text)."""
    try:
        return ast.parse(cell) if isinstance(cell, str) else cell
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _defined(cell: ast.AST | None) -> list[str]:
    """The functions and classes a cell defines at its top level (none where it does not parse)."""
    return [n.name for n in getattr(cell, "body", []) if isinstance(n, DEFINITIONS)]


def _outside_scopes(tree: ast.AST) -> list[ast.AST]:
    """The cell's nodes that run when the cell runs: not the bodies of its functions, lambdas and classes."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if not isinstance(node, _SCOPES):
            todo.extend(ast.iter_child_nodes(node))
    return out


def _bound(cell: str | ast.AST | None) -> set[str]:
    """The names a cell binds at the notebook's top level (assignments, imports, defs, loop targets)."""
    tree = syntax_tree(cell)
    if tree is None:
        return set()
    names: set[str] = set()
    for node in _outside_scopes(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, DEFINITIONS):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _used(tree: ast.AST) -> list[str]:
    """The names a cell reads when it runs and does not bind itself, in order."""
    own = _bound(tree)
    found = [n for n in _outside_scopes(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    found.sort(key=lambda n: (n.lineno, n.col_offset))
    return [n for n in dict.fromkeys(n.id for n in found) if n not in own]


def module_source(data: bytes, name: str) -> Converted:
    """parse + convert: a notebook file's bytes as a module (NotebookError when it is not a notebook)."""
    return convert(parse(data, name))
