"""Per-submission overhead of the Docker sandbox against the local one: grade the same exp1 submission in each.

    .venv/bin/python bench/sandbox_overhead.py [--runs 5] [--image torch-grader:cpu]

Both runs grade all six exp1 checks; the difference is container start to result versus a local process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from grader.grading import grade
from grader.sandbox.docker import DockerSandbox
from grader.sandbox.local import LocalSandbox
from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--image", default="torch-grader:cpu")
    args = ap.parse_args()
    course = Course(root=ROOT)
    folder = course.examples_dir("exp1") / "solution"
    medians = {}
    for name, sandbox in (("local", LocalSandbox()), ("docker", DockerSandbox(args.image))):
        grade(course, "exp1", folder, sandbox=sandbox)  # warm-up
        walls = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            result = grade(course, "exp1", folder, sandbox=sandbox)
            walls.append(time.perf_counter() - t0)
            assert result.score == result.max_score
        medians[name] = round(statistics.median(walls), 2)
        print(json.dumps({"sandbox": name, "runs": [round(w, 2) for w in walls]}))
    print(json.dumps({"median_s": medians, "docker_over_local": round(medians["docker"] / medians["local"], 2)}))


if __name__ == "__main__":
    main()
