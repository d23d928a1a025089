"""Intake: which of the required files a submission has, their sizes and hashes, and what is wrong with each."""

from __future__ import annotations

import difflib
import hashlib
import re
import sys
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from grader import notebook
from grader.files import UnsafeFile, open_regular, read_regular
from grader.loader import read_source_text, source_encoding
from grader.loggers import logger_note
from grader.results import FileRecord, NotebookCell
from grader.spec import WEIGHTS_SUFFIXES, AssignmentSpec, FileSpec


class IntakeError(Exception):
    """The submission as a whole cannot be read (no such folder, not a folder)."""


class Submission(BaseModel):
    source: Path
    files: list[FileRecord]
    ignored: list[str]
    # The student's own modules that the declared ones import from beside them (utils.py, models/): staged with
    # them, by the path the declared module imports them at (`name`), from where they were found (`found_as`).
    helpers: list[FileRecord] = []
    # Small text files their code names and reads (config.json beside exp1.py): staged the same way, and copied
    # into the contestant's working folder, where a path relative to the student's folder is looked up.
    data: list[FileRecord] = []

    def record(self, name: str) -> FileRecord:
        return next(f for f in [*self.files, *self.helpers, *self.data] if f.name == name)

    @property
    def helper_modules(self) -> list[str]:
        """The import names of the helpers (utils, models), in the order found: a declared module's first."""
        return list(dict.fromkeys(h.name.split("/")[0].removesuffix(".py") for h in self.helpers))

    def usable(self, name: str) -> bool:
        rec = self.record(name)
        return rec.present and rec.problem is None

    def stage(self, dest: Path) -> Path:
        """Copy only the usable declared files into `dest`: the sandbox never sees anything else. A notebook
        standing in for a .py file is staged as `<stem>.ipynb` with its cells only (no outputs)."""
        dest.mkdir(parents=True, exist_ok=True)
        for rec in [*self.files, *self.helpers, *self.data]:
            if rec.present and rec.problem is None:
                data = read_regular(self.source / (rec.found_as or rec.name), rec.size or 0)
                if is_notebook(rec):
                    cells = notebook.parse(data, rec.found_as or rec.name)
                    (dest / rec.name).with_suffix(notebook.SUFFIX).write_bytes(notebook.normalized(cells))
                else:
                    (dest / rec.name).parent.mkdir(parents=True, exist_ok=True)
                    (dest / rec.name).write_bytes(data)
        return dest

    def converted(self, name: str) -> notebook.Converted | None:
        """A usable notebook standing in for `name`, as the module the contestant imports; None for a file."""
        rec = self.record(name)
        if not (is_notebook(rec) and self.usable(name)):
            return None
        converted = notebook.module_source(read_regular(self.source / (rec.found_as or name), rec.size or 0), name)
        converted.file = PurePosixPath(rec.found_as or name).name
        return converted

    def text(self, name: str, cap: int) -> str:
        """A usable source file's text (a notebook's code cells as one module), read as data, at most `cap` bytes."""
        converted = self.converted(name)
        if converted is not None:
            return converted.source
        rec = self.record(name)
        return read_source_text(read_regular(self.source / (rec.found_as or rec.name), min(cap, rec.size or cap)))


def is_notebook(rec: FileRecord) -> bool:
    """A notebook found in place of a declared .py file."""
    return (rec.found_as or "").lower().endswith(notebook.SUFFIX) and rec.name.endswith(".py")


JUNK = {"__MACOSX", ".git", ".ipynb_checkpoints", "__pycache__"}
SEARCH_DEPTH = 2  # nested folders searched for a file that is not at the top (a zipped folder inside a folder)


def _candidates(folder: Path, name: str, declared: Collection[str] = ()) -> list[Path]:
    """Where `name` might be: at the top, then in nested folders, by exact name first, then ignoring case, then
    under a name the student's system or habit gave it (`_near_miss`) that is no other declared file's."""
    levels: list[list[Path]] = [[folder]]
    for _ in range(SEARCH_DEPTH):
        levels.append([d for parent in levels[-1] for d in sorted(parent.iterdir())
                       if d.is_dir() and not d.is_symlink() and d.name not in JUNK and not d.name.startswith(".")])
    tests = (lambda n: n == name, lambda n: n.lower() == name.lower(),
             lambda n: n not in declared and _near_miss(n, name))  # fmt: skip
    found: list[Path] = []
    for level in levels:
        # every copy at the shallowest level that has one, exact names first: `exp1 (1).py` may be the finished one;
        # deeper too while each copy so far is the stub's (the handout's exp2.py at the top, the work in work/)
        found += dict.fromkeys(d / n for test in tests for d in level for n in _names(d) if test(n))
        if found and not all(_unfinished(p) for p in found):
            break
    return list(dict.fromkeys(found))


