"""Intake: which of the required files a submission has, their sizes and hashes, and what is wrong with each."""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path

from pydantic import BaseModel

from grader.files import UnsafeFile, open_regular, read_regular
from grader.results import FileRecord
from grader.spec import AssignmentSpec


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
                (dest / rec.name).write_bytes(read_regular(self.source / rec.name, rec.size or 0))
        return dest


def intake(spec: AssignmentSpec, folder: Path) -> Submission:
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
        path = folder / fs.name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            try:
                open_regular(path)
            except UnsafeFile as exc:
                records.append(FileRecord(name=fs.name, present=True, problem=str(exc)))
                continue
        if not path.is_file():
            hint = difflib.get_close_matches(fs.name, undeclared, n=1, cutoff=0.6)
            problem = f"{fs.name} is missing from the submission"
            problem += f"; found {hint[0]!r}: rename it to {fs.name!r}" if hint else f"; add {fs.name} and resubmit"
            records.append(FileRecord(name=fs.name, present=False, problem=problem if fs.required else None))
            continue
        size = path.stat().st_size
        problem, digest = None, None
        if size > fs.max_kb * 1024:
            problem = f"{fs.name} is {size / 1024:.0f} KiB, over the limit of {fs.max_kb} KiB"
        elif size == 0:
            problem = f"{fs.name} is empty"
        else:
            try:
                digest = hashlib.sha256(read_regular(path, fs.max_kb * 1024)).hexdigest()
            except UnsafeFile as exc:
                problem = str(exc)
        records.append(FileRecord(name=fs.name, present=True, size=size, sha256=digest, problem=problem))
    return Submission(source=folder.resolve(), files=records, ignored=undeclared)
