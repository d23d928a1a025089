"""Export into a real nbgrader gradebook (sqlite in tmp_path), read back with a fresh Gradebook."""

from __future__ import annotations

import builtins
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from grader.batch.adjust import adjust
from grader.batch.nbgrader_export import NbgraderError, export_to_nbgrader, open_gradebook, split_name
from grader.results import RubricScore
from tests.batch_helpers import make_result, make_row, make_spec

api = pytest.importorskip("nbgrader.api", reason="nbgrader is an optional extra: pip install 'torch-grader[nbgrader]'")

CST = timezone(timedelta(hours=8))
SPEC = make_spec(late={})
LATE = datetime(2026, 10, 13, 10, 0, tzinfo=CST)  # 2 days late: -20%


CELLS = [("fits", 20.0, "code", "GradeCell"), ("report", 20.0, "markdown", "TaskCell"),
         ("shape", 10.0, "code", "GradeCell")]  # fmt: skip


def report(score: float | None) -> list[RubricScore]:
    return [RubricScore(id="report", name="r", max_score=20, score=score)]


def rows(s2_fits: float = 12.5, s2_report: float | None = 18, s4_report: float | None = None) -> list:
    s2 = adjust(make_result({"shape": 10, "fits": s2_fits}, "s2"), SPEC, report(s2_report), LATE, "Gradescope")
    s4 = adjust(make_result({"shape": 5, "fits": 20}, "s4"), SPEC, report(s4_report), None, "")
    return [
        make_row("s2", s2, name="Ann Marie Smith", email="ann@example.edu"),
        make_row("s1", name="Bo"),  # missing: a student, no submission
        make_row("s4", s4, name="Cy Lee"),
        make_row("s3", status="crashed"),
        make_row("s2", status="skipped-duplicate"),
    ]


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A new nbgrader database runs `alembic heads` in a subprocess (~3 s): create one, copy it per test.
    path = tmp_path_factory.mktemp("nbgrader") / "empty.db"
    open_gradebook(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def db_url(empty_db: Path, tmp_path: Path) -> str:
    path = tmp_path / "gradebook.db"
    shutil.copyfile(empty_db, path)
    return f"sqlite:///{path}"


def read_back(db_url: str) -> dict:
    with api.Gradebook(db_url) as gb:
        out: dict = {"students": sorted(s.id for s in gb.students)}
        assignment = gb.find_assignment("exp1")
        out["due"] = assignment.duedate
        out["max_score"] = assignment.max_score
        out["cells"] = sorted((c.name, c.max_score, c.cell_type, type(c).__name__) for nb in assignment.notebooks
                              for c in [*nb.grade_cells, *nb.task_cells])  # fmt: skip
        out["subs"] = {}
        for sub in gb.assignment_submissions("exp1"):
            grades = {
                g.name: (g.auto_score, g.manual_score, g.score, g.needs_manual_grade)
                for g in gb.find_submission_notebook("exp1", "exp1", sub.student.id).grades
            }
            nb = gb.find_submission_notebook("exp1", "exp1", sub.student.id)
            out["subs"][sub.student.id] = {
                "score": sub.score,
                "max_score": sub.max_score,
                "timestamp": sub.timestamp,
                "penalty": nb.late_submission_penalty,
                "grades": grades,
            }
        s2 = gb.find_student("s2")
        out["s2"] = (s2.first_name, s2.last_name, s2.email)
        out["count"] = len(gb.assignment_submissions("exp1"))
    return out


def test_export_reads_back_and_re_export_updates_in_place(db_url: str) -> None:
    summary = export_to_nbgrader(SPEC, rows(), db_url)
    assert (summary.assignment, summary.notebook, summary.students, summary.submissions) == ("exp1", "exp1", 4, 2)
    assert summary.ungraded_rubric == 1 and summary.problems == []

    db = read_back(db_url)
    assert db["students"] == ["s1", "s2", "s3", "s4"]
    assert db["s2"] == ("Ann Marie", "Smith", "ann@example.edu")
    assert db["due"] == datetime(2026, 10, 11, 15, 59)  # nbgrader keeps naive UTC
    # The disabled GPU check gets no cell; the report is a hand-graded task cell, as in our released notebooks.
    assert db["cells"] == CELLS
    assert db["max_score"] == 50.0
    s2, s4 = db["subs"]["s2"], db["subs"]["s4"]
    assert (s2["score"], s2["max_score"]) == (40.5, 50.0)
    assert s2["grades"] == {
        "shape": (10.0, None, 10.0, False),
        "fits": (12.5, None, 12.5, False),
        "report": (None, 18.0, 18.0, False),
    }
    assert s2["penalty"] == 8.1 and s2["timestamp"] == datetime(2026, 10, 13, 2, 0)
    # nbgrader's exported total, score - penalty, is our adjusted total.
    assert s2["score"] - s2["penalty"] == rows()[0].result.total == 32.4
    assert (s4["score"], s4["penalty"], s4["timestamp"]) == (25.0, None, None)
    assert s4["grades"]["report"] == (None, None, 0.0, True)  # not graded yet: waits for a human

    # The instructor fixes a check score and grades s4's report; running again updates, never duplicates.
    again = export_to_nbgrader(SPEC, rows(s2_fits=20, s4_report=15), db_url)
    assert again.ungraded_rubric == 0
    db = read_back(db_url)
    assert db["count"] == 2 and db["students"] == ["s1", "s2", "s3", "s4"]
    assert db["cells"] == CELLS
    assert db["subs"]["s2"]["score"] == 48.0 and db["subs"]["s2"]["grades"]["fits"][0] == 20.0
    assert db["subs"]["s2"]["penalty"] == 9.6  # 20% of 48
    assert db["subs"]["s4"]["score"] == 40.0 and db["subs"]["s4"]["grades"]["report"] == (None, 15.0, 15.0, False)

    # An empty rubric cell never erases a score already in nbgrader (typed in the formgrader, or exported before).
    export_to_nbgrader(SPEC, rows(s2_fits=20, s4_report=None), db_url)
    assert read_back(db_url)["subs"]["s4"]["grades"]["report"] == (None, 15.0, 15.0, False)


def test_a_submission_no_longer_graded_is_kept_and_reported(db_url: str) -> None:
    export_to_nbgrader(SPEC, rows(), db_url)
    crashed_now = [r for r in rows() if r.student.id != "s4"] + [make_row("s4", status="crashed")]
    summary = export_to_nbgrader(SPEC, crashed_now, db_url, assignment_name="exp1")
    assert summary.submissions == 1
    assert len(summary.problems) == 1 and summary.problems[0].startswith("s4: crashed now")
    assert read_back(db_url)["subs"]["s4"]["score"] == 25.0


def test_a_new_check_reaches_existing_submissions(db_url: str) -> None:
    only_shape = adjust(make_result({"shape": 10}, "s2"), SPEC, report(5), None, "")
    export_to_nbgrader(SPEC, [make_row("s2", only_shape)], db_url)
    export_to_nbgrader(SPEC, rows(), db_url)  # now "fits" is scored too
    s2 = read_back(db_url)["subs"]["s2"]
    assert s2["grades"]["fits"][0] == 12.5 and s2["score"] == 40.5


def test_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(NbgraderError, match="cannot open the nbgrader database"):
        export_to_nbgrader(SPEC, rows(), f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'gb.db'}")
    real_import = builtins.__import__

    def no_nbgrader(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name.startswith("nbgrader"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nbgrader)
    with pytest.raises(NbgraderError, match=r"pip install 'torch-grader\[nbgrader\]'"):
        export_to_nbgrader(SPEC, rows(), f"sqlite:///{tmp_path / 'gb.db'}")


def test_split_name() -> None:
    assert split_name("Ann Marie Smith") == ("Ann Marie", "Smith")
    assert split_name("  Bo ") == ("Bo", "")
    assert split_name("") == ("", "")


def test_cells_no_longer_scored_are_reported_not_deleted(db_url: str) -> None:
    export_to_nbgrader(SPEC, rows(), db_url)
    only_shape = adjust(make_result({"shape": 10}, "s2"), SPEC, report(5), None, "")
    summary = export_to_nbgrader(SPEC, [make_row("s2", only_shape)], db_url)
    assert len(summary.problems) == 1 and "has graded cells fits that exp1 no longer scores" in summary.problems[0]
    s2 = read_back(db_url)["subs"]["s2"]
    assert s2["grades"]["fits"][0] == 12.5 and s2["grades"]["report"][1] == 5.0  # kept; the report updated


def test_a_rubric_item_asked_as_a_manually_graded_answer_keeps_its_cell(db_url: str) -> None:
    """A course whose own source notebook asks the report as a "manually graded answer" (a markdown grade cell,
    made by nbgrader's generate_assignment): the export scores that cell rather than adding a task cell."""
    with api.Gradebook(db_url) as gb:
        gb.update_or_create_assignment("exp1")
        gb.update_or_create_notebook("exp1", "exp1")
        gb.update_or_create_grade_cell("report", "exp1", "exp1", max_score=20, cell_type="markdown")
    summary = export_to_nbgrader(SPEC, rows(), db_url)
    assert summary.problems == []
    db = read_back(db_url)
    assert ("report", 20.0, "markdown", "GradeCell") in db["cells"] and len(db["cells"]) == 3
    assert db["subs"]["s2"]["grades"]["report"] == (None, 18.0, 18.0, False)


def test_deductions_reach_nbgrader_through_its_penalty(db_url: str) -> None:
    """An import fallback's 5% off has no field in nbgrader: it goes in the penalty, so the totals agree."""
    from grader.results import Problem

    result = make_result({"shape": 10, "fits": 20}, "s5")
    result = result.model_copy(update={"problems": [Problem(id="import:exp1", message="fell back", points=1.5)],
                                       "score": 28.5})  # the checks less the deduction, as grading makes it
    row = make_row("s5", adjust(result, SPEC, report(10), None, ""), name="Dee")
    summary = export_to_nbgrader(SPEC, [*rows(), row], db_url)
    sub = read_back(db_url)["subs"]["s5"]
    assert (sub["score"], sub["penalty"]) == (40.0, 1.5)
    assert sub["score"] - sub["penalty"] == row.result.total == 38.5
    assert summary.problems == ["s5: nbgrader has no field for the 1.5 point(s) deducted for import:exp1; they are in "
                                "its late-submission penalty, so that its total is gradebook.csv's"]