def _unfinished(p: Path) -> int:
    """How many of the stub's `NotImplementedError`s a copy still has (a file that cannot be read: the most). In a
    notebook, its code cells' (a traceback saved in an output names NotImplementedError four times)."""
    try:
        if p.suffix != notebook.SUFFIX:
            return read_regular(p, 4 << 20).count(b"NotImplementedError")
        cells = notebook.parse(read_regular(p, 64 << 20), p.name)
    except (UnsafeFile, notebook.NotebookError):
        return 1 << 30
    return sum(str(c.get("source", "")).count("NotImplementedError") for c in cells if c.get("cell_type") == "code")


def _best_first(found: list[Path]) -> tuple[list[Path], str]:
    """Several copies of one file (v1/exp1.py and v2/exp1.py, exp1.py and `exp1 (1).py`): the most finished first,
    with why for the note. The fewest `NotImplementedError`s left of the stub's TODOs, then the declared name over
    a copy's, then the shallowest, then the newest; the order found when they tie."""
    if len(found) < 2:
        return found, ""

    def age(p: Path) -> float:
        try:
            return -p.lstat().st_mtime
        except OSError:
            return 0.0

    left = {p: _unfinished(p) for p in found}  # each copy read once
    exact = {p: p.name != found[0].name for p in found}  # found[0] has the best name found
    ranked = sorted(found, key=lambda p: (left[p], exact[p], len(p.parts), age(p)))
    if ranked[0] == found[0]:
        return found, ""
    why = "with the fewest unfinished TODOs" if left[ranked[0]] < left[found[0]] else "saved last"
    return ranked, f"; graded the copy {why}, so submit only the one you mean"


# What a download, a second save or an LMS appends to a name: `exp1 (1).py`, `exp1-1.py` (Canvas, a re-upload),
# `exp1 - Copy.py`, `exp1_副本.py`, `exp1的副本.py`; and what Colab's "Save a copy in Drive" puts before it:
# `Copy of lenet.ipynb`, `Copy of Copy of lenet.ipynb`.
_COPY_SUFFIX = re.compile(r"(?:\s*\(\d+\)|-\d+|\s*-\s*copy(?:\s*\(\d+\))?|\s+copy|(?:_|\s*的)?副本)$")
_COPY_PREFIX = re.compile(r"^(?:copy of\s+)+")
# torch.save's usual suffixes: a model.pt or model.pkl is the model.pth the handout asked for.
_WEIGHTS_ALIKE = (".pth", ".pt", ".pkl", ".pth.tar", ".tar", ".ckpt")


def _near_miss(found: str, name: str) -> bool:
    """Whether `found` is the declared `name` under a name a student's system or habit gave it: a copy suffix, an
    added `.txt` (exp1.py.txt), or for weights another of torch.save's suffixes (model.pt)."""
    got, want = found.lower().removesuffix(".txt"), name.lower()
    stem, ext = want.rsplit(".", 1)
    suffixes = _WEIGHTS_ALIKE if want.endswith(WEIGHTS_SUFFIXES) else (f".{ext}",)
    return any(got.endswith(sfx) and _COPY_PREFIX.sub("", _COPY_SUFFIX.sub("", got.removesuffix(sfx))).strip() == stem
               for sfx in suffixes)  # fmt: skip


def _names(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir())
    except OSError:
        return []


def _why_big(path: Path, fs: FileSpec, size: int) -> str | None:
    """What makes a weights file big, by top-level entry, read safely within its hard cap; None when it is not
    a weights file the grader can read (then it is simply over its limit)."""
    from grader.judge.weights import WeightsError, weights_from_bytes

    try:
        obj = weights_from_bytes(read_regular(path, size), fs.name)
    except (WeightsError, UnsafeFile):
        return None
    if not isinstance(obj, dict):
        return ""
    sizes = {str(k): _tensor_bytes(v) for k, v in obj.items()}
    parts = [f"{k!r} ({v / 2**20:.1f} MiB)" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if v][:4]
    return f" it holds {', '.join(parts)}" + ("," if parts else "")


