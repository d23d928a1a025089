"""Generate what students get from the single source of truth in `solutions/<id>/`.

Each `### BEGIN SOLUTION[: hint]` ... `### END SOLUTION` region becomes

    # TODO: hint
    raise NotImplementedError

at the marker's indentation. `release()` writes the stub into `assignments/<id>/` and refreshes the two
examples that are derived from the solution (`examples/<id>/solution/` and `examples/<id>/stub/`), plus any
files `solutions/<id>/release_hook.py` generates (e.g. the reference state_dict's keys for public checks).
"""

from __future__ import annotations

import re
from pathlib import Path

from grader.modules import load_module
from grader.notebook import TRAINING_TAG
from grader.spec import AssignmentSpec, Course, FileSpec

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION(?::\s*(?P<hint>.*?))?\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")


class ReleaseError(Exception):
    """Unbalanced or nested solution markers; the message names the file and line."""


def strip_solution(source: str, name: str = "<source>") -> str:
    out: list[str] = []
    open_at: int | None = None
    for n, line in enumerate(source.splitlines(keepends=True), start=1):
        begin = BEGIN.match(line)
        if begin:
            if open_at is not None:
                raise ReleaseError(f"{name} line {n}: BEGIN SOLUTION inside the region opened at line {open_at}")
            open_at = n
            indent, hint = begin["indent"], begin["hint"] or "your code here"
            out.append(f"{indent}# TODO: {hint}\n{indent}raise NotImplementedError\n")
        elif END.match(line):
            if open_at is None:
                raise ReleaseError(f"{name} line {n}: END SOLUTION without a BEGIN")
            open_at = None
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise ReleaseError(f"{name} line {open_at}: BEGIN SOLUTION is never closed")
    return "".join(out)


def solution_sources(course: Course, assignment_id: str) -> list[Path]:
    """Top-level Python files of the solution that carry markers."""
    folder = course.solution_dir(assignment_id)
    return sorted(p for p in folder.glob("*.py") if "### BEGIN SOLUTION" in p.read_text(encoding="utf-8"))


def _hook_files(course: Course, assignment_id: str) -> dict[Path, str]:
    """Extra generated files from `solutions/<id>/release_hook.py` (instructor code), if it exists."""
    hook = course.solution_dir(assignment_id) / "release_hook.py"
    if not hook.is_file():
        return {}
    module = load_module(hook, f"release_hook_{assignment_id}")
    return {course.root / rel: text for rel, text in module.generated_files().items()}


GENERATED = re.compile(r"(<!-- BEGIN GENERATED: grading -->\n).*?(<!-- END GENERATED -->)", re.S)


def _kib(kb: int) -> str:
    return f"{kb // 1024} MiB" if kb % 1024 == 0 else f"{kb} KiB"


