"""Time grading one exp1 submission: whole run, contestant start-up, and the probes themselves.

    .venv/bin/python bench/grade_exp1.py [--runs 5] [--example solution]

Prints one JSON line per run and a summary; figures go to bench/RESULTS.md with the machine that made them.
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
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--example", default="solution")
    ap.add_argument("--mode", default="grade", choices=["grade", "check"])
    args = ap.parse_args()
    course = Course(root=ROOT)
    folder = course.examples_dir("exp1") / args.example
    grade(course, "exp1", folder, mode=args.mode)  # warm the page cache and pytest's imports
    walls, probes = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        result = grade(course, "exp1", folder, mode=args.mode)
        wall = time.perf_counter() - t0
        probe_s = sum(p["seconds"] for p in result.timings["probes"])
        walls.append(wall)
        probes.append(probe_s)
        print(json.dumps({"wall_s": round(wall, 3), "probes_s": round(probe_s, 3), "score": result.score}))
    summary = {
        "example": args.example,
        "mode": args.mode,
        "runs": args.runs,
        "median_wall_s": round(statistics.median(walls), 3),
        "median_probes_s": round(statistics.median(probes), 3),
        "overhead_s": round(statistics.median(walls) - statistics.median(probes), 3),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
