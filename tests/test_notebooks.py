"""Notebooks read as data: cells to one module, positions in cells, malformed files, intake, rules, release."""

from __future__ import annotations

import json

import pytest

from grader import notebook
from grader.intake import intake
from grader.judge.source_rules import package_problems, point_at_definitions, rule_problems
from grader.notebook import NotebookError, convert, module_source, parse
from grader.release import release
from grader.report.markdown import failures_by_cell
from grader.results import CheckResult, Location


def nb_bytes(*cells: tuple[str, str] | tuple[str, str, list[str]], **top) -> bytes:
    """A notebook as Jupyter saves it: sources as lists of lines, outputs and counts on code cells."""
    out = []
    for n, (kind, source, *tags) in enumerate(cells, start=1):
        cell = {"cell_type": kind, "metadata": {"tags": tags[0]} if tags else {},
                "source": source.splitlines(keepends=True)}  # fmt: skip
        if kind == "code":
            cell |= {"execution_count": n, "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]}
        out.append(cell)
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": out, **top}).encode()


STUDENT = nb_bytes(
    ("markdown", "# My exp1\nNotes."),
    ("code", "%matplotlib inline\n!pip install d2l\nimport torch\n"),
    ("code", "%%time\ndef f(x):\n    return x * 2\n"),
    ("code", "%%bash\nls -l\n"),
    ("code", "for lr in [1, 0.1]:\n    !echo $lr\n    print(lr)\n"),
    ("code", "losses = train(model)\n", ["training"]),
    ("code", "def broken(:\n    pass\n"),
    ("code", "files = !ls\ny = f(3)\nprint(y)"),
)


def test_cells_become_one_module():
    nb = module_source(STUDENT, "exp1.ipynb")
    compile(nb.source, "exp1.ipynb", "exec")  # the module is valid Python
    assert "losses = train(model)" not in nb.source  # the tagged cell is skipped
    assert "def broken" not in nb.source  # a cell that does not parse is left out, as Jupyter fails only it
    assert [(c, n) for c, n, _ in nb.commented] == [(2, 1), (2, 2), (3, 1), (4, 1), (5, 2), (8, 1)]
    assert {c.cell: c.status for c in nb.cells} == {
        1: "text", 2: "commented", 3: "commented", 4: "commented", 5: "commented", 6: "skipped",
        7: "syntax_error", 8: "commented",
    }  # fmt: skip
    assert nb.broken == [(7, 1, "invalid syntax")]
    namespace: dict = {}
    exec(compile(nb.source, "exp1.ipynb", "exec"), namespace)  # `%%time`'s body ran; the bash cell did not
    assert namespace["f"](2) == 4 and namespace["y"] == 6
    line = nb.source.splitlines().index("y = f(3)") + 1
    assert nb.position(line) == (8, 2)
    assert nb.at(line) == "cell 8, line 2 (`y = f(3)`)"
    summary = nb.summary()
    assert "skipped cell(s) 6 (tagged `training`)" in summary and "cell 2, line 2: `!pip install d2l`" in summary
    assert "left out cell 7: a syntax error at line 1" in summary


def test_a_fix_left_in_a_tagged_cell_is_named(tmp_path):
    """The student fixed f inside the cell tagged `training`, which is skipped: the f graded is the earlier cell's,
    and the notebook's note says where the fix went."""
    nb = module_source(nb_bytes(
        ("code", "import torch\n\ndef f(x):\n    return x ** 2 + 2 * torch.sin(x - 1)\n"),
        ("code", "# 改正了 f, 再训练一次\ndef f(x):\n    return x ** 2 + 2 * torch.sin(x)\n\nlosses = train(model)\n",
         ["training"]),
    ), "exp1.ipynb")  # fmt: skip
    assert nb.redone == [(2, "f", 1)]
    assert ("cell 2, tagged `training` and skipped, defines f again: the f graded is cell 1's; move a fix out of "
            "the tagged cell") in nb.summary()  # fmt: skip


def test_a_cell_that_reads_what_only_a_skipped_cell_makes_is_skipped_too():
    """The training cell is tagged; the plot of its history below is not. It could only fail (NameError), which
    would cost the definitions-only fallback: it is skipped, and so is what reads only it. A name an earlier cell
    ran already binds, and a cell with a function in it, stay."""
    nb = module_source(nb_bytes(
        ("code", "import torch\nimport matplotlib.pyplot as plt\nnet = torch.nn.Linear(2, 2)\n"),
        ("code", "%%time\nhistory = {'test_acc': []}\nnet = train(net, history)  # 训练 10 个 epoch\n", ["training"]),
        ("code", "%matplotlib inline\nplt.plot(history['test_acc'])\nbest = max(history['test_acc'])\n"),
        ("code", "print(f'best: {best:.2f}')\n"),
        ("code", "print(net)  # the untrained one, from the first cell\n"),
        ("code", "def show():\n    return history\n\nshow()\n"),
        ("code", "history = {'test_acc': [1.0]}\nprint(history)\n"),
    ), "exp2.ipynb")  # fmt: skip
    assert {c.cell: (c.status, c.detail) for c in nb.cells if c.status == "skipped"} == {
        2: ("skipped", "tagged `training`"), 3: ("skipped", "uses `history`, which skipped cell 2 makes"),
        4: ("skipped", "uses `best`, which skipped cell 3 makes")}  # fmt: skip
    assert "print(net)" in nb.source and "def show()" in nb.source and "print(history)" in nb.source
    assert "skipped cell(s) 3, 4, which use what a skipped cell makes" in nb.summary() and not nb.commented


def test_hostile_cells_are_left_out_not_a_crash():
    nb = module_source(nb_bytes(("code", "x = 1\x00"), ("code", "(" * 300_000 + ")" * 300_000), ("code", "y = 2")),
                       "exp1.ipynb")  # fmt: skip
    assert [c.status for c in nb.cells] == ["syntax_error", "syntax_error", "run"]
    assert nb.source.strip() == "y = 2"


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"cells": [', "its JSON is broken at line 1, column 12"),
        (json.dumps({"nbformat": 3, "worksheets": []}).encode(), "notebook format 3"),
        (b"[1, 2]", "not a Jupyter notebook"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (json.dumps({"nbformat": 4, "cells": [{"cell_type": "code", "source": 7}]}).encode(), "cell 1"),
    ],
)
def test_malformed_notebooks_are_one_message(data, words):
    with pytest.raises(NotebookError, match=words):
        module_source(data, "exp1.ipynb")


def test_intake_takes_a_notebook_for_the_py_file(course, tmp_path):
    spec = course.spec("exp1")
    (tmp_path / "Exp1.ipynb").write_bytes(STUDENT)
    rec = intake(spec, tmp_path).record("exp1.py")
    assert rec.problem is None and rec.found_as == "Exp1.ipynb"
    assert rec.note.startswith("graded the notebook Exp1.ipynb in place of exp1.py")
    assert [c.status for c in rec.cells][:2] == ["text", "commented"]
    staged = intake(spec, tmp_path).stage(tmp_path / "staged")
    assert sorted(p.name for p in staged.iterdir()) == ["exp1.ipynb"]  # cells only: no outputs reach the sandbox
    assert "outputs" not in (staged / "exp1.ipynb").read_text()
    (tmp_path / "exp1.py").write_text("x = 1\n")
    rec = intake(spec, tmp_path).record("exp1.py")
    assert rec.found_as is None and "also found Exp1.ipynb; graded exp1.py, not the notebook" in rec.note


def test_intake_says_what_is_wrong_with_a_notebook(course, tmp_path):
    spec = course.spec("exp1")
    (tmp_path / "exp1.ipynb").write_bytes(b'{"nbformat": 4, "cells": [')
    assert "its JSON is broken" in intake(spec, tmp_path).record("exp1.py").problem
    # 50 MB of output (a printed training log): over the notebook limit, but only code cells are graded: a note,
    # with how to fix it; over four times the limit, a problem, read no further
    for mib, graded in ((50, True), (90, False)):
        big = nb_bytes(("code", "print(1)"))[:-1] + b', "pad": "' + b"x" * (mib << 20) + b'"}'
        (tmp_path / "exp1.ipynb").write_bytes(big)
        rec = intake(spec, tmp_path).record("exp1.py")
        said = rec.note if graded else rec.problem
        assert (rec.problem is None) == graded and "over the 20 MiB notebook limit" in said, rec
        assert "Clear Outputs of All Cells" in said


def test_a_notebook_where_the_spec_takes_none_is_missing(course_copy, tmp_path):
    c = course_copy("exp1")
    toml = c.assignment_dir("exp1") / "assignment.toml"
    toml.write_text(toml.read_text().replace("notebook = true", "notebook = false"))
    (tmp_path / "exp1.ipynb").write_bytes(STUDENT)
    rec = intake(c.spec("exp1"), tmp_path).record("exp1.py")
    assert not rec.present and "found 'exp1.ipynb': rename it to 'exp1.py'" in rec.problem


def test_rules_read_code_cells_and_name_the_cell(course):
    spec = course.spec("softmax")
    nb = module_source(nb_bytes(("markdown", "# softmax"), ("code", "import torch\n\ndef softmax(X):\n"
                                                           "    return torch.softmax(X, 1)\n")), "softmax.ipynb")
    (problem,) = rule_problems(spec, {"softmax.py": nb.source}, {"softmax.py": nb})
    assert "torch.softmax (cell 2, line 4 (`return torch.softmax(X, 1)`), in softmax)" in problem.message
    assert [(loc.file, loc.cell, loc.line) for loc in problem.locations] == [("softmax.ipynb", 2, 4)]


def test_a_rule_reads_the_definition_that_is_graded(course):
    """A first try with torch.softmax in cell 2, rewritten by hand in cell 3: the later softmax is the one the
    checks call, so the rule reads that one; a use in the definition that stands is still named."""
    spec = course.spec("softmax")
    first = "import torch\n\ndef softmax(X):\n    return torch.softmax(X, dim=1)  # 先用库函数试试\n"
    own = "def softmax(X):\n    X_exp = torch.exp(X - X.max(dim=1, keepdim=True).values)\n" \
          "    return X_exp / X_exp.sum(1, keepdim=True)\n"
    nb = module_source(nb_bytes(("code", first), ("code", own)), "softmax.ipynb")
    assert rule_problems(spec, {"softmax.py": nb.source}, {"softmax.py": nb}) == []
    nb = module_source(nb_bytes(("code", own), ("code", first)), "softmax.ipynb")
    (problem,) = rule_problems(spec, {"softmax.py": nb.source}, {"softmax.py": nb})
    assert "torch.softmax (cell 2, line 4" in problem.message


def test_a_colab_copy_is_named_as_submitted(course, tmp_path):
    """Colab's "Save a copy in Drive": `Copy of softmax.ipynb` is graded for softmax.py, and what is said about
    its code names the file the student has."""
    code = "import torch\nfrom google.colab import drive\ndrive.mount('/content/drive')\n"
    (tmp_path / "Copy of softmax.ipynb").write_bytes(nb_bytes(("code", code)))
    sub = intake(course.spec("softmax"), tmp_path)
    nb = sub.converted("softmax.py")
    assert sub.record("softmax.py").found_as == "Copy of softmax.ipynb" and nb is not None
    (problem,) = package_problems(course.spec("softmax"), {"softmax.py": nb.source}, {"softmax.py": nb})
    assert problem.message.startswith("Copy of softmax.ipynb imports google.colab in cell 1, line 2")
    assert [(loc.file, loc.cell, loc.line) for loc in problem.locations] == [("Copy of softmax.ipynb", 1, 2)]


def test_a_colab_only_import_is_told_what_can_be_done_with_it(course):
    """Nothing of google.colab can be copied into a file, unlike d2l: each gets its own fix, in one message."""
    src = ("import torch\nfrom google.colab import drive  # 挂载云盘\nfrom d2l import torch as d2l\n\n"
           "drive.mount('/content/drive')\n")  # fmt: skip
    (problem,) = package_problems(course.spec("softmax"), {"softmax.py": src})
    assert problem.message.startswith("softmax.py imports google.colab (line 2), d2l (line 3), which grading does "
                                      "not provide")  # fmt: skip
    assert problem.message.endswith(": copy what you need from d2l into your file, or remove the import; "
                                    "google.colab exists only on Google Colab (mounting a drive, uploading files): "
                                    "remove it and what uses it")  # fmt: skip


def test_released_notebooks_match_solutions_and_validate(course):
    nbformat = pytest.importorskip("nbformat")
    v3 = pytest.importorskip("nbgrader.nbgraderformat.v3")
    from nbgrader.utils import compute_checksum

    for aid in course.assignment_ids():
        assert release(course, aid, check=True, fmt="ipynb") == [], f"run `grader release {aid} --format ipynb`"
        spec = course.spec(aid)
        for path in (course.assignment_dir(aid) / f"{aid}.ipynb", course.solution_dir(aid) / f"{aid}.ipynb"):
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
            v3.MetadataValidatorV3().validate_nb(nb)  # nbgrader's own validator: ids, points, cell kinds
            meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]  # the student's answer cells have none
            for cell, m in zip(nb.cells, meta, strict=True):
                if "checksum" in m:
                    assert m["checksum"] == compute_checksum(cell), (path, m["grade_id"])
            graded = {m["grade_id"]: (m["points"], cell.cell_type, m["grade"], m["task"])
                      for cell, m in zip(nb.cells, meta, strict=True) if m.get("grade") or m.get("task")}  # fmt: skip
            assert graded == {c.id: (c.points, "code", True, False) for c in spec.checks if c.enabled} | {
                r.id: (r.points, "markdown", False, True) for r in spec.rubric}  # the cells the export writes to
            training = [c for c in nb.cells if notebook.TRAINING_TAG in c.metadata.get("tags", [])]
            assert len(training) == 1 and "__main__" in training[0].source
            stub = "raise NotImplementedError" in "".join(c.source for c in nb.cells)
            assert stub == (path.parent.name == aid and path.parent.parent.name == "assignments")


