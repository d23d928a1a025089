"""What `run_autograder` runs on Gradescope: grade /autograder/submission, write /autograder/results/results.json.

    python -m grader.gradescope.run --bundle /opt/torch-grader/bundle.json

Whatever happens (no files, a grader bug, a sandbox that cannot start), results.json is written and is valid
JSON: Gradescope fails the whole run otherwise. It is written to a temporary name and renamed, so a crash
mid-write leaves the previous complete file or none (run_autograder then writes a minimal one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.gradescope import BundleConfig
from grader.gradescope.markdown import md_lines, md_text
from grader.results import GradeResult, Lateness
from grader.spec import AssignmentSpec, Course

SUBMISSION = Path("/autograder/submission")
RESULTS = Path("/autograder/results/results.json")
METADATA = Path("/autograder/submission_metadata.json")
METADATA_MAX_BYTES = 16 << 20  # it holds every previous submission's results; beyond this, ignore it


def submission_times(metadata: Path) -> tuple[datetime | None, datetime | None, str]:
    """(created_at, the assignment's due date, a note) from Gradescope's submission_metadata.json.

    Written by Gradescope, not the student, but still read defensively: a missing or odd file costs only the
    late policy, with a note."""
    try:
        if metadata.stat().st_size > METADATA_MAX_BYTES:
            return None, None, f"{metadata} is over {METADATA_MAX_BYTES >> 20} MiB: not read"
        raw = json.loads(metadata.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None, f"no {metadata}"
    except (OSError, ValueError) as exc:
        return None, None, f"{metadata} could not be read ({exc})"

    def when(value: Any) -> datetime | None:
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
        except ValueError:
            return None

    assignment = raw.get("assignment") if isinstance(raw, dict) else None
    due = when(assignment.get("due_date")) if isinstance(assignment, dict) else None
    return when(raw.get("created_at") if isinstance(raw, dict) else None), due, ""


def late_policy_lateness(spec: AssignmentSpec, metadata: Path, earned: float) -> Lateness | None:
    """The assignment's `[late]` policy applied to Gradescope's submission time. Gradescope's due date (which
    carries the instructor's extensions) replaces the one in assignment.toml when the metadata has one."""
    from grader.batch.late import lateness

    if spec.late is None:
        return None
    created, due, note = submission_times(metadata)
    policy = spec.late.model_copy(update={"due": due}) if due is not None and due.tzinfo else spec.late
    late = lateness(policy, created, "Gradescope submission time", earned)
    if note:
        late = late.model_copy(update={"message": f"{late.message} ({note})"})
    return late


def leaderboard(result: GradeResult) -> list[dict[str, Any]]:
    """The accuracy the judge measured (exp2, the classifiers): one entry per check that measured one."""
    measured = [c for c in result.checks if "accuracy_percent" in c.measured]
    return [{"name": "Test accuracy (%)" if len(measured) == 1 else f"{c.name} (%)",
             "value": round(c.measured["accuracy_percent"], 2), "order": "desc"} for c in measured]  # fmt: skip


def _test(name: str, number: int, score: float, max_score: float, status: str, output: str, visibility: str,
          tags: list[str]) -> dict[str, Any]:  # fmt: skip
    return {"name": name, "number": str(number), "score": score, "max_score": max_score, "status": status,
            "output": output, "output_format": "md", "visibility": visibility, "tags": tags}  # fmt: skip


def to_results(result: GradeResult, late: Lateness | None, board: bool) -> dict[str, Any]:
    """Gradescope's results.json for one graded submission: a test per check (visibility from the spec),
    deductions and the late penalty as tests of their own, Markdown output, the student's stdout hidden."""
    from grader.report.gradescope import NOT_GRADED, STATUS, check_points, grader_error_note

    tests: list[dict[str, Any]] = []
    for c in result.checks:
        output = md_lines([c.message]) + "".join(f"\n\n*Note:* {md_text(n)}" for n in c.notes)
        if c.status == "error":  # the grader's fault: worth 0 of 0, and the student is told so first
            output = "\n\n".join(part for part in (md_text(NOT_GRADED), output) if part)
        score, max_score = check_points(c)
        tests.append(_test(c.name, len(tests) + 1, score, max_score, STATUS[c.status], output, c.visibility,
                           [c.id, *c.tags]))  # fmt: skip
    for p in result.problems:
        if p.points:
            tests.append(_test(f"Deduction: {p.id}", len(tests) + 1, -p.points, 0, "failed",
                               md_lines([p.message, *p.details]), "visible", [p.id]))  # fmt: skip
    score = result.score
    if late is not None and late.penalty:
        tests.append(_test("Late submission", len(tests) + 1, -late.penalty, 0, "failed", md_text(late.message),
                           "visible", ["late"]))  # fmt: skip
        score = round(max(0.0, score - late.penalty), 4)
    notices = [md_text(line) for line in [grader_error_note(result), *(n.line() for n in result.notices())] if line]
    if late is not None:
        notices.append(md_text(late.message))
    head = f"**{md_text(result.assignment)}**: graded by torch-grader {md_text(result.environment.grader_version)}"
    out: dict[str, Any] = {
        "score": score,
        "execution_time": round(result.duration_s),
        "output": "\n\n".join([head, *notices]),
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    if board and (entries := leaderboard(result)):
        out["leaderboard"] = entries
    return out


def failure_results(message: str, elapsed: float) -> dict[str, Any]:
    """results.json when grading could not finish: the student is told it is not their fault."""
    return {
        "score": 0,
        "execution_time": round(elapsed),
        "output": md_text(f"This submission could not be graded: {message}. This is a problem of the autograder, "
                          "not necessarily of your code; your instructor can see the details."),  # fmt: skip
        "output_format": "md",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"  # NaN is not JSON: fail here, not on Gradescope
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def grade_bundle(cfg: BundleConfig, submission: Path, metadata: Path) -> tuple[dict[str, Any], list[str]]:
    """results.json for the submission, and the ids of the checks that could not run on the grader's side."""
    from grader.grading import grade
    from grader.sandbox.local import LocalSandbox

    course = Course(root=cfg.course)
    spec = course.spec(cfg.assignment)
    result = grade(course, cfg.assignment, submission, mode="grade", sandbox=LocalSandbox(), data_root=cfg.data_root)
    late = late_policy_lateness(spec, metadata, result.score)
    data = to_results(result, late, cfg.leaderboard)
    errors = [c.id for c in result.checks if c.status == "error"]
    if errors:  # the instructor reads stdout; the student reads that the grader, not they, failed these
        print(f"grader errors (the course or this machine, not the submission): {', '.join(errors)}", file=sys.stderr)
    print(json.dumps({"score": data["score"], "checks": {c.id: c.status for c in result.checks},
                      "sandbox": result.environment.sandbox}, indent=2))  # fmt: skip
    return data, errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grader.gradescope.run", description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True, help="bundle.json written by `grader gradescope build`")
    ap.add_argument("--submission", type=Path, default=SUBMISSION)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--metadata", type=Path, default=METADATA)
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    errors: list[str] = []
    try:
        cfg = BundleConfig.model_validate_json(a.bundle.read_text(encoding="utf-8"))
        data, errors = grade_bundle(cfg, a.submission, a.metadata)
        json.dumps(data, allow_nan=False)
    except BaseException as exc:  # noqa: BLE001 - whatever it was, Gradescope must get valid JSON
        traceback.print_exc()
        data = failure_results(f"{type(exc).__name__}: {exc}"[:500], time.monotonic() - t0)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    write_json(a.results, data)
    # 2, as `grader grade` and the batch: results.json is written, but the grade is not one to trust.
    # run_autograder still exits 0 so that Gradescope reads that results.json rather than its own failure.
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
