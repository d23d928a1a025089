"""Small builders of specs, results and class rows for the batch-export tests (nothing is graded)."""

from __future__ import annotations

from datetime import datetime, timezone

from grader.batch.models import ClassRow, Student
from grader.results import CheckResult, Environment, GradeResult
from grader.spec import AssignmentSpec

DUE = "2026-10-11T23:59:00+08:00"
STARTED = datetime(2026, 10, 20, 12, 0, tzinfo=timezone.utc)
ENV = Environment(grader_version="0.1.0", python="3.11", torch="2.15", device="cpu", platform="linux")


def make_spec(rubric: bool = True, late: dict | None = None) -> AssignmentSpec:
    """Three checks worth 10 + 20 + 30 (the last GPU-only and disabled), a 20-point report, a 10%/day policy."""
    raw: dict = {
        "id": "exp1",
        "title": "exp1",
        "files": [{"name": "exp1.py", "max_kb": 64}],
        "checks": [
            {"id": "shape", "name": "output shape", "points": 10},
            {"id": "fits", "name": "model fits", "points": 20},
            {"id": "rerun", "name": "GPU re-run", "points": 30, "needs_gpu": True, "enabled": False},
        ],
    }
    if rubric:
        raw["rubric"] = [{"id": "report", "name": "Written report", "points": 20}]
    if late is not None:
        raw["late"] = {"due": DUE, "penalty_per_day": 0.1, "grace_minutes": 15, "max_days": 7, **late}
    return AssignmentSpec.model_validate(raw)


def make_result(scores: dict[str, float], student: str = "s1") -> GradeResult:
    points = {"shape": 10.0, "fits": 20.0}
    checks = [
        CheckResult(
            id=cid,
            name=cid,
            max_score=points[cid],
            score=score,
            status="passed" if score == points[cid] else ("failed" if score == 0 else "partial"),
            visibility="visible",
        )
        for cid, score in scores.items()
    ]
    return GradeResult(
        assignment="exp1",
        submission=f"/subs/{student}",
        mode="grade",
        score=round(sum(scores.values()), 4),
        max_score=sum(points[c] for c in scores),
        checks=checks,
        files=[],
        started_at=STARTED,
        duration_s=1.0,
        environment=ENV,
        student=student,
    )


def make_row(
    sid: str, result: GradeResult | None = None, status: str | None = None, name: str = "", **student: str
) -> ClassRow:
    return ClassRow(
        student=Student(id=sid, name=name or f"Student {sid.upper()}", **student),
        result=result,
        status=status or ("graded" if result else "missing"),
        source=f"/subs/{sid}",
    )
