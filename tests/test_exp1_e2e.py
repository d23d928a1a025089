"""exp1 graded end to end: real sandbox, real pytest checks, the bundled examples and bad input."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch

from grader.grading import grade
from grader.results import GradeResult
from grader.selftest import run_example
from tests.conftest import example_names, expected_checks

pytestmark = pytest.mark.slow
# Per-check scores of the examples that no problem deducts from (examples/exp1/expected.toml).
EXPECTED = expected_checks("exp1")



def scores(result: GradeResult) -> dict[str, float]:
    return {c.id: c.score for c in result.checks}


def by_id(result: GradeResult) -> dict:
    return {c.id: c for c in result.checks}


@pytest.mark.parametrize("name", example_names("exp1"))
def test_bundled_example_scores(course, name):
    """Each example scores what examples/exp1/expected.toml says: the same comparison as `grader selftest`."""
    outcome = run_example(course, "exp1", name)
    assert outcome.diffs == [], "\n".join(outcome.diffs)


def test_messages_say_expected_and_got(course):
    checks = by_id(grade(course, "exp1", course.examples_dir("exp1") / "wrong-output-shape"))
    assert (
        checks["mlp_output_shape"].message == "model(x) for x of shape (64, 1) returned shape (64,); expected (64, 1)"
    )
    assert checks["training_lowers_mse"].status == "passed"  # train() runs on the handout's MLP
    stub = by_id(grade(course, "exp1", course.examples_dir("exp1") / "stub"))
    assert stub["f_reference_values"].message.startswith("not implemented yet: raised NotImplementedError")
    assert stub["f_reference_values"].locations[-1].file == "exp1.py"
    assert stub["model_fits_target"].message == "model.pth is missing from the submission; add model.pth and resubmit"


def test_check_mode_runs_only_visible_checks(course):
    result = grade(course, "exp1", course.examples_dir("exp1") / "solution", mode="check")
    assert [c.id for c in result.checks] == [
        "f_reference_values", "mlp_output_shape", "training_lowers_mse", "model_fits_target"]  # fmt: skip
    assert result.score == result.max_score == 65


def test_grading_is_deterministic(course):
    """Same submission twice: identical scores, statuses and messages (only timings differ)."""
    folder = course.examples_dir("exp1") / "wrong-output-shape"
    first, second = (grade(course, "exp1", folder) for _ in range(2))
    strip = {"duration_s"}
    assert [c.model_dump(exclude=strip) for c in first.checks] == [c.model_dump(exclude=strip) for c in second.checks]


def test_judge_never_imports_student_code(course, example):
    folder = example("exp1", "solution")
    before = set(sys.modules)
    grade(course, "exp1", folder)
    new = set(sys.modules) - before
    assert "exp1" not in new
    assert not [m for m in new if str(folder) in str(getattr(sys.modules[m], "__file__", "") or "")]


def test_infinite_loop_stops_at_its_timeout(course_copy, example):
    course = course_copy("exp1")
    toml = course.assignment_dir("exp1") / "assignment.toml"
    text = toml.read_text()
    toml.write_text(text.replace('id = "training_lowers_mse"', 'id = "training_lowers_mse"\ntimeout = 3', 1)
                    .replace("timeout = 60\n", "", 1))  # fmt: skip
    folder = example("exp1", "solution")
    src = (folder / "exp1.py").read_text()
    (folder / "exp1.py").write_text(src.replace("    for _ in range(num_epochs):", "    while True:", 1))
    checks = by_id(grade(course, "exp1", folder))
    assert checks["training_lowers_mse"].score == 0
    assert checks["training_lowers_mse"].message.startswith("timed out after 3 s: `train_curve` did not finish")
    # The hung process was replaced: the checks after it still ran and passed.
    assert [checks[c].status for c in ("model_fits_target", "num_train_samples_unchanged", "custom_function_fits")] == [
        "passed"
    ] * 3


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["malformed", "pickle-payload"])
def test_bad_weights_fail_only_their_checks(course, example, tmp_path, kind):
    folder = example("exp1", "solution")
    marker = tmp_path / "pwned"
    if kind == "malformed":
        (folder / "model.pth").write_bytes(b"PK\x03\x04 this is not really an archive")
    else:
        torch.save({"default": Payload(marker), "custom": Payload(marker)}, folder / "model.pth")
    result = grade(course, "exp1", folder)
    failed = {c.id for c in result.checks if c.status != "passed"}
    assert failed == {"model_fits_target", "custom_function_fits"}
    message = by_id(result)["model_fits_target"].message
    if kind == "malformed":
        assert message.startswith("model.pth is a damaged archive")
    else:
        assert "pickled Python objects (posix.system)" in message or "pickled Python objects" in message
        assert "state_dict" in message
    assert not marker.exists()


def test_a_syntax_error_costs_the_checks_of_its_function_and_the_fallbacks_5(course, example):
    """A missing colon after `def train(...)`: the grader leaves train() out, says where and why, and grades the
    rest (its definitions, for the fallback's 5%); only the check that calls train() fails."""
    folder = example("exp1", "solution")
    src = (folder / "exp1.py").read_text().splitlines(keepends=True)
    line = next(i for i, s in enumerate(src) if s.startswith("def train(")) + 1
    src[line - 1] = src[line - 1].rstrip().removesuffix(":") + "\n"  # drop the colon
    (folder / "exp1.py").write_text("".join(src))
    result = grade(course, "exp1", folder)
    assert [c.id for c in result.checks if c.score < c.max_score] == ["training_lowers_mse"]
    assert result.score == 100 - 20 - 5
    (problem,) = result.problems
    assert re.match(rf"exp1.py line {line}: .*fix the syntax error and resubmit\. The grader then imported only its "
                    r"definitions", problem.message), problem.message  # fmt: skip
    assert problem.locations[0].line == line and problem.details[0].startswith(f"left out: line {line} `def train(")
    msg = by_id(result)["training_lowers_mse"].message
    assert re.match(rf"train is not there: the grader left it out for a syntax error \(exp1.py line {line}: .*\); "
                    r"fix it$", msg), msg  # fmt: skip


def test_syntax_errors_the_grader_cannot_get_past_fail_every_check_with_the_line(course, example):
    """More broken statements than the grader leaves out (SYNTAX_DROPS): no check of the code is graded, each says
    where; model.pth, which fits the handout's MLP, is still measured by the judge, in the reference."""
    folder = example("exp1", "solution")
    src = (folder / "exp1.py").read_text()
    (folder / "exp1.py").write_text(src.replace("\n\ndef ", "\n\ndef half_written(x:\n    pass\n\n\ndef "))
    result = grade(course, "exp1", folder)
    assert {c.id: c.score for c in result.checks if c.score} == {"model_fits_target": 25.0}
    (folder / "exp1.py").unlink()  # not submitted at all: the same
    assert {c.id: c.score for c in grade(course, "exp1", folder).checks if c.score} == {"model_fits_target": 25.0}
    msg = by_id(result)["f_reference_values"].message
    assert re.match(r"exp1.py line \d+: .*fix the syntax error", msg), msg


def test_missing_folder_is_a_result(course, tmp_path):
    result = grade(course, "exp1", tmp_path / "nobody-submitted")
    assert result.score == 0 and len(result.checks) == 6
    assert all("does not exist" in c.message for c in result.checks)


def test_example_that_trains_at_import(course):
    """examples/exp1/trains-at-import: its experiments run at module level; with the course's real budget
    (20 s of CPU time) the import is stopped, the definitions graded, 5% taken off (tests/test_fair_grades.py)."""
    result = grade(course, "exp1", course.examples_dir("exp1") / "trains-at-import")
    assert all(c.status == "passed" for c in result.checks) and result.score == 95
    assert [p.id for p in result.problems] == ["import:exp1"]
    assert "after 20 s of CPU time" in result.problems[0].message
