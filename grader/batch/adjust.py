"""Merge the manual rubric and the late penalty into a graded result's total."""

from __future__ import annotations

from datetime import datetime

from grader.batch.late import lateness
from grader.results import Adjustments, GradeResult, RubricScore
from grader.spec import AssignmentSpec


def align_rubric(spec: AssignmentSpec, rubric: list[RubricScore] | None) -> list[RubricScore]:
    """One entry per `[[rubric]]` item, in spec order, named and capped by the spec; absent items are ungraded."""
    given = {r.id: r for r in rubric or []}
    out = []
    for item in spec.rubric:
        found = given.get(item.id)
        out.append(
            RubricScore(
                id=item.id,
                name=item.name,
                max_score=item.points,
                score=found.score if found else None,
                comment=found.comment if found else "",
            )
        )
    return out


def adjust(
    result: GradeResult,
    spec: AssignmentSpec,
    rubric: list[RubricScore] | None,
    submitted_at: datetime | None,
    submitted_at_source: str,
) -> GradeResult:
    """A copy of `result` with `adjustments`: total = max(0, score + rubric - late penalty).

    The penalty is a fraction of score + rubric (what the student earned). Set even without a rubric or a
    late policy, so every batch output reads the same fields.
    """
    items = align_rubric(spec, rubric)
    earned = round(result.score + sum(r.score for r in items if r.score is not None), 4)
    late = lateness(spec.late, submitted_at, submitted_at_source, earned) if spec.late else None
    penalty = late.penalty if late else 0.0
    adjustments = Adjustments(
        rubric=items,
        late=late,
        total=round(max(0.0, earned - penalty), 4),
        max_total=round(result.max_score + spec.rubric_points, 4),
    )
    return result.model_copy(update={"adjustments": adjustments})