def test_release_notebook_is_what_the_stub_is(course):
    """The student notebook's code is the .py stub's, cell by cell: one source, two outputs."""
    stub = (course.assignment_dir("exp1") / "exp1.py").read_text()
    cells = parse((course.assignment_dir("exp1") / "exp1.ipynb").read_bytes(), "exp1.ipynb")
    code = [c["source"] for c in cells if c["cell_type"] == "code"]
    ours = [line for line in "\n".join(code[: -len(course.spec("exp1").checks)]).splitlines()
            if line.strip() and not line.startswith(("# Training:", "# tag on every"))]  # fmt: skip
    assert ours == [line for line in stub.split('"""', 2)[2].splitlines() if line.strip()]
    assert convert(cells).source.count("raise NotImplementedError") == stub.count("raise NotImplementedError")


def test_spec_refuses_a_notebook_for_weights():
    from pydantic import ValidationError

    from grader.spec import FileSpec

    with pytest.raises(ValidationError, match="applies to .py files only"):
        FileSpec(name="model.pth", max_kb=10, notebook=True)


def test_notebooks_in_lms_zips_and_nbgrader_folders_are_found(course, tmp_path):
    import zipfile

    from grader.batch.discover import discover

    spec = course.spec("exp1")
    with zipfile.ZipFile(tmp_path / "canvas.zip", "w") as zf:  # Canvas: flat files named <name>_<uid>_<sub>_<file>
        zf.writestr("alice_123_456_exp1.ipynb", STUDENT)
        zf.writestr("alice_123_456_model.pth", b"weights")
    with zipfile.ZipFile(tmp_path / "moodle.zip", "w") as zf:  # Moodle: a folder per student, here a zipped folder
        zf.writestr("Bob Brown_77_assignsubmission_file_/work/exp1.ipynb", STUDENT)
    for export, key in (("canvas.zip", "123"), ("moodle.zip", "77")):
        (found,) = discover(tmp_path / export, tmp_path / "work" / export).found
        assert found.key == key
        assert intake(spec, found.folder).record("exp1.py").found_as in ("exp1.ipynb", "work/exp1.ipynb")
    submitted = tmp_path / "submitted"
    for student, assignment in (("s1", "exp1"), ("s1", "exp2"), ("s2", "exp1")):
        (submitted / student / assignment).mkdir(parents=True)
        (submitted / student / assignment / f"{assignment}.ipynb").write_bytes(STUDENT)
    d = discover(tmp_path, tmp_path / "work2", "exp1")  # the course folder that holds submitted/
    assert d.kind == "nbgrader submitted/ folder"
    assert [(f.key, f.folder.name) for f in d.found] == [("s1", "exp1"), ("s2", "exp1")]
    assert discover(submitted, tmp_path / "work3", "exp2").problems == [
        f"{submitted / 's2'}: no exp2/ folder (it has exp1); nothing to grade"]


