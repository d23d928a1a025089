"""Shared fixtures: the course in this checkout, its examples, and scratch copies of them."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent

# A suite started in the background by a script (`make test &`) inherits SIGINT ignored, and every grader it
# starts would inherit that too: the Ctrl-C tests would then interrupt nothing. Deliver it as a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def example_names(assignment: str) -> list[str]:
    """The examples examples/<assignment>/expected.toml lists (what `grader selftest` grades)."""
    import tomllib

    return sorted(tomllib.loads((ROOT / "examples" / assignment / "expected.toml").read_text()))


def expected_checks(assignment: str) -> dict[str, dict[str, float]]:
    """Per-check scores of the examples whose total is the sum of their checks (no problem deducts points), from
    examples/<assignment>/expected.toml: what batch tests compare a class against."""
    from grader.selftest import expected_scores, load_manifest

    course = Course(root=ROOT)
    spec = course.spec(assignment)
    return {name: expected_scores(spec, want)[0] for name, want in load_manifest(course, spec).items()
            if want.score is None}  # fmt: skip


@pytest.fixture(scope="session")
def course() -> Course:
    return Course(root=ROOT)


@pytest.fixture
def example(tmp_path: Path):
    """Copy a bundled example into tmp_path so a test may modify it."""

    def copy(assignment: str, name: str) -> Path:
        dest = tmp_path / f"{assignment}-{name}"
        n = 1
        while dest.exists():  # a test may take several copies of one example
            n += 1
            dest = tmp_path / f"{assignment}-{name}-{n}"
        shutil.copytree(ROOT / "examples" / assignment / name, dest)
        return dest

    return copy


@pytest.fixture
def course_copy(tmp_path: Path):
    """A scratch course holding one assignment, whose assignment.toml a test may edit."""

    def make(assignment: str) -> Course:
        root = tmp_path / "course"
        for part in ("assignments", "solutions"):
            shutil.copytree(ROOT / part / assignment, root / part / assignment)
        return Course(root=root)

    return make


SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets in torchvision's layout under ROOT/data, materialized from ../shared/datasets once."""
    root = ROOT / "data"
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        if not (SHARED_DATASETS / "materialize.py").exists():
            pytest.skip(f"no datasets: {root} is empty and {SHARED_DATASETS} does not exist")
        subprocess.run([sys.executable, str(SHARED_DATASETS / "materialize.py"), str(root)], check=True)
    return root
