"""Notebooks graded end to end: released notebooks executed by a real Jupyter kernel (nbclient + ipykernel), then
graded in the real sandbox; Colab's notebooks, the stub, an untagged training cell, malformed files.

Without nbclient/ipykernel the kernel tests skip, unless GRADER_REQUIRE_JUPYTER=1 (CI), where they fail."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from grader.grading import grade
from grader.notebook import TRAINING_TAG
from grader.report.html import to_html
from grader.report.markdown import to_markdown
from grader.sandbox.local import LocalSandbox
from tests.conftest import expected_checks
from tests.test_exp1_e2e import EXPECTED

pytestmark = pytest.mark.slow

PLOT = "%matplotlib inline\nimport matplotlib.pyplot as plt\n\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()"


def jupyter():
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError as exc:
        if os.environ.get("GRADER_REQUIRE_JUPYTER") == "1":
            pytest.fail(f"GRADER_REQUIRE_JUPYTER=1 but {exc}", pytrace=False)
        pytest.skip(f"no Jupyter kernel to run notebooks ({exc}): pip install 'torch-grader[notebooks]'")
    return nbclient, nbformat


def run_in_kernel(source: Path, dest: Path, extra_cells: list[str] = ()) -> Path:
    """`source` executed top to bottom by a real ipykernel, as a student runs it (plus `extra_cells`, e.g. a
    plot), skipping the cells tagged training; saved with its real outputs and execution counts to `dest`."""
    nbclient, nbformat = jupyter()
    nb = nbformat.read(source, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if TRAINING_TAG in c.metadata.get("tags", []))
    nb.cells[at:at] = [nbformat.v4.new_code_cell(text) for text in extra_cells]
    dest.mkdir(parents=True, exist_ok=True)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, skip_cells_with_tag=TRAINING_TAG,
                                     resources={"metadata": {"path": str(dest)}})  # fmt: skip
    client.execute()
    out = dest / source.name
    nbformat.write(nb, out)
    return out


def outputs(path: Path) -> list[str]:
    return [o.get("output_type", "") for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]


def test_kernel_run_solution_notebook_grades_as_the_py(course, tmp_path):
    """exp1's released solution notebook, run in Jupyter with a plot added, graded in full: the .py's scores."""
    sub = tmp_path / "alice"
    nb = run_in_kernel(course.solution_dir("exp1") / "exp1.ipynb", sub, [PLOT, "print(f(torch.tensor(1.0)))"])
    assert "display_data" in outputs(nb) and "stream" in outputs(nb)  # a real image and a real print
    shutil.copy(course.examples_dir("exp1") / "solution" / "model.pth", sub)
    result = grade(course, "exp1", sub)
    assert {c.id: c.score for c in result.checks} == EXPECTED["solution"], {c.id: c.message for c in result.checks}
    assert result.score == 100 and result.problems == []
    rec = result.files[0]
    assert rec.found_as == "exp1.ipynb" and "graded the notebook exp1.ipynb in place of exp1.py" in rec.note
    statuses = {c.status for c in rec.cells}
    assert {"run", "commented", "skipped", "text"} <= statuses  # the plot's `%matplotlib inline` is commented out
    assert "ran, magics commented out" in {c.label() for c in rec.cells}  # so the reports show the cell ran


@pytest.mark.parametrize("aid", ["exp2", "lenet", "rnn", "softmax"])
def test_every_released_notebook_runs_in_a_kernel_and_grades(course, data_root, tmp_path, aid):
    """Each released solution notebook, run in Jupyter (training cells skipped, as the handout tags them) and
    handed in with the solution's weights: every check earns what the .py solution earns."""
    sub = tmp_path / aid
    run_in_kernel(course.solution_dir(aid) / f"{aid}.ipynb", sub)
    for weights in (course.examples_dir(aid) / "solution").glob("*.pth"):
        shutil.copy(weights, sub)
    result = grade(course, aid, sub, data_root=data_root)
    want = expected_checks(aid)["solution"]
    assert {c.id: c.score for c in result.checks} == want, {c.id: c.message for c in result.checks}
    assert result.problems == [] and result.score == result.max_score
    assert result.files[0].found_as == f"{aid}.ipynb"