def test_a_py_exported_from_a_notebook_runs_as_the_notebook_would(tmp_path):
    """nbconvert's `get_ipython()` lines: shell escapes and line magics do nothing, a `%%time` cell's body runs,
    a `%%bash` cell's does not; a .py that was never a notebook gets no get_ipython."""
    from grader.loader import import_module

    (tmp_path / "softmax.py").write_text(
        "#!/usr/bin/env python\n# coding: utf-8\n\n# In[1]:\n\n\nget_ipython().system('pip install d2l==1.0.3')\n"
        "get_ipython().run_line_magic('matplotlib', 'inline')\nimport math\n\n\n# In[3]:\n\n\n"
        "get_ipython().run_cell_magic('time', '', 'total = sum(range(10))  # 计时\\n')\n"
        f"get_ipython().run_cell_magic('bash', '', 'touch {tmp_path}/ran-bash\\n')\n"
        "\n\n# In[4]:\n\n\ndisplay(total)  # 看一下\n")  # fmt: skip
    module = import_module("exported_softmax", tmp_path / "softmax.py", cpu_s=10, wall_s=20)
    assert module.total == 45 and not (tmp_path / "ran-bash").exists()
    (tmp_path / "plain.py").write_text("x = 1\n")
    assert not hasattr(import_module("plain_module", tmp_path / "plain.py", cpu_s=10, wall_s=20), "get_ipython")


