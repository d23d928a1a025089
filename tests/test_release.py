"""Stubs are generated from solutions; the committed ones must match."""

import pytest

from grader.release import ReleaseError, release, strip_solution


def test_regions_become_todos():
    src = (
        "def f(x):\n"
        "    ### BEGIN SOLUTION: return twice x\n"
        "    return 2 * x\n"
        "    ### END SOLUTION\n"
        "\n"
        "### BEGIN SOLUTION\n"
        "K = 3\n"
        "### END SOLUTION\n"
    )
    assert strip_solution(src) == (
        "def f(x):\n"
        "    # TODO: return twice x\n"
        "    raise NotImplementedError\n"
        "\n"
        "# TODO: your code here\n"
        "raise NotImplementedError\n"
    )


@pytest.mark.parametrize(
    ("src", "words"),
    [
        ("### BEGIN SOLUTION\nx\n", "line 1: BEGIN SOLUTION is never closed"),
        ("x\n### END SOLUTION\n", "line 2: END SOLUTION without a BEGIN"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", "line 2: BEGIN SOLUTION inside the region opened at line 1"),
    ],
)
def test_unbalanced_markers(src, words):
    with pytest.raises(ReleaseError, match=words):
        strip_solution(src, "s.py")


def test_committed_stubs_match_solutions(course):
    for aid in course.assignment_ids():
        stale = release(course, aid, check=True)
        assert stale == [], f"run `grader release {aid}`: stale {stale}"


def test_stub_has_no_solution_code(course):
    stub = (course.assignment_dir("exp1") / "exp1.py").read_text()
    assert "torch.cos(x - 1)" not in stub and "Adam" not in stub
    assert stub.count("raise NotImplementedError") == 5  # f, custom_f, MLP.__init__, forward, train