def colab(course: Path, dest: Path) -> Path:
    """exp1's solution as Colab saves it: Colab's metadata and widgets, a Drive cell, `!pip`, outputs."""
    nb = json.loads((course / "exp1.ipynb").read_text())
    nb["metadata"] = {"colab": {"provenance": [], "gpuType": "T4"}, "accelerator": "GPU",
                      "kernelspec": {"name": "python3", "display_name": "Python 3"},
                      "widgets": {"application/vnd.jupyter.widget-state+json": {"abc": {"model_name": "HBoxModel"}}}}
    drive = {"cell_type": "code", "execution_count": 1, "metadata": {"colab": {"base_uri": "https://localhost/"},
             "id": "x1", "outputId": "y1"},
             "source": ["from google.colab import drive\n", "drive.mount('/content/drive')"],
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["Mounted at /content/drive\n"]}]}
    pip = {"cell_type": "code", "execution_count": 2, "metadata": {}, "source": ["!pip install -q torchinfo\n",
           "import torch\n", "print(torch.__version__)"], "outputs": []}  # fmt: skip
    nb["cells"][2:2] = [drive, pip]
    for cell in nb["cells"]:
        cell.pop("id", None)  # Colab writes nbformat 4.0 without cell ids
    nb["nbformat_minor"] = 0
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "exp1.ipynb").write_text(json.dumps(nb))
    return dest


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
def test_colab_notebook(course, tmp_path, sandbox_name):
    """In both sandboxes: the contestant converts and imports the notebook, refuses `google`, falls back."""
    sandbox = LocalSandbox()
    if sandbox_name == "docker":
        from tests.test_hostile import _docker_sandbox

        sandbox = _docker_sandbox()
    sub = colab(course.solution_dir("exp1"), tmp_path / "bob")
    shutil.copy(course.examples_dir("exp1") / "solution" / "model.pth", sub)
    result = grade(course, "exp1", sub, only=["f_reference_values", "mlp_output_shape", "num_train_samples_unchanged"],
                   sandbox=sandbox)
    assert result.score == result.max_score == 30, {c.id: c.message for c in result.checks}
    # `google` is not on the grader, which says so once and takes nothing; the `!pip` line is commented out
    (problem,) = result.problems
    assert problem.points == 0 and problem.message.startswith(
        "exp1.ipynb imports google.colab in cell 3, line 1 (`from google.colab import drive`), which grading does not "
        "provide")  # fmt: skip
    assert problem.message.endswith(": google.colab exists only on Google Colab (mounting a drive, uploading files): "
                                    "tag that cell `training` so that grading skips it, or delete it")  # fmt: skip
    assert "cell 4, line 1: `!pip install -q torchinfo`" in result.files[0].note


def test_stub_notebook_scores_zero(course, tmp_path):
    sub = tmp_path / "stub"
    sub.mkdir()
    shutil.copy(course.assignment_dir("exp1") / "exp1.ipynb", sub)
    result = grade(course, "exp1", sub)
    assert result.score == 0 and all(c.status == "failed" for c in result.checks)
    assert "not implemented yet" in {c.id: c for c in result.checks}["f_reference_values"].message
    f_check = {c.id: c for c in result.checks}["f_reference_values"]
    cell = f_check.locations[-1].cell
    assert f"(exp1.ipynb cell {cell}, line 4: `raise NotImplementedError`, in f)" in f_check.message
    # the reports show the cells as graded, and the failures link to the cells they point at
    md, page = to_markdown(result, "student"), to_html(result, "student")
    assert "## Notebook cells: `exp1.ipynb`" in md and f"at `exp1.ipynb cell {cell}, line 4`, in `f`" in md
    assert f"| {cell} | run |  | `f_reference_values` |" in md
    assert "| skipped | tagged `training` |" in md
    assert f'<a href="#cell-{cell}">exp1.ipynb cell {cell}, line 4</a>' in page
    assert f'<tr id="cell-{cell}">' in page and '<a href="#check-f_reference_values">' in page


