"""Time grading one exp2 submission: the judge's accuracy check alone, and all checks.

    .venv/bin/python bench/grade_exp2.py [--runs 3] [--data-root data]

The accuracy evaluation is cached by file content inside a process (both hidden checks share it), so each
timed run clears that cache first: the figures are for a submission the process has not seen.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from grader.grading import grade
from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent


def clear_accuracy_cache() -> None:
    for name, module in list(sys.modules.items()):
        if name.endswith("exp2_accuracy") and hasattr(module, "MEASURED"):
            module.MEASURED.clear()


def timed(course: Course, folder: Path, data_root: Path, only: list[str] | None) -> float:
    clear_accuracy_cache()
    t0 = time.perf_counter()
    result = grade(course, "exp2", folder, data_root=data_root, only=only)
    wall = time.perf_counter() - t0
    assert result.score == result.max_score, [(c.id, c.message) for c in result.checks if c.status != "passed"]
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    args = ap.parse_args()
    course = Course(root=ROOT)
    folder = course.examples_dir("exp2") / "solution"
    timed(course, folder, args.data_root, None)  # warm-up: imports, page cache, dataset read
    rows = {}
    for label, only in (("accuracy check alone", ["accuracy"]), ("all checks", None)):
        walls = [timed(course, folder, args.data_root, only) for _ in range(args.runs)]
        rows[label] = round(statistics.median(walls), 2)
        print(json.dumps({"what": label, "runs": [round(w, 2) for w in walls]}))
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(json.dumps({"median_s": rows, "device": device, "judge_threads": torch.get_num_threads(),
                      "machine": platform.machine(), "torch": torch.__version__}))  # fmt: skip


if __name__ == "__main__":
    main()