def _whole_models(data: bytes, fs: FileSpec) -> str | None:
    """A note when a weights file holds whole pickled models, which the judge reads as their state_dicts."""
    from grader.judge.weights import WeightsError, whole_models

    if not fs.name.endswith(WEIGHTS_SUFFIXES):
        return None
    try:
        models = whole_models(data, fs.name)
    except WeightsError:
        return None  # the checks that read it say what is wrong
    if not models:
        return None
    names = ", ".join(dict.fromkeys(m.rsplit(".", 1)[-1] for m in models))
    what = f"the whole model ({names})" if len(models) == 1 else f"{len(models)} whole models ({names})"
    return (f"{fs.name} holds {what}, pickled, where only {'its' if len(models) == 1 else 'their'} weights were "
            "expected: the grader read the weights out of it without running any of its code, and graded them. "
            "Next time save "
            "model.state_dict() in the format the assignment asks for")


def _tensor_bytes(value: object, seen: set[int] | None = None) -> int:
    import torch

    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        key = value.untyped_storage().data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return value.untyped_storage().nbytes()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v, seen) for v in value)
    return 0


# A notebook over its limit is still read up to this multiple: saved outputs (plots, logs) make it big, and
# grading reads only its code cells.
NOTEBOOK_OUTPUTS_FACTOR = 4
CLEAR_OUTPUTS = ("its outputs (images, printed logs) make it big: clear them (Jupyter: Edit > Clear Outputs of All "
                 "Cells; Colab: Edit > Clear all outputs), save and resubmit")


def _notebook_record(fs: FileSpec, folder: Path, found: list[Path]) -> FileRecord:
    """A notebook standing in for the .py file `fs`: read as data (JSON) here, its code run only in the sandbox."""
    found, why = _best_first(found)
    path = found[0]
    rel = path.relative_to(folder).as_posix()
    note = f"graded the notebook {rel} in place of {fs.name}"
    if len(found) > 1:
        note += f" (also found: {', '.join(p.relative_to(folder).as_posix() for p in found[1:4])}{why})"
    record = FileRecord(name=fs.name, present=True, found_as=rel, note=note)
    try:
        open_regular(path)
    except UnsafeFile as exc:
        return record.model_copy(update={"problem": str(exc)})
    size, limit = path.stat().st_size, fs.notebook_max_kb * 1024
    record.size = size
    over = f"{rel} is {size / 2**20:.1f} MiB, over the {_size(limit)} notebook limit"
    if size > limit * NOTEBOOK_OUTPUTS_FACTOR:
        record.problem = f"{over}; {CLEAR_OUTPUTS}"
        return record
    if size == 0:
        record.problem = f"{rel} is empty (0 bytes): save it again and resubmit; an upload that failed leaves this"
        return record
    try:
        data = read_regular(path, limit * NOTEBOOK_OUTPUTS_FACTOR)
        record.sha256 = hashlib.sha256(data).hexdigest()
        converted = notebook.module_source(data, rel)
    except (UnsafeFile, notebook.NotebookError) as exc:
        record.problem = str(exc)
        return record
    if size > limit and len(converted.source.encode()) > limit:  # its code itself, not saved outputs
        record.problem = f"{over}, in its code cells alone"
        return record
    record.cells = [NotebookCell(cell=c.cell, kind=c.kind, status=c.status, detail=c.detail) for c in converted.cells]
    record.note = f"{note}: {converted.summary()}"
    if size > limit:  # grading reads code cells only: the outputs that made it big cost nothing
        record.note += f". {over} with its saved outputs, which grading never reads (its code cells were graded); " \
                       f"{CLEAR_OUTPUTS}"
    return record


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 1024:g} KiB"


SAVE_WEIGHTS = "save only the weights, e.g. torch.save(model.state_dict(), ...), without the optimizer or snapshots"