def grading_section(spec: AssignmentSpec) -> str:
    """The handout's "How your code is run" section, from assignment.toml, so the two never disagree."""
    def size(f: FileSpec) -> str:
        text = f"`{f.name}` at most {_kib(f.max_kb)}"
        if f.name.endswith((".pth", ".pt")):
            text += (f" (a weights file over it, e.g. with optimizer state, is still read up to "
                     f"{_kib(f.max_kb * f.oversize_factor)}, with a note on saving only the weights)")  # fmt: skip
        return text

    files = "; ".join(size(f) for f in spec.files)
    names = [f"`{m}.py`" for m in spec.modules]
    modules = f"{names[0]} is" if len(names) == 1 else f"each of {', '.join(names)} is"
    data = " The datasets are provided read-only (`$GRADER_DATA_ROOT`); nothing is downloaded." if spec.datasets else ""
    lim, imp = spec.limits, spec.imports
    timeouts = sorted({c.timeout for c in spec.checks})
    per_check = f"{timeouts[0]:g} s" if len(timeouts) == 1 else f"{timeouts[0]:g} to {timeouts[-1]:g} s"
    lines = [
        "## How your code is run",
        "",
        f"- **Files**: {files}. A file in a folder inside your submission, or with other capitals "
        f"(`{spec.files[0].name.capitalize()}`), or as a second download names it "
        f"(`{spec.files[0].name.replace('.', ' (1).', 1)}`), is found and graded, with a note; of two copies, the "
        "one with fewer unfinished TODOs.",
        f"- **Where**: a sandbox with no network, {'a GPU' if spec.needs_gpu else 'the CPU'} and {lim.threads} "
        f"thread{'s' if lim.threads > 1 else ''}, {lim.memory_mb} MiB of memory; each check has its own time limit "
        f"({per_check}).{data}",
        f"- **Importing your code**: {modules} imported once, with a budget of {imp.cpu_seconds:g} s of CPU time "
        f"({imp.wall_seconds:g} s on the clock). Keep what "
        'trains, parses arguments or downloads data under `if __name__ == "__main__":`. If importing runs past '
        "the budget, exits or fails, only the file's definitions (imports, functions, classes and assignments) "
        "are imported and graded, top-level loops and calls are left out (but not those that configure, such as "
        f"`parser.add_argument(...)` or a seed), and {imp.fallback_penalty:.0%} of the points are taken off. A "
        "syntax error does the same, leaving out the function (or top-level statement) that holds it: only the "
        "checks that need that function lose their points.",
        "- **Packages**: besides Python's standard library, your code may import "
        f"{', '.join(sorted(imp.packages))}. Anything else (e.g. `d2l`) is not there: copy the functions you "
        "need into your file. Importing one costs nothing by itself (the report names it); only the "
        "checks whose code needs it lose points. Plots (`plt.show()`) never need a screen.",
        "- **Your trained model is measured by the grader itself**: your weights run in your own model (the "
        "handout's, when yours computes the same; else yours, exported from the sandbox as an ONNX graph and "
        "checked), on data your code never sees; no number your code reports is graded. A model built otherwise "
        "than the handout asks still earns what it really achieves; only the architecture checks deduct.",
        "- **One mistake is charged once**: each check tests one function, with the reference standing in for "
        "your others; a check that depends on a function another check already marks wrong says so and "
        "takes nothing.",
    ]
    notebooks = [f.name for f in spec.files if f.notebook]
    if notebooks:
        stand_ins = ", ".join(f"`{n[:-3]}.ipynb`" for n in notebooks)
        files = ", ".join(f"`{n}`" for n in notebooks)
        lines.append(f"- **Notebooks**: {stand_ins} may be submitted in place of {files} "
                     f"(Jupyter or Colab). Its code cells run in order as one module, under the same budget; cells "
                     f"tagged `{TRAINING_TAG}` are skipped (tag every cell that trains or experiments); magics and "
                     "shell escapes (`%matplotlib inline`, `!pip install`) are commented out; messages point at "
                     '"cell 7, line 3", counting every cell from the top.')  # fmt: skip
    for rule in spec.rules:
        where = f"in {', '.join(f'`{f}`' for f in rule.functions)}" if rule.functions else f"in `{rule.file}`"
        lines.append(f"- **Rule ({rule.points:g} points)**: {rule.why}. Checked by reading your code {where}: "
                     f"no {', '.join(f'`{n}`' for n in rule.forbid)}"
                     + (f" (allowed: {', '.join(f'`{n}`' for n in rule.allow)})" if rule.allow else "") + ".")
    return "\n".join(lines) + "\n"


def _handout(course: Course, assignment_id: str) -> dict[Path, str]:
    """The handout with its generated section refreshed, if it has one (between the GENERATED markers)."""
    path = course.assignment_dir(assignment_id) / "README.md"
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    section = grading_section(course.spec(assignment_id))
    new = GENERATED.sub(lambda m: m.group(1) + section + m.group(2), text)
    return {path: new} if new != text or GENERATED.search(text) else {}


def planned_files(course: Course, assignment_id: str) -> dict[Path, str]:
    """Every file release writes, with its content."""
    plan: dict[Path, str] = {**_hook_files(course, assignment_id), **_handout(course, assignment_id)}
    examples = course.examples_dir(assignment_id)
    for src in solution_sources(course, assignment_id):
        text = src.read_text(encoding="utf-8")
        stub = strip_solution(text, str(src))
        plan[course.assignment_dir(assignment_id) / src.name] = stub
        plan[examples / "stub" / src.name] = stub
        plan[examples / "solution" / src.name] = text
    return plan


def release(course: Course, assignment_id: str, check: bool = False, fmt: str = "py") -> list[Path]:
    """Write the generated files (fmt "py": the stubs; "ipynb": the notebooks, grader.release_notebook); with
    check=True write nothing and return those that are stale."""
    if fmt == "ipynb":
        from grader.release_notebook import planned_notebooks

        plan = planned_notebooks(course, assignment_id)
    else:
        plan = planned_files(course, assignment_id)
    stale = []
    for path, content in plan.items():
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
    return stale
