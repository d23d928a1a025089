"""rnn graded end to end on the real timemachine.txt: the bundled examples and their messages."""

from __future__ import annotations

import pytest

from grader.data import read_time_machine
from grader.grading import grade
from grader.selftest import run_example
from tests.conftest import example_names

pytestmark = pytest.mark.slow



def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


@pytest.mark.parametrize("name", example_names("rnn"))
def test_bundled_example_scores(course, data_root, name):
    """Each example scores what examples/rnn/expected.toml says: the same comparison as `grader selftest`."""
    outcome = run_example(course, "rnn", name, data_root)
    assert outcome.diffs == [], "\n".join(outcome.diffs)


def test_messages(course, data_root):
    clip = by_id(grade(course, "rnn", course.examples_dir("rnn") / "per-parameter-clipping", data_root=data_root,
                       only=["grad_clipping", "perplexity"]))  # fmt: skip
    assert clip["grad_clipping"].message.startswith(
        "after grad_clipping(net, theta=1) on gradients of global norm 10 the global norm is 2.157; expected at most 1")
    assert clip["perplexity"].message.endswith(
        "perplexity 8.5549 (full credit at <= 5.5, none at >= 10, log-linear between; within 0.01 of full credit "
        "still earns it, since machines measure slightly differently)")
    relu = by_id(grade(course, "rnn", course.examples_dir("rnn") / "relu-instead-of-tanh", data_root=data_root,
                       only=["rnn_matches_reference", "perplexity"]))  # fmt: skip
    assert relu["rnn_matches_reference"].message.startswith("rnn's outputs differ from the reference")
    assert relu["perplexity"].notes == ["rnn.pth fits the reference RNN step, but your model computes otherwise: "
                                        "measured in your own model, exported with those weights (this costs "
                                        "nothing by itself)"]
    assert relu["perplexity"].message.startswith("rnn.pth in your own RNN, run by the judge on The Time Machine")


def test_reader_matches_d2l(data_root):
    lines = read_time_machine(data_root)
    assert lines[0] == "the time machine by h g wells"
    assert sum(len(s) for s in lines) == 170_580  # d2l 8.2's corpus length for char tokens