def test_a_slow_notebook_import_names_the_cell_that_runs_its_code(course):
    """An untagged cell that calls main() (the time went there), then a cheap cell that rebuilds the model: the
    note names main()'s cell, and the notebook by the name it was submitted under."""
    from grader.grading import import_problems
    from grader.judge.client import ModuleImport

    nb = module_source(nb_bytes(
        ("code", "import torch\n\ndef build_model():\n    return torch.nn.Linear(1, 1)\n\n"
                 "def main():\n    for _ in range(3):\n        build_model()\n"),
        ("markdown", "## 训练"), ("code", "main()  # 跑一遍"), ("code", "model = build_model()\nprint(model)"),
    ), "exp1.ipynb")  # fmt: skip
    nb.file = "exp1 (2).ipynb"
    [note] = import_problems(course.spec("exp1"), {"exp1": ModuleImport(module="exp1", seconds=6.3)}, 100.0, set(),
                             {"exp1.py": nb.source}, {"exp1": nb})  # fmt: skip
    assert note.message.startswith("exp1 (2).ipynb took 6.3 s to import: it runs code at import (cell 3, line 1 "
                                   "`main()`, among others)"), note.message  # fmt: skip


def test_a_leftover_cell_is_told_to_restart_and_run_all(tmp_path):
    """A debugging cell whose variable a deleted cell defined: not training, so not told to tag it."""
    from grader.loader import ImportProblem, import_module

    (tmp_path / "softmax.ipynb").write_bytes(nb_bytes(
        ("code", "import torch\n\ndef softmax(X):\n    return X.exp() / X.exp().sum(1, keepdim=True)\n"),
        ("code", "# 调试用\nprint(y_hat_dbg.shape)")))  # fmt: skip
    with pytest.raises(ImportProblem) as failed:
        import_module("leftover_softmax", tmp_path / "softmax.ipynb", cpu_s=10, wall_s=20)
    assert failed.value.message == (
        "softmax.ipynb fails when imported (NameError: name 'y_hat_dbg' is not defined at cell 2, line 2 "
        "(`print(y_hat_dbg.shape)`)): that cell uses a name no cell above it defines; fix or delete the cell, and "
        "check that Kernel > Restart & Run All runs the notebook from top to bottom")  # fmt: skip


