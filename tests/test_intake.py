"""Intake: each declared file is found, sized and hashed, or gets a problem that says what to do."""

import hashlib
import os

import pytest

from grader.intake import DATA_MAX_KB, IntakeError, intake


def test_complete_submission(course, example):
    sub_dir = example("exp1", "solution")
    (sub_dir / "notes.txt").write_text("extra")
    sub = intake(course.spec("exp1"), sub_dir)
    rec = sub.record("model.pth")
    assert rec.present and rec.problem is None
    assert rec.sha256 == hashlib.sha256((sub_dir / "model.pth").read_bytes()).hexdigest()
    assert sub.ignored == ["notes.txt"]
    staged = sub.stage(sub_dir.parent / "staged")
    assert sorted(p.name for p in staged.iterdir()) == ["exp1.py", "model.pth"]


def test_missing_file_suggests_near_name(course, example):
    sub_dir = example("exp1", "solution")
    (sub_dir / "model.pth").rename(sub_dir / "modle.pth")  # a typo: only the student knows it is the same file
    rec = intake(course.spec("exp1"), sub_dir).record("model.pth")
    assert not rec.present
    assert rec.problem == "model.pth is missing from the submission; found 'modle.pth': rename it to 'model.pth'"
    (sub_dir / "modle.pth").rename(sub_dir / "final.pt")  # the only weights file, by a name of the student's own
    rec = intake(course.spec("exp1"), sub_dir).record("model.pth")
    assert rec.problem == "model.pth is missing from the submission; found 'final.pt': rename it to 'model.pth'"


@pytest.mark.parametrize("code, weights", [
    ("exp1 (1).py", "model.pt"),  # a second download; torch.save's other suffix
    ("exp1.py.txt", "model.pkl"),  # an editor that appended .txt; a pickle suffix
    ("exp1 - Copy.py", "model (2).pth"),
    ("exp1-1.py", "model-1.pth"),  # Canvas renames a re-uploaded file so
    ("Copy of exp1.py", "model的副本.pth"),  # Colab's "Save a copy in Drive"; a copy in a Chinese file manager
])  # fmt: skip
def test_names_a_download_or_a_habit_gave_the_files_are_graded_with_a_note(course, example, code, weights):
    sub_dir = example("exp1", "solution")
    (sub_dir / "exp1.py").rename(sub_dir / code)
    (sub_dir / "model.pth").rename(sub_dir / weights)
    sub = intake(course.spec("exp1"), sub_dir)
    for name, found in (("exp1.py", code), ("model.pth", weights)):
        rec = sub.record(name)
        assert rec.present and rec.problem is None and rec.found_as == found
        assert rec.note == f"found {name} as {found}: graded it; next time submit it as {name}"
    assert sorted(p.name for p in sub.stage(sub_dir.parent / "staged").iterdir()) == ["exp1.py", "model.pth"]


def test_oversize_empty_and_symlink(course, example):
    sub_dir = example("exp1", "solution")
    (sub_dir / "model.pth").write_bytes(b"\0" * (3 << 20))
    (sub_dir / "exp1.py").unlink()
    os.symlink("/etc/passwd", sub_dir / "exp1.py")
    sub = intake(course.spec("exp1"), sub_dir)
    assert sub.record("model.pth").problem == "model.pth is 3072 KiB, over the limit of 2048 KiB"
    assert "symbolic link" in sub.record("exp1.py").problem
    assert not sub.usable("exp1.py")
    (sub_dir / "model.pth").write_bytes(b"")
    assert intake(course.spec("exp1"), sub_dir).record("model.pth").problem == (
        "model.pth is empty (0 bytes): save it again and resubmit; an upload that failed leaves this")