def intake(spec: AssignmentSpec, folder: Path) -> Submission:
    """Find each declared file (at the top, else in a nested folder or under another case, with a note),
    and say what is wrong with each."""
    if not folder.exists():
        raise IntakeError(f"submission folder {folder} does not exist")
    if not folder.is_dir():
        raise IntakeError(f"{folder} is not a folder: pass the folder that holds your submitted files")
    present = sorted(p.name for p in folder.iterdir())
    declared = {fs.name for fs in spec.files}
    # A near-miss name is only a hint if it is not itself a declared file (softmax.py is not softmax.pth).
    undeclared = [n for n in present if n not in declared]
    records = []
    for fs in spec.files:
        found = _candidates(folder, fs.name, declared)
        notebooks = _candidates(folder, fs.name[:-3] + notebook.SUFFIX, declared) if fs.notebook else []
        if notebooks and found:
            best = _best_first(found)[0][0]  # ranked again below, where its note is made
            if _unfinished(_best_first(notebooks)[0][0]) < _unfinished(best):  # the .py is the stub
                record = _notebook_record(fs, folder, notebooks)
                stub = best.relative_to(folder).as_posix()
                record.note = f"{record.note}. Also found {stub}, with more unfinished TODOs: submit only one of them"
                records.append(record)
                continue
        if not found and notebooks:
            records.append(_notebook_record(fs, folder, notebooks))
            continue
        if not found:
            hint = difflib.get_close_matches(fs.name, undeclared, n=1, cutoff=0.6)
            if not hint and fs.name.endswith(WEIGHTS_SUFFIXES):  # final.pt where model.pth was asked for
                hint = [n for n in undeclared if n.lower().endswith(_WEIGHTS_ALIKE)][:1]
            missing = f"{fs.name} is missing from the submission"
            missing += f"; found {hint[0]!r}: rename it to {fs.name!r}" if hint else f"; add {fs.name} and resubmit"
            records.append(FileRecord(name=fs.name, present=False, problem=missing if fs.required else None))
            continue
        found, chosen = _best_first(found)
        path = found[0]
        rel = path.relative_to(folder).as_posix()
        note: str | None = None
        if rel != fs.name:
            note = _moved_note([fs.name], rel)
            if len(found) > 1:
                note += f" (also found: {', '.join(p.relative_to(folder).as_posix() for p in found[1:4])}{chosen})"
        if notebooks:
            also = f"also found {notebooks[0].relative_to(folder).as_posix()}; graded {rel}, not the notebook"
            note = f"{note}. {also}" if note else also
        try:
            open_regular(path)
        except UnsafeFile as exc:
            records.append(FileRecord(name=fs.name, present=True, problem=str(exc), found_as=rel, note=note))
            continue
        size = path.stat().st_size
        problem: str | None = None
        digest: str | None = None
        limit = fs.max_kb * 1024
        hard = limit * fs.oversize_factor if fs.name.endswith(WEIGHTS_SUFFIXES) else limit
        if size > hard:
            problem = f"{fs.name} is {size / 1024:.0f} KiB, over the limit of {fs.max_kb} KiB"
            if hard > limit:
                problem += (f" (and over {hard // 1024} KiB, the most the grader reads): it likely holds more than "
                            f"the weights; {SAVE_WEIGHTS}")  # fmt: skip
        elif size == 0:
            problem = f"{fs.name} is empty (0 bytes): save it again and resubmit; an upload that failed leaves this"
        else:
            try:
                data = read_regular(path, hard)
                digest = hashlib.sha256(data).hexdigest()
            except UnsafeFile as exc:
                problem = str(exc)
            else:
                if whole := _whole_models(data, fs):
                    note = f"{note}. {whole}" if note else whole
                if fs.name.endswith(".py") and source_encoding(data) == "gb18030":
                    legacy = (f"{rel} is saved as GBK, not UTF-8, and does not say so: Python refuses to run such a "
                              "file (SyntaxError: Non-UTF-8 code). The grader read it as GBK; save it as UTF-8, "
                              "or make `# -*- coding: gbk -*-` its first line")  # fmt: skip
                    note = f"{note}. {legacy}" if note else legacy
        why = _why_big(path, fs, size) if problem is None and size > limit else ""
        if why is None:
            problem = f"{fs.name} is {size / 1024:.0f} KiB, over the limit of {fs.max_kb} KiB"
        elif problem is None and size > limit:
            big = (f"{fs.name} is {size / 2**20:.1f} MiB, over its {fs.max_kb} KiB limit:{why} more than the weights "
                   f"the checks read. The grader read it anyway and used only what the checks need; next time "
                   f"{SAVE_WEIGHTS}")  # fmt: skip
            note = f"{note}. {big}" if note else big
        records.append(FileRecord(name=fs.name, present=True, size=size, sha256=digest, problem=problem,
                                  found_as=rel if rel != fs.name else None, note=note))  # fmt: skip
    sub = Submission(source=folder.resolve(), files=_one_note_per_folder(records), ignored=undeclared)
    _add_helpers(spec, sub)
    _add_data(sub)
    _add_logger_notes(sub)
    return sub


MAX_HELPERS = 32  # files of the student's own modules staged besides the declared ones (a models/ package of
PACKAGE_DEPTH = 2  # pytorch-cifar's has 19), from a package's folder and its subfolders this deep
HELPER_MAX_KB = 512  # each (d2l's whole torch.py, copied beside the module, is 150 KiB)


