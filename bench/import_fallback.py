"""What the import fallback costs: grading a module that trains at import (examples/exp1/trains-at-import)
against the same code with its experiments under `if __name__ == "__main__":` (the solution), in one run.

    .venv/bin/python bench/import_fallback.py [--runs 3]

The fallback costs the import budget (20 s of CPU time by default, assignment.toml [imports]) spent in the
interrupted import, plus a second contestant start that imports only the definitions. Prints one JSON line
per run and a summary; figures go to bench/RESULTS.md with the machine that made them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from grader.grading import grade
from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    course = Course(root=ROOT)
    grade(course, "exp1", course.examples_dir("exp1") / "solution")  # warm the page cache and pytest's imports
    walls: dict[str, list[float]] = {"solution": [], "trains-at-import": []}
    for _ in range(args.runs):
        for example in walls:
            t0 = time.perf_counter()
            result = grade(course, "exp1", course.examples_dir("exp1") / example)
            wall = time.perf_counter() - t0
            walls[example].append(wall)
            print(json.dumps({"example": example, "wall_s": round(wall, 2), "score": result.score,
                              "contestant_starts": result.timings["contestant_starts"],
                              "import_s": result.timings.get("imports", {})}))  # fmt: skip
    med = {k: statistics.median(v) for k, v in walls.items()}
    spec = course.spec("exp1")
    print(json.dumps({
        "runs": args.runs,
        "median_wall_s": {k: round(v, 2) for k, v in med.items()},
        "fallback_cost_s": round(med["trains-at-import"] - med["solution"], 2),
        "budget_cpu_s": spec.imports.cpu_seconds,
        "machine": f"{platform.machine()}, torch {torch.__version__}, local sandbox",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