def test_unreadable_submission(course, tmp_path):
    with pytest.raises(IntakeError, match="does not exist"):
        intake(course.spec("exp1"), tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(IntakeError, match="not a folder"):
        intake(course.spec("exp1"), tmp_path / "file")


def test_only_small_regular_files_the_code_names_are_staged_as_its_data(course, example, tmp_path):
    """Files named in a string literal of exp1.py or a helper, found in the student's folder, are staged; a link
    (to a file or through a folder), a FIFO, one too big, one outside the folder and one the code never names are
    not, and the judge never parses any of them."""
    sub_dir = example("exp1", "solution")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.json").write_text('{"token": 1}')
    code = (sub_dir / "exp1.py").read_text()
    names = ["config.json", "./conf/lr.yaml", "linked.json", "away/secret.json", "pipe.csv", "big.csv",
             "../elsewhere/secret.json", "not json {"]
    (sub_dir / "exp1.py").write_text(f"import utils\nFILES = {names!r}\n" + code)
    (sub_dir / "utils").mkdir()
    (sub_dir / "utils/__init__.py").write_text(  # named from the helper's own folder
        'import os\nD = os.path.join(os.path.dirname(__file__), "defaults.toml")\n')
    (sub_dir / "utils/defaults.toml").write_text("lr = 0.01\n")
    (sub_dir / "config.json").write_text("{not even json")  # data to the judge: never parsed
    (sub_dir / "conf").mkdir()
    (sub_dir / "conf/lr.yaml").write_text("lr: 0.01\n")
    (sub_dir / "notes.txt").write_text("never named by the code")
    os.symlink(outside / "secret.json", sub_dir / "linked.json")
    os.symlink(outside, sub_dir / "away")
    os.mkfifo(sub_dir / "pipe.csv")
    (sub_dir / "big.csv").write_bytes(b"1," * (DATA_MAX_KB * 1024))
    sub = intake(course.spec("exp1"), sub_dir)
    assert [d.name for d in sub.data] == ["config.json", "conf/lr.yaml", "utils/defaults.toml"]
    assert "notes.txt" in sub.ignored and "conf" not in sub.ignored
    staged = sub.stage(tmp_path / "staged")
    assert (staged / "conf/lr.yaml").read_text() == "lr: 0.01\n" and not (staged / "notes.txt").exists()
    assert sub.record("exp1.py").note.endswith(
        "Gave exp1.py config.json, conf/lr.yaml and utils/defaults.toml from your folder, which your code reads")


def test_of_two_versions_the_finished_one_is_graded(course, example, tmp_path):
    """v1/ holds the handout's stub, v2/ the finished work: v1 sorts first, but v2 is graded, and the note says why."""
    solution = example("exp1", "solution")
    sub_dir = tmp_path / "upload"
    for version in ("v1", "v2"):
        (sub_dir / version).mkdir(parents=True)
        (sub_dir / version / "model.pth").write_bytes((solution / "model.pth").read_bytes())
    (sub_dir / "v1/exp1.py").write_text((course.assignment_dir("exp1") / "exp1.py").read_text())
    (sub_dir / "v2/exp1.py").write_text((solution / "exp1.py").read_text())
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as == "v2/exp1.py"
    assert rec.note.endswith("(also found: v1/exp1.py; graded the copy with the fewest unfinished TODOs, so submit "
                             "only the one you mean)")  # fmt: skip


def test_the_handouts_stub_at_the_top_does_not_hide_the_work_in_a_folder(course, example, tmp_path):
    """exp1.py at the top is the handout's stub; the finished exp1.py and model.pth are in work/: both are graded
    from work/, the note names the stub. A finished copy at the top is graded, and the older one below ignored."""
    solution = example("exp1", "solution")
    sub_dir = tmp_path / "upload"
    (sub_dir / "work").mkdir(parents=True)
    (sub_dir / "exp1.py").write_text((course.assignment_dir("exp1") / "exp1.py").read_text())
    for name in ("exp1.py", "model.pth"):
        (sub_dir / "work" / name).write_bytes((solution / name).read_bytes())
    sub = intake(course.spec("exp1"), sub_dir)
    assert sub.record("exp1.py").found_as == "work/exp1.py" and sub.record("model.pth").found_as == "work/model.pth"
    assert sub.record("exp1.py").note == (
        "found exp1.py as work/exp1.py: graded it; next time submit it as exp1.py at the top of your folder (also "
        "found: exp1.py; graded the copy with the fewest unfinished TODOs, so submit only the one you mean)")
    (sub_dir / "exp1.py").write_text((solution / "exp1.py").read_text() + "# 最终版\n")
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as is None and rec.note is None


def test_a_traceback_saved_in_a_finished_notebook_does_not_make_it_the_stub(course, example):
    """The finished exp1.ipynb keeps an old error output (a NotImplementedError traceback names it four times, as
    often as the stub's TODOs) and the handout's exp1.py is beside it: the notebook is graded, not the stub."""
    import json

    sub_dir = example("exp1", "solution")
    (sub_dir / "exp1.py").write_text((course.assignment_dir("exp1") / "exp1.py").read_text())
    nb = json.loads((course.root / "solutions/exp1/exp1.ipynb").read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "error", "ename": "NotImplementedError", "evalue": "",
                        "traceback": ["NotImplementedError  Traceback", "raise NotImplementedError",
                                      "NotImplementedError: ", "NotImplementedError"]}]  # fmt: skip
    (sub_dir / "exp1.ipynb").write_text(json.dumps(nb))
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as == "exp1.ipynb" and rec.note.endswith(
        "Also found exp1.py, with more unfinished TODOs: submit only one of them")


