"""A course of one's own: init, new, validate and selftest through the real CLI, and each author error as one
message with exit 2 (never a traceback, never a student's lost points)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

GRADER = [sys.executable, "-m", "grader.cli"]


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GRADER_COURSE", "GRADER_SANDBOX")}
    env["COLUMNS"] = "300"
    return subprocess.run([*GRADER, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory) -> Path:
    """A course made by `grader init`, with `grader new linreg` in it."""
    course = tmp_path_factory.mktemp("authoring") / "course"
    done = run(["init", str(course)], cwd=course.parent)
    assert done.returncode == 0, done.stderr
    assert (course / "course.toml").is_file() and "grader new" in done.stdout
    done = run(["new", "linreg"], cwd=course)
    assert done.returncode == 0, done.stderr
    assert "next: grader validate linreg" in done.stdout
    return course


def copy_of(course: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "course"
    shutil.copytree(course, dest)
    return dest


def errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error")]


def test_new_assignment_validates_and_grades_full_marks(scaffolded):
    done = run(["validate", "linreg"], cwd=scaffolded)  # the probe module imported in the local sandbox too
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok linreg: 3 checks, 100 points" in done.stdout
    done = run(["selftest", "linreg"], cwd=scaffolded)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok linreg/solution: 100 (expected 100)" in done.stdout
    assert "ok linreg/stub: 0 (expected 0)" in done.stdout


def test_selftest_prints_a_per_check_diff(scaffolded, tmp_path):
    course = copy_of(scaffolded, tmp_path)
    solution = course / "examples/linreg/solution/linreg.py"
    solution.write_text(solution.read_text().replace("param.grad.zero_()", "pass  # forgot to zero"))
    done = run(["selftest", "linreg"], cwd=course)
    assert done.returncode == 1
    assert "DIFFERS linreg/solution: 60 (expected 100)" in done.stdout
    assert re.search(r"sgd_update: expected 40, got 0 \(failed: sgd\(\) left the gradients", done.stdout)


def test_no_course_is_an_error_not_site_packages(tmp_path):
    done = run(["validate"], cwd=tmp_path)
    assert done.returncode == 2
    assert "no course at or above" in done.stderr and "grader init" in done.stderr


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # the probe module is missing
        (lambda c: (c / "assignments/linreg/probes.py").unlink(),
         r"error: assignments/linreg/assignment.toml: probes: assignments/linreg/probes.py does not exist"),
        # a typo in a probe name: the check's file and line
        (lambda c: _replace(c / "assignments/linreg/checks/test_linreg_public.py", '"linreg_output"', '"linreg_ouput"'),
         r"error: assignments/linreg/checks/test_linreg_public.py line \d+: calls probe 'linreg_ouput', which "
         r"probes.py does not define"),
        # a declared check without a test
        (lambda c: _replace(c / "solutions/linreg/hidden_checks/test_linreg_hidden.py", "def test_sgd_update",
                            "def test_sgd_step"),
         r"error: assignments/linreg/assignment.toml checks.sgd_update: no test_sgd_update in the check files"),
        # the hidden check shipped to students
        (lambda c: shutil.move(c / "solutions/linreg/hidden_checks/test_linreg_hidden.py",
                               c / "assignments/linreg/checks/test_linreg_hidden.py"),
         r"test_sgd_update is hidden but sits in the public checks students get"),
        # points that do not add up
        (lambda c: _replace(c / "assignments/linreg/assignment.toml", "points = 40", "points = 35"),
         r"error: assignments/linreg/assignment.toml: the checks add up to 95 \(30 \+ 30 \+ 35\), not the "
         r"declared total 100"),
        # the solution changed and the stub was not released again
        (lambda c: _replace(c / "solutions/linreg/linreg.py", "Xw + b", "X @ w + b"),
         r"error: assignments/linreg/linreg.py: stale against its solution: run `grader release linreg`"),
        # a syntax error in probes.py: found by reading it, no sandbox needed
        (lambda c: _replace(c / "assignments/linreg/probes.py", "@probe\ndef linreg_output",
                            "@probe\ndef linreg_output("),
         r"error: assignments/linreg/probes.py: probes.py line \d+: .* \(a syntax error in the probe module\)"),
        # markup in a message is printed as written, not swallowed
        (lambda c: _replace(c / "assignments/linreg/assignment.toml", 'files = ["linreg.py"]\n',
                            'files = ["lin.py"]\n', 1),
         r"reads \['lin.py'\], which \[\[files\]\] does not declare"),
    ],
    ids=["missing-probes", "probe-typo", "check-without-test", "hidden-shipped", "points", "stale-stub",
         "probes-syntax", "markup"],
)
def test_author_errors_are_one_line_and_exit_2(scaffolded, tmp_path, edit, expected):
    course = copy_of(scaffolded, tmp_path)
    edit(course)
    done = run(["validate", "linreg", "--no-sandbox"], cwd=course)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(expected, done.stderr), done.stderr


def test_probe_module_that_fails_to_import_in_the_sandbox(scaffolded, tmp_path):
    course = copy_of(scaffolded, tmp_path)
    _replace(course / "assignments/linreg/probes.py", "import torch\n", "import torch\nimport linreg_helpers\n")
    done = run(["validate", "linreg"], cwd=course)
    assert done.returncode == 2
    assert re.search(r"error: assignments/linreg/probes.py: the probe module probes.py failed to import:.*"
                     r"ModuleNotFoundError: No module named 'linreg_helpers'", done.stderr), done.stderr


def test_the_repository_course_validates():
    done = run(["validate"], cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines() if line.startswith("ok")] == [
        "ok exp1", "ok exp2", "ok lenet", "ok rnn", "ok softmax"]


def test_validate_names_a_misspelt_function(scaffolded, tmp_path):
    """`functions` of a check must be top-level definitions of the solution; a rule's may be methods."""
    course = copy_of(scaffolded, tmp_path)
    _replace(course / "assignments/linreg/assignment.toml", 'functions = ["squared_loss"]',
             'functions = ["squared_los"]')  # fmt: skip
    done = run(["validate", "linreg", "--no-sandbox"], cwd=course)
    assert done.returncode == 2
    assert errors(done) == ["error: assignments/linreg/assignment.toml checks.squared_loss_values: names function "
                            "'squared_los', which the solution (solutions/linreg/linreg.py) does not define at top "
                            "level; fix the name"]  # fmt: skip


