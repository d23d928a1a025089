"""Gradescope's autograder `results.json` (fields as in Gradescope's autograder specification)."""

from __future__ import annotations

from typing import Any

from grader.results import CheckResult, GradeResult

# Our statuses map onto Gradescope's two; partial credit is carried by score < max_score.
STATUS = {"passed": "passed", "partial": "failed", "failed": "failed", "error": "failed"}

# A check with status error (a broken check file, a sandbox that would not start) is the course's or the grading
# machine's fault, never the student's loss. Gradescope has no "not graded" score, so its test is worth 0 of 0,
# says why, and the top message says the score is not final (the batch leaves such a total empty instead).
NOT_GRADED = ("Not graded: the autograder could not run this check (a fault of the course's checks or of the "
              "grading machine, not of your submission). It is left out of your score until your instructor fixes "
              "the autograder and reruns this submission.")  # fmt: skip


def check_points(c: CheckResult) -> tuple[float, float]:
    """(score, max_score) of a check's test: 0 of 0 for one the grader could not run, so it costs nothing."""
    return (0.0, 0.0) if c.status == "error" else (c.score, c.max_score)


def grader_error_note(result: GradeResult) -> str:
    """The top message's warning when checks could not run on the grader's side; "" when all ran."""
    errors = [c for c in result.checks if c.status == "error"]
    if not errors:
        return ""
    points = sum(c.max_score for c in errors)
    return (f"The autograder itself failed: {len(errors)} check(s) worth {points:g} points could not be run (a "
            "fault of the course's checks or of the grading machine, not of your submission). They are left out "
            "of this score, which is not final: your instructor can see why in the autograder output and needs "
            "to rerun this submission once the autograder is fixed; please tell them.")  # fmt: skip


def to_gradescope(result: GradeResult) -> dict[str, Any]:
    tests = []
    for n, c in enumerate(result.checks, start=1):
        output = c.message + "".join(f"\nnote: {note}" for note in c.notes)
        if c.status == "error":
            output = f"{NOT_GRADED}\n{output}".rstrip("\n")
        score, max_score = check_points(c)
        tests.append(
            {
                "name": c.name,
                "number": str(n),
                "score": score,
                "max_score": max_score,
                "status": STATUS[c.status],
                "output": output,
                "output_format": "text",
                "visibility": c.visibility,
                "tags": [c.id, *c.tags],
            }
        )
    for p in result.problems:
        if p.points:  # a deduction shows as a test of its own, so the student sees where the points went
            tests.append({"name": f"Deduction: {p.id}", "number": str(len(tests) + 1), "score": -p.points,
                          "max_score": 0, "status": "failed", "output": "\n".join([p.message, *p.details]),
                          "output_format": "text", "visibility": "visible", "tags": [p.id]})  # fmt: skip
    notices = [line for line in [grader_error_note(result), *(n.line() for n in result.notices())] if line]
    return {
        "score": result.score,
        "execution_time": round(result.duration_s),
        "output": "\n".join(notices) if notices else f"{result.assignment}: graded by torch-grader",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