def test_untagged_training_cell_falls_back_and_names_the_cell(course_copy, tmp_path):
    c = course_copy("exp1")
    toml = c.assignment_dir("exp1") / "assignment.toml"
    toml.write_text(toml.read_text() + "\n[imports]\ncpu_seconds = 3\nwall_seconds = 20\n")
    nb = json.loads((c.solution_dir("exp1") / "exp1.ipynb").read_text())
    at = next(i for i, cell in enumerate(nb["cells"]) if TRAINING_TAG in cell["metadata"].get("tags", []))
    nb["cells"].insert(at, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                            "source": "model = build_model()\nlosses = train(model, *make_data(f), 10**7, 0.01)\n"})
    sub = tmp_path / "carol"
    sub.mkdir()
    (sub / "exp1.ipynb").write_text(json.dumps(nb))
    result = grade(c, "exp1", sub, only=["f_reference_values", "mlp_output_shape"])
    assert [ch.score for ch in result.checks] == [10, 10]
    (problem,) = result.problems
    assert problem.points == 1.0  # 5% of the 20 points graded
    cell = at + 1
    assert f"called at cell {cell}, line 2 (`losses = train(model, *make_data(f), 10**7, 0.01)`)" in problem.message
    assert "tag the cells that train or experiment `training`" in problem.message
    left = f"left out: cell {cell}, line 2 `losses = train("
    assert any(d.startswith(left) for d in problem.details), problem.details
    assert problem.locations[0].cell == cell
    (partly,) = [x for x in result.files[0].cells if x.status == "partly_run"]  # the report shows what ran
    assert partly.cell == cell and "losses = train(" in partly.detail


def test_malformed_notebooks_cost_only_their_file(course, tmp_path):
    for name, data in {"broken": b'{"cells": [{"cell_type": "code"', "v3": b'{"nbformat": 3, "worksheets": []}',
                       "huge": b'{"nbformat": 4, "cells": [], "x": "' + b"0" * (81 << 20) + b'"}'}.items():  # fmt: skip
        # huge: over 4x the 20 MiB limit, past what is read even for saved outputs
        sub = tmp_path / name
        sub.mkdir()
        (sub / "exp1.ipynb").write_bytes(data)
        result = grade(course, "exp1", sub, only=["f_reference_values"])
        (check,) = result.checks
        assert check.status == "failed" and result.files[0].problem, name
        assert all(c.status != "error" for c in result.checks)


def test_nbgrader_submitted_tree_is_batch_graded_into_formgraders_cells(course, tmp_path):
    """A course run with nbgrader: generate_assignment made the gradebook from our source notebook; students
    submitted notebooks or .py files; `grader batch` grades submitted/ and writes each check to its cell."""
    pytest.importorskip("nbgrader")
    import subprocess
    import sys

    from nbgrader.api import Gradebook

    from tests.test_batch import batch

    root = tmp_path / "course"
    (root / "source" / "exp1").mkdir(parents=True)
    shutil.copy(course.solution_dir("exp1") / "exp1.ipynb", root / "source" / "exp1")
    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    (root / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(root)!r}\n"
                                             f"c.CourseDirectory.db_url = {db!r}\n")  # fmt: skip
    bin_dir = str(Path(sys.executable).parent)
    r = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "exp1", "--force"], cwd=root,
                       capture_output=True, text=True, env={**os.environ, "PATH": bin_dir + os.pathsep +
                       os.environ["PATH"]}, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    submitted = root / "submitted"
    for student, files in {
        "alice": [course.solution_dir("exp1") / "exp1.ipynb", course.examples_dir("exp1") / "solution" / "model.pth"],
        "bob": [course.examples_dir("exp1") / "stub" / "exp1.py"],
        "carol": [course.assignment_dir("exp1") / "exp1.ipynb"],
    }.items():
        (submitted / student / "exp1").mkdir(parents=True)
        (submitted / student / "exp1" / "timestamp.txt").write_text("2026-11-30 12:00:00.000000 UTC")
        for f in files:
            shutil.copy(f, submitted / student / "exp1")
    (submitted / "dave" / "exp2").mkdir(parents=True)  # submitted another assignment only
    out = tmp_path / "out"
    r = batch("exp1", str(root), "--out", str(out), "--nbgrader-db", db, "-j", "2")
    assert r.returncode == 0, r.stderr
    assert "dave: no exp1/ folder (it has exp2)" in r.stderr.replace("\n", "")
    report = json.loads((out / "batch.json").read_text())
    assert report["input_kind"] == "nbgrader submitted/ folder" and report["graded_now"] == 3
    gb = Gradebook(db)
    try:
        nb = gb.find_notebook("exp1", "exp1")
        cells = {c.name for c in nb.grade_cells}, {c.name for c in nb.task_cells}
        assert cells == ({c.id for c in course.spec("exp1").checks}, {"report"})  # no new cells: the same ids
        alice = {g.name: g.auto_score for g in gb.find_submission_notebook("exp1", "exp1", "alice").grades}
        assert alice == {**{k: float(v) for k, v in EXPECTED["solution"].items()}, "report": None}
        assert gb.find_submission("exp1", "carol").score == 0
    finally:
        gb.close()