def _add_helpers(spec: AssignmentSpec, sub: Submission) -> None:
    """Stage the student's own modules that a declared module imports from its folder (`from my_utils import
    train` with my_utils.py beside exp1.py, or a models/ package), and theirs in turn: a TA running the code
    would have them. Each is read as data, up to HELPER_MAX_KB; anything else a declared module imports is left
    to the import check's message. The declared module's record gets one note."""
    from grader.judge.source_rules import imported_packages

    known = set(spec.imports.packages) | set(sys.stdlib_module_names) | set(spec.modules) | {"__future__"}
    for rec in sub.files:
        if not (rec.name.endswith(".py") and rec.present and rec.problem is None):
            continue
        base = PurePosixPath(rec.found_as or rec.name).parent
        texts, staged = [sub.text(rec.name, rec.size or 0)], []
        while texts and len(sub.helpers) < MAX_HELPERS:
            try:
                wanted = [name for _, name in imported_packages(texts.pop())]
            except SyntaxError:
                continue
            for name in dict.fromkeys(wanted):
                if name in known or not name.isidentifier():
                    continue
                known.add(name)
                for found in _helper_files(sub.source, base, name, MAX_HELPERS - len(sub.helpers)):
                    sub.helpers.append(found)
                    staged.append(_as_found(found))
                    texts.append(sub.text(found.name, HELPER_MAX_KB * 1024))
                    top = PurePosixPath(found.found_as or found.name).parts[0]
                    sub.ignored = [n for n in sub.ignored if n != top]
        if staged:
            tops = sorted(set(staged))
            listed = " and ".join(", ".join(tops).rsplit(", ", 1))
            shown = PurePosixPath(rec.found_as or rec.name).name  # exp1.ipynb, where the notebook stands in
            also = (f"graded with {listed} from your folder, which {shown} imports; the assignment asks for "
                    f"{shown} itself, so next time copy what you use from {'them' if len(tops) > 1 else 'it'} "
                    f"into {shown}")  # fmt: skip
            rec.note = f"{rec.note}. G{also[1:]}" if rec.note else also


DATA_SUFFIXES = (".json", ".yaml", ".yml", ".toml", ".txt", ".csv", ".tsv", ".ini", ".cfg", ".conf")
MAX_DATA = 8  # files, each up to DATA_MAX_KB: settings and small tables, not a dataset
DATA_MAX_KB = 256


def _add_data(sub: Submission) -> None:
    """Stage the small text files that the declared modules and their helpers name in a string literal, found in
    the student's folder (`open("config.json")`, `os.path.join(os.path.dirname(__file__), "hparams.yaml")`): a TA
    running the code would have them. Read as data, never parsed by the judge. The declared module's record gets
    one note, which costs nothing."""
    for rec in sub.files:
        if not (rec.name.endswith(".py") and rec.present and rec.problem is None):
            continue
        base = PurePosixPath(rec.found_as or rec.name).parent
        found: list[str] = []
        for name in [rec.name, *(h.name for h in sub.helpers)]:
            folder = PurePosixPath(name).parent  # a helper in models/ names its files from there (__file__)
            for literal in _path_literals(sub.text(name, HELPER_MAX_KB * 1024)):
                for rel in dict.fromkeys((folder / literal, PurePosixPath(literal))):
                    if len(sub.data) < MAX_DATA and (data := _data_file(sub, base, rel)) is not None:
                        sub.data.append(data)
                        found.append(rel.as_posix())
                        sub.ignored = [n for n in sub.ignored if n != rel.parts[0]]
        if found:
            shown, listed = PurePosixPath(rec.found_as or rec.name).name, " and ".join(", ".join(found).rsplit(", ", 1))
            also = f"gave {shown} {listed} from your folder, which your code reads"
            rec.note = f"{rec.note}. G{also[1:]}" if rec.note else also


def _add_logger_notes(sub: Submission) -> None:
    """A note on each declared module whose code (or a helper's) logs with TensorBoard, W&B and the like."""
    for rec in sub.files:
        if not (rec.name.endswith(".py") and rec.present and rec.problem is None):
            continue
        shown, nb = PurePosixPath(rec.found_as or rec.name).name, sub.converted(rec.name)
        for name in [rec.name, *(h.name for h in sub.helpers)]:
            own = name == rec.name
            text = sub.text(name, HELPER_MAX_KB * 1024)
            if said := logger_note(shown if own else name, text, nb.at if own and nb else None):
                rec.note = f"{rec.note}. {said}" if rec.note else said
                break


