"""`grader assets build`: produce the trained weights of an assignment's bundled examples by real runs.

solutions/<id>/assets.json lists, in order, which example folders to train and how:

    {"script": "exp2.py",
     "runs": [{"example": "solution", "args": ["--data-root", "{data_root}", "--save-at", "5"],
               "copy": {"epoch5.pth": "assignments/exp2/pretrain_model.pth"}}]}

`{data_root}` and `{course}` in args are substituted; `copy` maps a file the run wrote (relative to the example
folder) to a path relative to the course root. Later runs may use what earlier ones copied.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from grader.data import resolve_data_root
from grader.spec import Course, format_validation_error


class AssetsError(Exception):
    pass


class Run(BaseModel):
    example: str
    args: list[str] = Field(default_factory=list)
    copy_files: dict[str, str] = Field(default_factory=dict, alias="copy")
    remove: list[str] = Field(default_factory=list, description="scratch files to delete after the run")


class AssetPlan(BaseModel):
    script: str
    runs: list[Run]


def load_plan(course: Course, assignment: str) -> AssetPlan:
    path = course.solution_dir(assignment) / "assets.json"
    if not path.is_file():
        raise AssetsError(f"{path} does not exist: nothing to build for {assignment}")
    try:
        return AssetPlan.model_validate(json.loads(path.read_text()))
    except ValidationError as exc:
        raise AssetsError(format_validation_error(str(path), exc)) from None


def build_assets(
    course: Course,
    assignment: str,
    only: list[str] | None = None,
    data_root: Path | None = None,
    log: Callable[[str], None] = print,
) -> None:
    spec = course.spec(assignment)
    plan = load_plan(course, assignment)
    root = resolve_data_root(spec, data_root).path if spec.datasets else None
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONHASHSEED": "0"}
    for run in plan.runs:
        if only and run.example not in only:
            continue
        folder = course.examples_dir(assignment) / run.example
        args = [a.format(data_root=root, course=course.root) for a in run.args]
        log(f"{assignment}/{run.example}: python {plan.script} {' '.join(args)}")
        t0 = time.time()
        proc = subprocess.run([sys.executable, plan.script, *args], cwd=folder, env=env, check=False)
        if proc.returncode != 0:
            raise AssetsError(f"{folder / plan.script} exited with {proc.returncode}")
        for src, dest in run.copy_files.items():
            shutil.copyfile(folder / src, course.root / dest)
            log(f"  copied {src} -> {dest}")
        for name in run.remove:
            (folder / name).unlink(missing_ok=True)
        log(f"  done in {time.time() - t0:.0f} s")
