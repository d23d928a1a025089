"""Gradescope's autograder `results.json` (fields as in Gradescope's autograder specification)."""

from __future__ import annotations

from typing import Any

from grader.results import GradeResult

# Our statuses map onto Gradescope's two; partial credit is carried by score < max_score.
STATUS = {"passed": "passed", "partial": "failed", "failed": "failed", "error": "failed"}


def to_gradescope(result: GradeResult) -> dict[str, Any]:
    tests = []
    for n, c in enumerate(result.checks, start=1):
        output = c.message + "".join(f"\nnote: {note}" for note in c.notes)
        tests.append(
            {
                "name": c.name,
                "number": str(n),
                "score": c.score,
                "max_score": c.max_score,
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
    notices = [n.line() for n in result.notices()]
    return {
        "score": result.score,
        "execution_time": round(result.duration_s),
        "output": "\n".join(notices) if notices else f"{result.assignment}: graded by torch-grader",
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