def _path_literals(source: str) -> list[str]:
    """String constants in `source` that could be a relative path to a data file of the student's folder."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 200:
            text = node.value.strip().removeprefix("./")
            if text.lower().endswith(DATA_SUFFIXES) and not text.startswith(("/", "~")) and "\0" not in text:
                out.append(text)
    return out


def _data_file(sub: Submission, base: PurePosixPath, rel: PurePosixPath) -> FileRecord | None:
    """`rel` in the student's folder `base` as a staged record, if it is a small regular file not yet staged."""
    if ".." in rel.parts or rel.as_posix() in {r.name for r in [*sub.files, *sub.helpers, *sub.data]}:
        return None
    path = sub.source / base / rel
    # every folder on the way a real one of the submission: a linked folder could reach out of it
    steps = [sub.source / PurePosixPath(*(base / rel).parts[:i]) for i in range(1, len((base / rel).parts) + 1)]
    if not path.is_file() or any(p.is_symlink() for p in steps):
        return None
    try:
        data = read_regular(path, DATA_MAX_KB * 1024)
    except UnsafeFile:
        return None  # a link, a FIFO, too big: not staged; the code's own open() fails as it would
    found = (base / rel).as_posix()
    return FileRecord(name=rel.as_posix(), present=True, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                      found_as=found if found != rel.as_posix() else None)  # fmt: skip


def _as_found(helper: FileRecord) -> str:
    """A helper as the student sees it in their folder: hw1/utils.py, or a package's folder, models/."""
    inside = len(PurePosixPath(helper.name).parts) - 1  # the package's own folders above the file
    found = PurePosixPath(helper.found_as or helper.name).parts
    return "/".join(found[: len(found) - inside]) + ("/" if inside else "")


def _package_files(package: Path, depth: int = PACKAGE_DEPTH) -> list[Path]:
    """The .py files of a package folder and of its subfolders `depth` deep, links and junk left out."""
    entries = sorted(package.iterdir())
    files = [p for p in entries if p.suffix == ".py"]
    if depth:
        for d in entries:
            if d.is_dir() and not d.is_symlink() and d.name not in JUNK and not d.name.startswith("."):
                files += _package_files(d, depth - 1)
    return files


def _helper_files(root: Path, base: PurePosixPath, name: str, room: int) -> list[FileRecord]:
    """`name`.py in `base`, or the .py files of the package `name`/ there (a folder without `__init__.py` is a
    namespace package to Python), as records."""
    folder = root / base
    single, package = folder / f"{name}.py", folder / name
    is_package = package.is_dir() and not package.is_symlink()
    # Python's own finder: a package with __init__.py, then a module, then a namespace folder.
    if single.is_file() and not single.is_symlink() and not (is_package and (package / "__init__.py").is_file()):
        paths = [single]
    elif is_package:
        paths = _package_files(package)[:room]
    else:
        return []
    out = []
    for path in paths:
        try:
            data = read_regular(path, HELPER_MAX_KB * 1024)
        except UnsafeFile:
            continue  # a link, a FIFO, too big: not staged; importing it fails with the usual message
        rel = path.relative_to(root).as_posix()
        staged = path.relative_to(folder).as_posix()
        out.append(FileRecord(name=staged, present=True, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                              found_as=rel if rel != staged else None))  # fmt: skip
    return out


def _moved_note(names: list[str], rel: str) -> str:
    if len(names) == 1:
        where = "" if "/" not in rel else " at the top of your folder"
        return f"found {names[0]} as {rel}: graded it; next time submit it as {names[0]}{where}"
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    return (f"found {listed} in {rel}/: graded them; next time submit them at the top of your folder, "
            f"not inside {rel}/")


def _one_note_per_folder(records: list[FileRecord]) -> list[FileRecord]:
    """Files that sit, under their own names, in one nested folder are one slip: say it once, on the first
    (the others keep `found_as`)."""
    moved: dict[str, list[FileRecord]] = {}
    for r in records:
        where = PurePosixPath(r.found_as or r.name)
        if where.name == r.name and r.found_as and not r.problem and r.note == _moved_note([r.name], r.found_as):
            moved.setdefault(str(where.parent), []).append(r)
    for parent, group in moved.items():
        if len(group) > 1:
            group[0].note = _moved_note([r.name for r in group], parent)
            for r in group[1:]:
                r.note = None
    return records
