"""Rendering results: our results.json and its schema, Gradescope's results.json, and report.md."""

import json
from datetime import datetime, timezone

import pytest

from grader.report import write_reports
from grader.report.gradescope import to_gradescope
from grader.report.markdown import to_markdown
from grader.results import CheckResult, Environment, FileRecord, GradeResult, load_result


@pytest.fixture
def result() -> GradeResult:
    def chk(cid, score, top, status, vis, msg=""):
        return CheckResult(id=cid, name=f"check {cid}", max_score=top, score=score, status=status,
                           message=msg, visibility=vis)  # fmt: skip

    return GradeResult(
        assignment="exp1",
        submission="alice",
        mode="grade",
        score=17.5,
        max_score=40,
        checks=[
            chk("a", 10, 10, "passed", "visible"),
            chk("b", 5, 10, "partial", "visible", "got 3 | expected 4"),
            chk("c", 0, 10, "failed", "hidden", "secret detail"),
            chk("d", 2.5, 10, "partial", "after_due_date", "later"),
        ],
        files=[FileRecord(name="model.pth", present=False, problem="model.pth is missing")],
        started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        duration_s=12.6,
        environment=Environment(grader_version="0", python="3.11", torch="2.11", device="cpu", platform="Linux"),
    )


def test_gradescope_fields(result):
    gs = to_gradescope(result)
    assert set(gs) >= {"score", "execution_time", "output", "tests"}
    assert gs["score"] == 17.5 and gs["execution_time"] == 13
    assert "model.pth is missing" in gs["output"]
    for t in gs["tests"]:
        assert set(t) >= {"name", "number", "score", "max_score", "status", "output", "visibility", "tags"}
        assert t["status"] in ("passed", "failed")
    assert [t["status"] for t in gs["tests"]] == ["passed", "failed", "failed", "failed"]
    assert [t["visibility"] for t in gs["tests"]] == ["visible", "visible", "hidden", "after_due_date"]
    assert [t["number"] for t in gs["tests"]] == ["1", "2", "3", "4"]
    assert gs["tests"][1]["tags"] == ["b"]


def test_student_markdown_hides_hidden_checks(result):
    student = to_markdown(result, audience="student")
    assert "secret detail" not in student and "check c" not in student
    assert "# exp1: 15 / 20" in student
    assert "2 more check(s) worth 20 points are graded later" in student
    assert "```text\ngot 3 | expected 4\n```" in student
    instructor = to_markdown(result, audience="instructor")
    assert "secret detail" in instructor and "*(hidden)*" in instructor
    assert "# exp1: 17.5 / 40" in instructor
    assert "model.pth is missing" in instructor


def test_written_files_round_trip(result, tmp_path):
    files = write_reports(result, tmp_path)
    assert load_result(files["results"]) == result
    schema = json.loads(files["schema"].read_text())
    assert schema["title"] == "GradeResult" and "checks" in schema["properties"]
    assert json.loads(files["gradescope"].read_text())["score"] == 17.5
    assert files["report"].read_text().startswith("# exp1")


def test_notes_are_not_called_problems(result):
    found = FileRecord(name="exp1.py", present=True, found_as="hw/exp1.py", note="found exp1.py as hw/exp1.py")
    only_notes = result.model_copy(update={"files": [found]})
    md = to_markdown(only_notes, "student")
    assert "**Notes**" in md and "- found exp1.py as hw/exp1.py" in md and "Problems" not in md
    both = result.model_copy(update={"files": [*result.files, found]})
    md = to_markdown(both, "student")
    assert "**Problems and notes**" in md and "- model.pth is missing" in md
    assert "- Note: found exp1.py as hw/exp1.py" in md
    assert to_gradescope(both)["output"].splitlines() == ["model.pth is missing", "Note: found exp1.py as hw/exp1.py"]
