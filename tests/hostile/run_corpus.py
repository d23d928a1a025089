"""Grade the whole hostile corpus once and write WORK/report.json: how test_hostile.py runs it as another user.

    python -m tests.hostile.run_corpus --sandbox local|docker --work DIR
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tests.hostile.corpus import CASES, Host, corpus_course, problems, run_case


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sandbox", choices=["local", "docker"], required=True)
    ap.add_argument("--work", type=Path, required=True)
    args = ap.parse_args()
    course = corpus_course(args.work / "course")
    host = Host(dir=args.work / "host", course=course.root)
    host.prepare()
    if args.sandbox == "docker":
        from grader.sandbox.docker import DockerSandbox

        sandbox = DockerSandbox(os.environ.get("GRADER_IMAGE", "torch-grader:cpu"))
    else:
        from grader.sandbox.local import LocalSandbox

        sandbox = LocalSandbox()
    cases = {}
    for case in CASES:
        outcome = run_case(case, course, sandbox, args.work / "submissions", host)
        cases[case.name] = {"problems": problems(case, outcome), "seconds": outcome["seconds"],
                            "user": outcome["isolation"].get("user", ""),
                            "file_system": outcome["isolation"].get("file_system", "")}  # fmt: skip
        print(f"{case.name}: {outcome['seconds']} s, {len(cases[case.name]['problems'])} problem(s)", flush=True)
    (args.work / "report.json").write_text(json.dumps({"user": os.getuid(), "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