@pytest.mark.parametrize("maker, how", [
    (("code", "x_test = torch.rand(4, 784)  # 训练后的测试数据\n", ["training"]),
     "only cell 2, which grading skips, sets it"),
    (("code", 'if __name__ == "__main__":\n    x_test = torch.rand(4, 784)\n'),
     'cell 2 sets it only under `if __name__ == "__main__":`, which is false when grading imports the notebook'),
])
def test_a_cell_that_uses_what_only_skipped_code_sets_costs_nothing(tmp_path, maker, how):
    """d2l's predict_ch3 defined and called in one cell, on x_test that only a tagged cell, or a cell's main
    guard (true in Jupyter), sets: Restart & Run All works, so the definitions-only import costs nothing and the
    message says where the name comes from; a later plot cell reading it is skipped, saying the same."""
    from grader.loader import ImportProblem, import_module

    (tmp_path / "softmax.ipynb").write_bytes(nb_bytes(
        ("code", "import torch\n"), maker,
        ("code", "def predict_ch3(X):\n    return X.sum(1)\n\n\npredict_ch3(x_test)\n"),
        ("code", "print(x_test.shape)  # 看看形状\n")))  # fmt: skip
    nb = module_source((tmp_path / "softmax.ipynb").read_bytes(), "softmax.ipynb")
    assert nb.cells[-1].status == "skipped" and "x_test" in nb.cells[-1].detail
    with pytest.raises(ImportProblem) as failed:
        import_module("made_softmax", tmp_path / "softmax.ipynb", cpu_s=10, wall_s=20)
    assert failed.value.kind == "skipped_name" and failed.value.message == (
        f"softmax.ipynb uses x_test when imported at cell 3, line 5 (`predict_ch3(x_test)`), and {how}: the grader "
        "imported the notebook's definitions only, which costs nothing here; tag the cell that uses x_test "
        "`training` too, with its functions in a cell of their own")  # fmt: skip


