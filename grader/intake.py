"""Intake: which of the required files a submission has, their sizes and hashes, and what is wrong with each."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from pydantic import BaseModel

from grader.files import UnsafeFile, open_regular, read_regular
from grader.results import FileRecord
from grader.spec import AssignmentSpec, FileSpec


class IntakeError(Exception):
    """The submission as a whole cannot be read (no such folder, not a folder)."""


class Submission(BaseModel):
    source: Path
    files: list[FileRecord]
    ignored: list[str]

    def record(self, name: str) -> FileRecord:
        return next(f for f in self.files if f.name == name)

    def usable(self, name: str) -> bool:
        rec = self.record(name)
        return rec.present and rec.problem is None

    def stage(self, dest: Path) -> Path:
        """Copy only the usable declared files into `dest`: the sandbox never sees anything else."""
        dest.mkdir(parents=True, exist_ok=True)
        for rec in self.files:
            if rec.present and rec.problem is None:
                (dest / rec.name).write_bytes(read_regular(self.source / (rec.found_as or rec.name), rec.size or 0))
        return dest


JUNK = {"__MACOSX", ".git", ".ipynb_checkpoints", "__pycache__"}
SEARCH_DEPTH = 2  # nested folders searched for a file that is not at the top (a zipped folder inside a folder)
WEIGHTS_SUFFIXES = (".pth", ".pt")


def _candidates(folder: Path, name: str) -> list[Path]:
    """Where `name` might be: at the top, then in nested folders, by exact name first, then ignoring case."""
    levels: list[list[Path]] = [[folder]]
    for _ in range(SEARCH_DEPTH):
        levels.append([d for parent in levels[-1] for d in sorted(parent.iterdir())
                       if d.is_dir() and not d.is_symlink() and d.name not in JUNK and not d.name.startswith(".")])
    for level in levels:
        for exact in (True, False):
            found = [d / n for d in level for n in _names(d)
                     if (n == name if exact else n.lower() == name.lower() and n != name)]  # fmt: skip
            if found:
                return found
    return []


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
        found = _candidates(folder, fs.name)
        if not found:
            hint = difflib.get_close_matches(fs.name, undeclared, n=1, cutoff=0.6)
            problem = f"{fs.name} is missing from the submission"
            problem += f"; found {hint[0]!r}: rename it to {fs.name!r}" if hint else f"; add {fs.name} and resubmit"
            records.append(FileRecord(name=fs.name, present=False, problem=problem if fs.required else None))
            continue
        path = found[0]
        rel = path.relative_to(folder).as_posix()
        note: str | None = None
        if rel != fs.name:
            note = f"found {fs.name} as {rel}: graded it; next time submit it as {fs.name} at the top of your folder"
            if len(found) > 1:
                note += f" (also found: {', '.join(p.relative_to(folder).as_posix() for p in found[1:4])})"
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
            problem = f"{fs.name} is empty"
        else:
            try:
                digest = hashlib.sha256(read_regular(path, hard)).hexdigest()
            except UnsafeFile as exc:
                problem = str(exc)
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
    return Submission(source=folder.resolve(), files=records, ignored=undeclared)