def test_a_course_brings_its_own_dataset(scaffolded, tmp_path):
    """course.toml declares a dataset by its reader module; validation, data roots and prepare use it."""
    course = copy_of(scaffolded, tmp_path)
    (course / "datasets").mkdir()
    (course / "datasets/linreg_synth.py").write_text(
        '"""Synthetic linear data: y = 2 x0 - 3.4 x1 + 4.2 + noise, stored as one tensor file."""\n'
        "from pathlib import Path\n\nimport torch\n\n"
        'LAYOUT = "linreg/synth.pt"\n\n\n'
        "def read(root: Path, train: bool):\n"
        '    data = torch.load(root / LAYOUT, weights_only=True)\n'
        '    return data["train" if train else "test"]\n\n\n'
        "def prepare(root: Path) -> None:\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(1000, 2, generator=g)\n"
        "    y = x @ torch.tensor([[2.0], [-3.4]]) + 4.2\n"
        "    (root / 'linreg').mkdir(parents=True, exist_ok=True)\n"
        "    torch.save({'train': (x[:800], y[:800]), 'test': (x[800:], y[800:])}, root / LAYOUT)\n"
    )
    with open(course / "course.toml", "a") as f:
        f.write('\n[datasets.linreg-synth]\nreader = "datasets/linreg_synth.py"\n')
    _replace(course / "assignments/linreg/assignment.toml", "datasets = []", 'datasets = ["linreg-synth"]')
    done = run(["validate", "linreg", "--no-sandbox"], cwd=course)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(["data", "prepare", "linreg-synth", "--root", str(tmp_path / "data")], cwd=course)
    assert done.returncode == 0 and "prepared under" in done.stdout, done.stderr
    from grader.data import datasets, resolve_data_root
    from grader.spec import Course

    c = Course(root=course)
    x, y = datasets(course)["linreg-synth"].read(tmp_path / "data", train=False)
    assert tuple(x.shape) == (200, 2) and tuple(y.shape) == (200, 1)
    assert resolve_data_root(c.spec("linreg"), tmp_path / "data", course).path == (tmp_path / "data").resolve()
    _replace(course / "assignments/linreg/assignment.toml", '["linreg-synth"]', '["linreg-synthetic"]')
    done = run(["validate", "linreg", "--no-sandbox"], cwd=course)
    assert done.returncode == 2 and "unknown dataset 'linreg-synthetic'" in done.stderr


def _replace(path: Path, old: str, new: str, count: int = -1) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, count))