def test_a_finished_copy_beats_the_stub_under_the_declared_name(course, example):
    """The handout's exp1.py left in the folder, the work in `exp1 (1).py` (a second download) or in exp1.ipynb:
    the finished one is graded, and the note names the stub. Two finished copies: the declared name wins."""
    sub_dir = example("exp1", "solution")
    stub = (course.assignment_dir("exp1") / "exp1.py").read_text()
    (sub_dir / "exp1.py").rename(sub_dir / "exp1 (1).py")
    (sub_dir / "exp1.py").write_text(stub)
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as == "exp1 (1).py" and rec.note == (
        "found exp1.py as exp1 (1).py: graded it; next time submit it as exp1.py (also found: exp1.py; graded the "
        "copy with the fewest unfinished TODOs, so submit only the one you mean)")
    (sub_dir / "exp1.ipynb").write_bytes((course.assignment_dir("exp1") / "exp1.ipynb").read_bytes())  # the stub
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as == "exp1 (1).py" and rec.note == (
        "found exp1.py as exp1 (1).py: graded it; next time submit it as exp1.py (also found: exp1.py; graded the "
        "copy with the fewest unfinished TODOs, so submit only the one you mean). also found exp1.ipynb; graded "
        "exp1 (1).py, not the notebook")
    (sub_dir / "exp1.ipynb").unlink()
    (sub_dir / "exp1.py").write_text((sub_dir / "exp1 (1).py").read_text())
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as is None and rec.note is None
    (sub_dir / "exp1 (1).py").unlink()
    (sub_dir / "exp1.py").write_text(stub)
    (sub_dir / "exp1.ipynb").write_bytes((course.root / "solutions/exp1/exp1.ipynb").read_bytes())
    rec = intake(course.spec("exp1"), sub_dir).record("exp1.py")
    assert rec.found_as == "exp1.ipynb" and rec.note.startswith("graded the notebook exp1.ipynb in place of exp1.py")
    assert rec.note.endswith("Also found exp1.py, with more unfinished TODOs: submit only one of them")


def test_the_students_own_modules_are_staged_with_the_declared_ones_as_data(course, example):
    """A models/ package and a utils.py that exp2-style code imports, in a nested folder: staged where the
    declared module imports them; links, FIFOs, packages grading provides and the stdlib's names are not."""
    sub_dir = example("exp1", "solution")
    nested = sub_dir / "hw1"
    nested.mkdir()
    (sub_dir / "exp1.py").rename(nested / "exp1.py")
    code = (nested / "exp1.py").read_text()
    (nested / "exp1.py").write_text("import numpy as np\nimport random\nfrom models import MLP2\nimport utils, secret, "
                                    "fifo\nfrom lib.plots import show\n" + code)  # fmt: skip
    (nested / "lib").mkdir()  # no __init__.py: a namespace package
    (nested / "lib/plots.py").write_text("def show(*a):\n    pass\n")
    (nested / "models").mkdir()
    (nested / "models/__init__.py").write_text("from .mlp import MLP2\n")
    (nested / "models/mlp.py").write_text("from utils import act\nclass MLP2: pass\n")
    (nested / "models/README.md").write_text("not code")
    (nested / "models/blocks").mkdir()  # a subpackage, as in pytorch-cifar style repositories
    (nested / "models/blocks/basic.py").write_text("class Basic: pass\n")
    (nested / "utils.py").write_text("def act(x):\n    return x\n")
    (nested / "random.py").write_text("# shadows the stdlib: not staged\n")
    (nested / "numpy.py").write_text("# a package grading provides: not staged\n")
    os.symlink("/etc/passwd", nested / "secret.py")
    os.mkfifo(nested / "fifo.py")
    sub = intake(course.spec("exp1"), sub_dir)
    assert [(h.name, h.found_as) for h in sub.helpers] == [
        ("models/__init__.py", "hw1/models/__init__.py"), ("models/mlp.py", "hw1/models/mlp.py"),
        ("models/blocks/basic.py", "hw1/models/blocks/basic.py"), ("utils.py", "hw1/utils.py"),
        ("lib/plots.py", "hw1/lib/plots.py")]  # fmt: skip
    assert sub.helper_modules == ["models", "utils", "lib"]
    assert sub.record("exp1.py").note == (
        "found exp1.py as hw1/exp1.py: graded it; next time submit it as exp1.py at the top of your folder. Graded "
        "with hw1/lib/, hw1/models/ and hw1/utils.py from your folder, which exp1.py imports; the assignment asks "
        "for exp1.py itself, so next time copy what you use from them into exp1.py")
    staged = sub.stage(sub_dir.parent / "staged")
    assert sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()) == [
        "exp1.py", "lib/plots.py", "model.pth", "models/__init__.py", "models/blocks/basic.py", "models/mlp.py",
        "utils.py"]
    assert (staged / "utils.py").read_text() == "def act(x):\n    return x\n"