def test_a_notebook_has_jupyters_docstring(tmp_path):
    """The handout's main() builds its parser from __doc__.splitlines(): in Jupyter a notebook's __doc__ is
    IPython's, so an untagged quick run of main() works there and must not fail here on a None __doc__."""
    from grader.loader import import_module

    (tmp_path / "softmax.ipynb").write_bytes(nb_bytes(
        ("code", "import argparse\n\ndef main(argv=None):\n"
                 "    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])\n"
                 "    ap.add_argument('--epochs', type=int, default=10)\n    return ap.parse_args(argv)\n"),
        ("code", "args = main(['--epochs', '1'])  # 先跑一轮看看")))  # fmt: skip
    module = import_module("docstring_softmax", tmp_path / "softmax.ipynb", cpu_s=10, wall_s=20)
    assert module.args.epochs == 1


def _result(spec, cid: str, status: str, locations=()) -> CheckResult:
    check = next(c for c in spec.checks if c.id == cid)
    return CheckResult(id=cid, name=check.name, max_score=check.points, score=0.0, status=status,
                       visibility=check.visibility, locations=list(locations))  # fmt: skip


def test_a_wrong_value_points_at_the_cell_that_defines_the_function(course):
    """accuracy() returns a fraction: no exception, so no line of the student's to show; the failure points at
    the definition that is graded (the rewrite in cell 4, not the first try in cell 3), which the reports link."""
    spec = course.spec("softmax")
    first = "def accuracy(y_hat, y):\n    return (y_hat.argmax(1) == y).sum()\n"
    again = ("import torch\n\n\ndef accuracy(y_hat, y):\n    # 正确率\n"
             "    return float((y_hat.argmax(dim=1) == y).float().mean())\n")  # fmt: skip
    nb = module_source(nb_bytes(("markdown", "# softmax"), ("code", "import torch\n"), ("code", first),
                                ("code", again)), "softmax.ipynb")  # fmt: skip
    raised = Location(file="softmax.ipynb", line=2, cell=3, function="net")
    checks = [_result(spec, "accuracy_count", "failed"), _result(spec, "softmax_rows", "passed"),
              _result(spec, "net_output", "failed", [raised]),  # a traceback already says where
              _result(spec, "sgd_update", "failed")]  # sgd is not defined anywhere: nothing to point at
    accuracy, rows, net, sgd = point_at_definitions(spec, checks, {"softmax.py": nb.source}, {"softmax.py": nb})
    assert accuracy.locations == [Location(file="softmax.ipynb", line=4, cell=4, function="accuracy", defined=True)]
    assert rows.locations == [] and net.locations == [raised] and sgd.locations == []
    assert failures_by_cell([accuracy, net]) == {("softmax.ipynb", 4): ["accuracy_count"],
                                                 ("softmax.ipynb", 3): ["net_output"]}  # fmt: skip
    # A check that tests two functions points at both; in a .py file, by line.
    source = "def softmax(X):\n    return X\n\n\ndef cross_entropy(y_hat, y):\n    return -y_hat\n"
    (both,) = point_at_definitions(spec, [_result(spec, "gradient_finite_differences", "partial")],
                                   {"softmax.py": source})  # fmt: skip
    assert [(loc.file, loc.line, loc.function, loc.cell) for loc in both.pointers()] == [
        ("softmax.py", 1, "softmax", None), ("softmax.py", 5, "cross_entropy", None)]
    # Hostile text that does not parse points nowhere, and is no crash.
    (bad,) = point_at_definitions(spec, [_result(spec, "softmax_rows", "failed")], {"softmax.py": "(" * 10**6})
    assert bad.locations == []


