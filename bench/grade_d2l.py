"""Time grading one submission of each d2l assignment (softmax, lenet, rnn): the bundled solution, all checks.

    .venv/bin/python bench/grade_d2l.py [--runs 3] [--data-root data]

Each timed run clears the judge's caches (datasets read, weights measured), so every figure is for a
submission the process has not seen, with the dataset read from the page cache.
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

from grader import data
from grader.grading import grade
from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS = ("softmax", "lenet", "rnn")


def clear_caches() -> None:
    data.read_fashion_mnist.cache_clear()
    data.read_time_machine.cache_clear()
    for name, module in list(sys.modules.items()):
        if name.endswith("_hidden") or name.endswith("_judge"):
            for attr in ("_measure", "vocabulary", "corpus"):
                if hasattr(getattr(module, attr, None), "cache_clear"):
                    getattr(module, attr).cache_clear()


def timed(course: Course, assignment: str, data_root: Path) -> tuple[float, float]:
    clear_caches()
    t0 = time.perf_counter()
    result = grade(course, assignment, course.examples_dir(assignment) / "solution", data_root=data_root)
    wall = time.perf_counter() - t0
    assert result.score == result.max_score, [(c.id, c.message) for c in result.checks if c.status != "passed"]
    return wall, sum(c.duration_s for c in result.checks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    args = ap.parse_args()
    course = Course(root=ROOT)
    rows = {}
    for assignment in ASSIGNMENTS:
        timed(course, assignment, args.data_root)  # warm-up: imports, page cache
        runs = [timed(course, assignment, args.data_root) for _ in range(args.runs)]
        rows[assignment] = {"median_wall_s": round(statistics.median(w for w, _ in runs), 2),
                            "median_in_checks_s": round(statistics.median(c for _, c in runs), 2)}  # fmt: skip
        print(json.dumps({"assignment": assignment, "runs": [round(w, 2) for w, _ in runs]}), flush=True)
    print(json.dumps({"median": rows, "judge_threads": torch.get_num_threads(), "machine": platform.machine(),
                      "python": platform.python_version(), "torch": torch.__version__}))  # fmt: skip


if __name__ == "__main__":
    main()