def test_magics_are_read_where_a_logical_line_starts():
    """`%` opening a continued print's second line, or `!=` opening a condition's, is Python, as IPython reads it;
    a help query (`torch.norm?`) is commented out like a magic, not a syntax error that drops the cell."""
    nb = module_source(nb_bytes(("code", "%matplotlib inline\nimport torch\n\n\ndef show(i, loss):\n"
                                         "    print('batch %d, loss %.4f'\n          % (i, loss))  # 打印\n"
                                         "    return (i\n            != 0)\n\n\ntorch.norm?\n")),  # fmt: skip
                       "lenet.ipynb")
    assert nb.broken == [] and [(c, n, text) for c, n, text in nb.commented] == [
        (1, 1, "%matplotlib inline"), (1, 12, "torch.norm?")]
    space: dict = {}
    exec(compile(nb.source.replace("import torch\n", ""), "nb", "exec"), space)
    assert space["show"](3, 0.5) is True


def test_a_function_in_a_tagged_cell_is_named_where_its_check_fails(course):
    """evaluate_accuracy written in a copy of the training cell (Jupyter copies the tag): the check that lacks it
    says which cell sets it and that grading skips that cell."""
    from grader.grading import _from_skipped_code

    spec = course.spec("lenet")
    nb = module_source(nb_bytes(("code", "import torch\n"), ("code", "def evaluate_accuracy(net, x, y):\n"
                                                                     "    return 1.0\n", ["training"])), "lenet.ipynb")
    failed = _result(spec, "evaluate_accuracy", "failed").model_copy(update={
        "message": "raised AttributeError: module 'lenet' has no attribute 'evaluate_accuracy'"})
    (said,) = _from_skipped_code([failed], {"lenet.py": nb})
    assert said.message.endswith("(evaluate_accuracy: only cell 2, which grading skips, sets it; put it in a cell "
                                 "that grading runs)")  # fmt: skip
    assert _from_skipped_code([failed], {}) == [failed]
