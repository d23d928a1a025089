"""Fair grades for what real students hand in (the fair-grades issue): code that runs on import, packaging
near-misses, the handout's rules, packages grading lacks, and the course's own mistakes, each said once.

The submissions are the bundled exp1 and softmax work with the slips students make, written as they write them
(comments, prints, plots, their own helpers); each asserts the exact score and the message, through `grade`,
and through the `check` and `batch` commands where those differ.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grader.grading import grade, import_problems
from grader.judge.client import ModuleImport
from grader.sandbox.local import LocalSandbox
from tests.test_exp1_e2e import EXPECTED, by_id

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "examples/exp1/solution"
FULL = sum(EXPECTED["solution"].values())


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/bin:/bin", "COLUMNS": "250", "GRADER_SANDBOX": "local",
                                                "HOME": str(ROOT)})  # fmt: skip


@pytest.fixture
def quick_course(course_copy):
    """exp1 with a 3-second import budget, so code that trains at import is stopped quickly."""
    course = course_copy("exp1")
    toml = course.assignment_dir("exp1") / "assignment.toml"
    toml.write_text(toml.read_text() + "\n[imports]\ncpu_seconds = 3\nwall_seconds = 10\n")
    return course


def student_exp1(tmp_path: Path, edit, name: str = "exp1.py") -> Path:
    """The solution's files with `edit(source) -> source` applied to exp1.py."""
    folder = tmp_path / "student"
    shutil.copytree(SOLUTION, folder)
    src = edit((folder / "exp1.py").read_text())
    (folder / "exp1.py").unlink()
    (folder / name).write_text(src)
    return folder


def at_bottom(code: str):
    return lambda src: src.replace('if __name__ == "__main__":\n    main()\n', code)


def scores(result) -> dict[str, float]:
    return {c.id: c.score for c in result.checks}


# ---- 1. code that runs when the module is imported ---------------------------------------------------------


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
def test_training_at_import_is_stopped_once_and_the_definitions_are_graded(quick_course, sandbox_name):
    if sandbox_name == "docker":
        from tests.test_hostile import _docker_sandbox

        sandbox = _docker_sandbox()
    else:
        sandbox = LocalSandbox()
    result = grade(quick_course, "exp1", ROOT / "examples/exp1/trains-at-import", sandbox=sandbox)
    assert scores(result) == EXPECTED["solution"]  # every check graded on the definitions
    assert result.score == FULL - 5 and result.deducted == 5  # the fallback's 5% penalty, once
    (problem,) = result.problems
    assert re.fullmatch(
        r"exp1\.py runs code when imported \(still running at line \d+, in \w+\(\), called at line 97 after 3 s "
        r'of CPU time\): put the code that should only run when you start exp1\.py yourself under `if __name__ == '
        r'"__main__":`\. The grader then imported only its definitions \(imports, functions, classes and '
        r"assignments\) and graded those; this costs 5% of the points", problem.message), problem.message
    assert problem.details == [
        "left out: line 96 `print(\"training the default and custom models...\")` (a call)",
        "left out: line 97 `main()` (a call)",
        "left out: line 100 `for lr in [1, 0.1, 0.01, 0.001]:` (a loop)",
        "left out: line 107 `plt.yscale(\"log\")` (a call)",
        "left out: line 108 `plt.legend()` (a call)",
        "left out: line 109 `plt.savefig(\"lr_curves.png\")` (a call)",
        "left out: line 110 `plt.show()` (a call)",
    ]
    # What it printed before it was stopped reaches the report (unbuffered output).
    assert "training the default and custom models..." in result.contestant_output
    assert result.timings["contestant_starts"] == 2  # the stopped import, then one process for every check


def test_training_at_import_through_check_and_batch(quick_course, tmp_path):
    folder = ROOT / "examples/exp1/trains-at-import"
    r = cli("check", "exp1", str(folder), "--course", str(quick_course.root))
    assert r.returncode == 1, r.stdout + r.stderr  # every public check passes, but points will be lost
    assert "problem (−3.25 points): exp1.py runs code when imported (still running at line" in r.stdout
    assert "left out: line 97 `main()` (a call)" in r.stdout
    subs = tmp_path / "class"
    shutil.copytree(folder, subs / "ana")
    shutil.copytree(SOLUTION, subs / "ben")
    r = cli("batch", "exp1", str(subs), "--out", str(tmp_path / "out"), "--course", str(quick_course.root))
    assert r.returncode == 0, r.stderr
    ana = json.loads((tmp_path / "out/students/ana/results.json").read_text())
    assert ana["score"] == FULL - 5 and ana["problems"][0]["id"] == "import:exp1"
    assert json.loads((tmp_path / "out/students/ben/results.json").read_text())["score"] == FULL
    assert "−5 points" in (tmp_path / "out/students/ana/report.html").read_text()


@pytest.mark.parametrize(
    "code, pattern",
    [
        # argparse with a required option: parse_args() exits, as it would when run without options
        ("import argparse\nparser = argparse.ArgumentParser()\nparser.add_argument('--epochs', type=int, "
         "required=True)\nargs = parser.parse_args()\nprint('epochs:', args.epochs)\n",
         r"^exp1\.py exits when imported \(argparse's parse_args\(\) exits when the grader's command line lacks your "
         r"options at line \d+\)"),
        # a dataset downloaded at import: grading has no network
        ("import torchvision\n# MNIST for my extra experiment\ntrainset = torchvision.datasets.MNIST('./data', "
         "train=True, download=True)\nprint(len(trainset))\n",
         r"^exp1\.py uses the network when imported \(.*; a download=True\?\): grading has no network"),
        # a data file of the student's own machine
        ("import numpy as np\n# my measurements from the lab\nmeasured = np.load('/home/me/exp1/measured.npy')\n",
         r"^exp1\.py reads files that grading does not have when imported \(FileNotFoundError"),
        # a question to the person running it
        ("answer = input('继续训练吗? (y/n) ')\n",
         r"^exp1\.py waits for keyboard input when imported \(input\(\) at line \d+\): grading has no keyboard"),
    ],
    ids=["argparse", "download", "missing-data", "input"],
)
def test_other_code_at_import(quick_course, tmp_path, code, pattern):
    folder = student_exp1(tmp_path, at_bottom(code + '\nif __name__ == "__main__":\n    main()\n'))
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"]
    (problem,) = result.problems
    assert re.search(pattern, problem.message), problem.message
    assert problem.points == 5 and "only its definitions" in problem.message


def test_a_slow_import_that_trains_is_noted_at_no_cost(course):
    """Training at import that finishes within the budget is graded as it is; a note (0 points) says it ran at
    import and what a slower machine would do. A slow import with nothing of its own at top level says nothing."""
    spec = course.spec("exp1")
    solution = (SOLUTION / "exp1.py").read_text()
    trains = at_bottom("print('training...')\nmodel = build_model()  # 先训练\nlosses = train(model, *make_data(f), "
                       "3000, 0.01)\n")(solution)  # fmt: skip
    line = trains.splitlines().index("model = build_model()  # 先训练") + 1
    slow, fast = ModuleImport(module="exp1", seconds=7.5), ModuleImport(module="exp1", seconds=0.4)
    [note] = import_problems(spec, {"exp1": slow}, FULL, set(), {"exp1.py": trains})
    assert note.points == 0 and note.message.startswith(
        f"exp1.py took 7.5 s to import: it runs code at import (line {line} `model = build_model()`, among "
        "others). It was graded as it is and this costs nothing, but an import that runs past 20 s of CPU time is "
        "graded from its definitions only, for 5% of the points"), note.message  # fmt: skip
    assert import_problems(spec, {"exp1": fast}, FULL, set(), {"exp1.py": trains}) == []
    assert import_problems(spec, {"exp1": slow}, FULL, set(), {"exp1.py": solution}) == []  # guarded: nothing


def test_its_own_files_are_where_the_student_runs_it(quick_course, tmp_path):
    """torch.load('model.pth') at import, relative to the folder the student runs exp1.py in, and a save over it:
    the contestant's working folder holds a writable copy of each submitted file, as the student's folder does."""
    code = ("saved = torch.load('model.pth')  # 检查一下保存的模型\nprint(saved.keys())\n"
            "torch.save(saved, 'model.pth')\n")  # fmt: skip
    folder = student_exp1(tmp_path, at_bottom(code + '\nif __name__ == "__main__":\n    main()\n'))
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert "dict_keys(['default', 'custom'])" in result.contestant_output


def test_losses_kept_as_tensors_are_read_without_a_warning(quick_course, tmp_path):
    """train() that appends each loss tensor itself (its graph still attached), as students often do: graded as
    the solution, and the student's output holds no autograd warning raised by grader code reading them."""
    folder = student_exp1(tmp_path, lambda src: src.replace("losses.append(loss.item())", "losses.append(loss)"))
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert "Warning" not in result.contestant_output, result.contestant_output


def test_number_reads_what_student_code_returns_or_none():
    from grader.contestant import number

    w = torch.ones(2, requires_grad=True)
    assert number((w * 3).sum()) == 6.0 and number(torch.tensor([2.5])) == 2.5 and number(7) == 7.0
    assert [number(v) for v in (None, "0.1", torch.ones(2), [1.0, 2.0])] == [None, 0.1, None, None]


def test_a_successful_exit_as_the_last_statement_costs_nothing(quick_course, tmp_path):
    """`sys.exit(0)` after the main guard: everything the module defines has run when it exits, as when the student
    runs it. A failing exit, or one before the end, is still the import problem it was."""
    for tail, charged in (("sys.exit(0)  # 正常退出\n", False), ("sys.exit(1)\n", True),
                          ("sys.exit()\nprint('never')\n", True)):  # fmt: skip
        folder = student_exp1(tmp_path / str(charged) / str(len(tail)), lambda src, tail=tail: src.replace(
            "import torch\n", "import sys\n\nimport torch\n", 1) + "\n" + tail)  # fmt: skip
        result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
        assert scores(result) == EXPECTED["solution"], tail
        assert [p.id for p in result.problems] == (["import:exp1"] if charged else []), tail


def test_a_custom_model_saved_in_its_own_file_is_graded_with_a_note(quick_course, tmp_path):
    """torch.save(model.state_dict(), 'model.pth') and torch.save(custom.state_dict(), 'custom_model.pth'): both
    models are there, one file apart from the handout's. A link by that name is never read."""
    folder = student_exp1(tmp_path, lambda src: src)
    both = torch.load(folder / "model.pth", weights_only=True)
    torch.save(both["default"], folder / "model.pth")
    torch.save(both["custom"], folder / "custom_model.pth")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert by_id(result)["custom_function_fits"].notes[0] == (
        "model.pth holds a single state_dict, and custom_model.pth another: graded custom_model.pth as the custom "
        'model (the handout saves both in model.pth: torch.save({"default": ..., "custom": ...}, "model.pth"))')
    (folder / "custom_model.pth").unlink()
    (folder / "custom_model.pth").symlink_to(tmp_path / "elsewhere.pth")
    torch.save(both["custom"], tmp_path / "elsewhere.pth")
    custom = by_id(grade(quick_course, "exp1", folder, sandbox=LocalSandbox()))["custom_function_fits"]
    assert custom.score == 0 and "save {\"default\": ..., \"custom\": ...}" in custom.message


def test_a_package_grading_lacks_is_said_once_before_the_checks(quick_course, tmp_path):
    """`from d2l import torch as d2l` at the top, used only in the student's own plotting helper."""
    folder = student_exp1(tmp_path, lambda src: src.replace("import torch\n", (
        "import torch\nfrom d2l import torch as d2l  # for plotting, as in the book\n"), 1).replace(
        "def main() -> None:", "def plot(losses):\n    d2l.plot(list(range(len(losses))), [losses])\n\n\n"
        "def main() -> None:"))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.score == FULL  # costs nothing it does not break
    (problem,) = result.problems
    assert problem.message == (
        "exp1.py imports d2l (line 12), which grading does not provide (allowed besides Python's standard library: "
        "PIL, matplotlib, numpy, torch, torchvision, tqdm): copy what you need from d2l into your file, or remove "
        "the import")
    r = cli("check", "exp1", str(folder), "--course", str(quick_course.root))
    assert "problem: exp1.py imports d2l (line 12)" in r.stdout


def logs_its_training(src: str) -> str:
    """TensorBoard opened at import and W&B holding the settings, as students copy them from a tutorial."""
    return src.replace("import torch\n", (
        "import torch\nimport wandb\nfrom torch.utils.tensorboard import SummaryWriter\n\n"
        "writer = SummaryWriter(\"runs/exp1\")  # tensorboard --logdir runs\n"
        "run = wandb.init(project=\"dl-exp1\", config={\"lr\": 0.01, \"epochs\": 5000})\n"), 1).replace(
        "LEARNING_RATE = 0.01", "LEARNING_RATE = wandb.config.lr").replace(
        "        losses.append(loss.item())\n", "        losses.append(loss.item())\n"
        "        writer.add_scalar(\"train/loss\", loss.item(), len(losses))\n"
        "        wandb.log({\"loss\": loss.item()})\n")  # fmt: skip


@pytest.mark.parametrize("sandbox_name", ["local", "docker"])
def test_experiment_loggers_are_stood_in_for_and_cost_nothing(quick_course, tmp_path, sandbox_name):
    """Neither is installed in the sandbox, and W&B would wait on the network: both calls do nothing there,
    the settings W&B was given still reach the code, and one note says so."""
    from tests.test_hostile import _docker_sandbox

    folder = student_exp1(tmp_path, logs_its_training)
    sandbox = _docker_sandbox() if sandbox_name == "docker" else LocalSandbox()
    result = grade(quick_course, "exp1", folder, sandbox=sandbox)
    assert scores(result) == EXPECTED["solution"] and result.score == FULL and not result.problems
    assert by_id(result)["training_lowers_mse"].status == "passed"  # its loop logs each epoch
    assert result.files[0].note == (
        "exp1.py uses Weights & Biases (line 12) and TensorBoard (line 13): grading ran them as stand-ins that do "
        "nothing (what they show or log is not graded); this costs nothing")
    assert not (folder / "runs").exists() and not (folder / "wandb").exists()


def test_a_package_grading_lacks_does_not_hide_other_code_at_import(quick_course, tmp_path):
    """The import of d2l stops the full import first; a data file of the student's own machine, read at import
    after it, would have stopped it anyway: that costs the fallback's 5%, as it does without the d2l import."""
    folder = student_exp1(tmp_path, lambda src: src.replace("import torch\n", (
        "import torch\nfrom d2l import torch as d2l  # for plotting, as in the book\n"), 1).replace(
        'if __name__ == "__main__":', "import numpy as np\nmeasured = np.load('/home/me/exp1/measured.npy')  # 实测数据"
        '\n\nif __name__ == "__main__":'))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.score == FULL - 5
    packages, fallback = result.problems
    assert packages.id == "packages:exp1.py" and packages.points == 0
    assert fallback.points == 5 and re.fullmatch(
        r"exp1\.py also runs code when imported that fails by itself \(line \d+ `measured = np\.load\('/home/me/exp1/"
        r"measured\.npy'\)` \(raised FileNotFoundError\)\): put the code .*; this costs 5% of the points",
        fallback.message), fallback.message


def _train_moved_to(module: str):
    """exp1.py with train() cut out and imported from the student's own `module` instead, as students split it."""
    def edit(src: str) -> str:
        start, end = src.index("def train("), src.index("def main(")
        return src[:start].replace("import torch\n", f"import torch\nfrom {module} import train  # 自己的工具\n", 1) + \
            src[end:]

    return edit


MY_UTILS = """# my own helpers, shared with hw2
import torch
from torch import nn

print("loading my_utils")


def train(model, x, y, num_epochs, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(num_epochs):
        opt.zero_grad()
        loss = nn.MSELoss()(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
"""


def test_the_students_own_module_beside_exp1_is_graded_with_it_and_one_note(quick_course, tmp_path):
    """train() lives in the student's my_utils.py, handed in beside exp1.py: a TA would run it, so grading does."""
    folder = student_exp1(tmp_path, _train_moved_to("my_utils"))
    (folder / "my_utils.py").write_text(MY_UTILS)
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert [f.note for f in result.files if f.name == "exp1.py"] == [
        "graded with my_utils.py from your folder, which exp1.py imports; the assignment asks for exp1.py itself, "
        "so next time copy what you use from it into exp1.py"]


def reads_its_settings(tmp_path: Path) -> Path:
    """exp1 whose hyperparameters come from hparams/config.json, opened relative to the student's folder, and
    whose my_utils.py reads defaults.json beside itself through __file__: both read at import."""
    folder = student_exp1(tmp_path, lambda src: _train_moved_to("my_utils")(src).replace(
        "NUM_TRAIN_EPOCHS = 5000", 'import json\n\n# 超参数写在 json 里\nwith open("hparams/config.json") as f:\n'
        '    cfg = json.load(f)\nprint("config:", cfg)\nNUM_TRAIN_EPOCHS = cfg["epochs"]'))  # fmt: skip
    (folder / "hparams").mkdir()
    (folder / "hparams/config.json").write_text('{"epochs": 5000}\n')
    (folder / "my_utils.py").write_text(
        "import json\nimport os\n\nHERE = os.path.dirname(os.path.abspath(__file__))\n"
        'DEFAULTS = json.load(open(os.path.join(HERE, "defaults.json")))\n'
        + MY_UTILS.replace("lr=lr", 'lr=lr * DEFAULTS["lr_scale"]'))
    (folder / "defaults.json").write_text('{"lr_scale": 1.0}')
    return folder


def test_files_the_code_reads_are_staged_with_it(quick_course, tmp_path):
    """A TA running the code would have the student's config files: grading does too, relative to the student's
    folder or to the module's own file, and says so once at no cost."""
    folder = reads_its_settings(tmp_path)
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert [f.note for f in result.files if f.name == "exp1.py"] == [
        "graded with my_utils.py from your folder, which exp1.py imports; the assignment asks for exp1.py itself, "
        "so next time copy what you use from it into exp1.py. Gave exp1.py hparams/config.json and defaults.json "
        "from your folder, which your code reads"]


def test_a_declared_source_encoding_is_honoured(quick_course, tmp_path):
    """exp1.py saved in Big5 on a Traditional-Chinese Windows, with the coding line Python needs: 功's second byte
    is a backslash, so read as UTF-8 the print's string would never close (a syntax error Python never sees)."""
    folder = student_exp1(tmp_path, lambda src: src.replace("        loss.backward()\n", "        loss.backward()\n"
                                                            '        print("訓練成功")  # 反向傳播\n', 1))  # fmt: skip
    code = (folder / "exp1.py").read_text()
    (folder / "exp1.py").write_bytes(("# -*- coding: big5 -*-\n" + code).encode("big5"))
    assert "功\")".encode("big5") in (folder / "exp1.py").read_bytes() and b"\\\")" in (folder / "exp1.py").read_bytes()
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert "訓練成功" in result.contestant_output


def test_a_gbk_file_without_its_coding_line_is_read_as_gbk_with_a_note(quick_course, tmp_path):
    """Saved as GBK by a Chinese Windows editor, no coding line: Python would refuse it, a TA would read it."""
    folder = student_exp1(tmp_path, lambda src: src.replace("        loss.backward()\n", "        loss.backward()\n"
                                                            '        print("训练中")  # 反向传播\n', 1))  # fmt: skip
    (folder / "exp1.py").write_bytes((folder / "exp1.py").read_text().encode("gbk"))
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []
    assert "训练中" in result.contestant_output
    assert result.files[0].note == (
        "exp1.py is saved as GBK, not UTF-8, and does not say so: Python refuses to run such a file (SyntaxError: "
        "Non-UTF-8 code). The grader read it as GBK; save it as UTF-8, or make `# -*- coding: gbk -*-` its first line")


def test_a_syntax_error_in_the_students_own_module_is_charged_once(quick_course, tmp_path):
    """A full-width parenthesis in my_utils.py's plotting helper: stepped past as in exp1.py itself, and the
    import of that helper by exp1.py is not charged a second time."""
    folder = student_exp1(tmp_path, lambda src: _train_moved_to("my_utils")(src).replace(
        "from my_utils import train", "from my_utils import train, plot_losses"))
    (folder / "my_utils.py").write_text(MY_UTILS + "\n\ndef plot_losses(losses):\n    import matplotlib.pyplot as "
                                        "plt\n    plt.plot(losses）\n")  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"]
    (problem,) = result.problems
    assert problem.id == "import:my_utils" and problem.points == 5
    assert problem.message.startswith("my_utils.py line 22: invalid character '）' (U+FF09)")


def test_a_module_the_student_did_not_hand_in_says_where_it_was_to_come_from(quick_course, tmp_path):
    """my_utils.py stayed on the student's laptop: the check that calls train() says where it was to come from."""
    folder = student_exp1(tmp_path, _train_moved_to("my_utils"))
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox(), only=["training_lowers_mse"])
    assert re.fullmatch(r"train is not there: exp1\.py line \d+ imports it from my_utils, which grading does not "
                        r"provide: put it in exp1\.py", by_id(result)["training_lowers_mse"].message)


def test_the_handouts_rules_and_packages_apply_to_the_students_own_modules(quick_course, tmp_path):
    """A helper is the student's code like exp1.py: a package grading lacks is named in it, once, and costs
    nothing by itself (the helper's definitions are imported without it)."""
    folder = student_exp1(tmp_path, _train_moved_to("helpers"))
    (folder / "helpers.py").write_text(MY_UTILS.replace("from torch import nn\n", "from torch import nn\nimport "
                                                        "sklearn  # not used any more\n"))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox(), only=["training_lowers_mse"])
    (problem,) = result.problems
    assert problem.id == "packages:helpers.py" and problem.message.startswith(
        "helpers.py imports sklearn (line 4), which grading does not provide")
    assert result.score == result.max_score


def test_torch_compile_grades_as_the_same_code_run_eagerly(quick_course, tmp_path):
    """build_model() returns torch.compile(MLP()) and train() compiles a step: grading runs them eagerly (the
    sandbox's compiler cannot build inductor's header, and compiling changes no result), and the judge's
    weights load into the module the compiled wrapper holds."""
    def edit(src: str) -> str:
        src = src.replace("def build_model() -> nn.Module:\n", "def build_model() -> nn.Module:\n    # PyTorch 2.x: "
                          "compiled, trains faster\n    return torch.compile(_build())\n\n\ndef _build():\n", 1)
        return src.replace("        loss.backward()\n", "        loss.backward()  # 反向传播\n", 1).replace(
            "    for _ in range(num_epochs):", "    model = torch.compile(model)\n    for _ in range(num_epochs):", 1)

    folder = student_exp1(tmp_path, edit)
    assert "torch.compile(_build())" in (folder / "exp1.py").read_text()
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []


def test_float64_as_torchs_default_grades_as_float32_would(quick_course, tmp_path):
    """torch.set_default_dtype(torch.float64) at import: the student's models, and the probes' own, are built in
    float64; the judge's tensors are handed over in it and the answers come back as float32."""
    folder = student_exp1(tmp_path, lambda src: src.replace(
        "import torch\n", "import torch\n\ntorch.set_default_dtype(torch.float64)  # 精度更高\n", 1))
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []


# ---- 2. packaging near-misses ---------------------------------------------------------------------------


def test_a_nested_folder_and_a_capitalized_name_grade_the_same_everywhere(quick_course, tmp_path):
    folder = tmp_path / "upload"
    shutil.copytree(SOLUTION, folder / "exp1_submission")
    (folder / "exp1_submission/exp1.py").rename(folder / "exp1_submission/Exp1.py")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert result.score == FULL
    notes = {f.name: f.note for f in result.files}
    assert notes["exp1.py"] == ("found exp1.py as exp1_submission/Exp1.py: graded it; next time submit it as "
                                "exp1.py at the top of your folder")  # fmt: skip
    r = cli("check", "exp1", str(folder), "--course", str(quick_course.root))
    assert r.returncode == 0 and "found exp1.py as exp1_submission/Exp1.py" in r.stdout, r.stdout
    subs = tmp_path / "class"
    shutil.copytree(folder, subs / "cai")
    r = cli("batch", "exp1", str(subs), "--out", str(tmp_path / "out"), "--course", str(quick_course.root))
    assert json.loads((tmp_path / "out/students/cai/results.json").read_text())["score"] == FULL


def test_a_whole_submission_in_one_nested_folder_is_one_slip_with_one_message(quick_course, tmp_path):
    """The student zipped their `hw/` folder: both files sit inside it, under their own names."""
    folder = tmp_path / "upload"
    shutil.copytree(SOLUTION, folder / "hw")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert result.score == FULL
    assert [f.found_as for f in result.files] == ["hw/exp1.py", "hw/model.pth"]
    assert [n.text for n in result.notices()] == [
        "found exp1.py and model.pth in hw/: graded them; next time submit them at the top of your folder, not "
        "inside hw/"]  # fmt: skip


def test_weights_with_snapshots_are_read_with_a_note_up_to_a_cap(quick_course, tmp_path):
    saved = torch.load(SOLUTION / "model.pth", weights_only=True)
    folder = tmp_path / "student"
    shutil.copytree(SOLUTION, folder)
    # "I kept a snapshot every 100 epochs so I could plot the fit over time"
    saved["snapshots"] = [{k: v + 0.001 * i for k, v in saved["default"].items()} for i in range(120)]
    torch.save(saved, folder / "model.pth")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert result.score == FULL
    note = next(f.note for f in result.files if f.name == "model.pth")
    assert re.fullmatch(r"model\.pth is 2\.\d MiB, over its 2048 KiB limit: it holds 'snapshots' \(2\.\d MiB\), "
                        r"'default' \(0\.0 MiB\), 'custom' \(0\.0 MiB\), more than the weights the checks read\. The "
                        r"grader read it anyway and used only what the checks need; next time save only the "
                        r"weights, .*", note), note  # fmt: skip
    # every 10 epochs instead: about 20 MiB, past what the grader reads
    saved["snapshots"] = [{k: v + 0.001 * i for k, v in saved["default"].items()} for i in range(1200)]
    torch.save(saved, folder / "model.pth")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result)["model_fits_target"] == 0 and scores(result)["custom_function_fits"] == 0
    problem = next(f.problem for f in result.files if f.name == "model.pth")
    assert "(and over 16384 KiB, the most the grader reads): it likely holds more than the weights" in problem
    r = cli("check", "exp1", str(folder), "--course", str(quick_course.root))
    assert r.returncode == 1 and "not ready to submit: model.pth will cost points when graded" in r.stderr


def test_a_byte_order_mark_and_crlf_change_nothing(quick_course, tmp_path):
    folder = student_exp1(tmp_path, lambda src: src)
    raw = (folder / "exp1.py").read_text()
    (folder / "exp1.py").write_bytes(b"\xef\xbb\xbf" + raw.replace("\n", "\r\n").encode())
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and result.problems == []


# ---- 3. rules the handout states -------------------------------------------------------------------------


def test_library_shortcuts_break_the_from_scratch_rule(course, data_root):
    folder = ROOT / "examples/softmax/library-shortcuts"
    result = grade(course, "softmax", folder, data_root=data_root, sandbox=LocalSandbox())
    assert result.score == 90 and all(c.status == "passed" for c in result.checks)
    (problem,) = result.problems
    assert problem.id == "rule:from_scratch" and problem.points == 10
    assert problem.message.startswith(
        "softmax.py uses F.softmax (line 64, in softmax), F.nll_loss (line 75, in cross_entropy), torch.optim.SGD "
        "(line 88, in sgd), which the handout does not allow: the assignment is softmax regression from scratch")
    r = cli("check", "softmax", str(folder), "--data-root", str(data_root))
    assert r.returncode == 1 and "problem (−10 points): softmax.py uses F.softmax (line 64" in r.stdout


def test_the_from_scratch_rule_follows_softmax_into_the_students_own_module(course):
    """softmax() moved to the student's ops.py still may not call F.softmax: one problem, naming ops.py's line."""
    from grader.judge.source_rules import rule_problems

    main = "import torch\nfrom ops import softmax  # my helpers\n\ndef net(X):\n    return softmax(X @ W + b)\n"
    ops = "import torch.nn.functional as F\n\n\ndef softmax(X):\n    return F.softmax(X, dim=1)  # TODO: by hand\n"
    (problem,) = rule_problems(course.spec("softmax"), {"softmax.py": main, "ops.py": ops}, None, ["ops.py"])
    assert problem.id == "rule:from_scratch" and problem.points == 10
    assert problem.message.startswith("softmax.py uses F.softmax (ops.py line 5, in softmax), which the handout "
                                      "does not allow")  # fmt: skip
    assert [(loc.file, loc.line) for loc in problem.locations] == [("ops.py", 5)]


def test_the_from_scratch_rule_reads_the_helpers_a_function_calls_but_not_its_annotations(course):
    """softmax() handing its work to a helper of the student's that calls F.softmax is a use (in the helper);
    `params: list[torch.nn.Parameter]` in sgd's signature names a type and uses nothing; a helper no covered
    function calls (a plot) is not read."""
    from grader.judge.source_rules import rule_problems

    src = ("import torch\nimport torch.nn.functional as F\n\n\ndef _row_softmax(row):\n"
           "    return F.softmax(row, dim=0)  # 先这样\n\n\ndef softmax(X):\n"
           "    return torch.stack([_row_softmax(r) for r in X])\n\n\n"
           "def sgd(params: list[torch.nn.Parameter], lr: float, batch_size: int) -> None:\n"
           "    step: torch.nn.Parameter\n    with torch.no_grad():\n        for p in params:\n"
           "            p -= lr * p.grad / batch_size\n            p.grad.zero_()\n\n\n"
           "def show(x):\n    return F.relu(x)  # 只用来画图\n")  # fmt: skip
    (problem,) = rule_problems(course.spec("softmax"), {"softmax.py": src})
    assert problem.message.startswith("softmax.py uses F.softmax (line 6, in _row_softmax), which the handout "
                                      "does not allow")  # fmt: skip
    assert [loc.line for loc in problem.locations] == [6]


def test_a_one_hot_from_torch_nn_is_no_shortcut(course):
    """F.one_hot in a hand-written cross-entropy: allowed by the rule (`allow`), while F.nll_loss next to it, through
    the same alias, is still a use."""
    from grader.judge.source_rules import rule_problems

    src = ("import torch\nimport torch.nn.functional as F\n\n\ndef cross_entropy(y_hat, y):\n"
           "    # 交叉熵: 用 one-hot 取出正确类别的概率\n"
           "    return -(F.one_hot(y, y_hat.shape[1]) * torch.log(y_hat)).sum(dim=1)\n\n\n"
           "def accuracy(y_hat, y):\n    return float((y_hat.argmax(dim=1) == y).sum())\n")  # fmt: skip
    assert rule_problems(course.spec("softmax"), {"softmax.py": src}) == []
    (problem,) = rule_problems(course.spec("softmax"), {"softmax.py": src.replace(
        "    return -(F.one_hot", "    F.nll_loss(torch.log(y_hat), y)\n    return -(F.one_hot")})  # fmt: skip
    assert problem.message.startswith("softmax.py uses F.nll_loss (line 7, in cross_entropy), which")


# ---- 4. one bug is charged once --------------------------------------------------------------------------


def test_softmax_applied_twice_is_charged_once_and_named(course, data_root):
    result = grade(course, "softmax", ROOT / "examples/softmax/softmax-twice", data_root=data_root,
                   sandbox=LocalSandbox())  # fmt: skip
    failed = {c.id: c.message for c in result.checks if c.status != "passed"}
    assert set(failed) == {"cross_entropy_values", "test_accuracy"}  # its weights are worse: trained with the bug
    assert failed["cross_entropy_values"].startswith("softmax applied twice: cross_entropy(y_hat, y) gets "
                                                     "probabilities (net's output, already softmax-ed)")  # fmt: skip
    deferred = [c.id for c in result.checks if c.status == "passed" and any("not charged" in n for n in c.notes)]
    assert deferred == ["gradient_finite_differences"]


def test_a_function_defined_under_the_main_guard_is_charged_once_and_located(course, data_root, tmp_path):
    """sgd moved under `if __name__ == "__main__":` (indented with the code that calls it): it never exists on
    import. sgd_update says where it is; the given train_epoch, which calls it, is not charged again."""
    folder = tmp_path / "student"
    shutil.copytree(ROOT / "examples/softmax/solution", folder)
    src = (folder / "softmax.py").read_text()
    start, end = src.index("def sgd("), src.index("### END SOLUTION", src.index("def sgd(")) + len("### END SOLUTION\n")
    sgd = src[start:end]
    src = src[:start] + src[end:]
    indented = "".join(f"    {line}" if line.strip() else line for line in sgd.splitlines(True))
    src = src.replace('if __name__ == "__main__":\n    main()\n',
                      f'if __name__ == "__main__":\n    # 优化器\n{indented}\n    main()\n')
    (folder / "softmax.py").write_text(src)
    result = grade(course, "softmax", folder, data_root=data_root, sandbox=LocalSandbox(),
                   only=["sgd_update", "training_epoch"])  # fmt: skip
    checks = {c.id: c for c in result.checks}
    assert re.fullmatch(r'sgd is not there: softmax\.py defines it inside `if __name__ == "__main__":` \(line \d+\), '
                        r"which runs only when you start the file yourself: define it at the top level",
                        checks["sgd_update"].message), checks["sgd_update"].message  # fmt: skip
    assert checks["training_epoch"].score == checks["training_epoch"].max_score and checks["training_epoch"].notes == [
        "not charged here: your code has no sgd; that mistake is charged once, by sgd_update"]


# ---- 6. the course's own mistakes are never the student's ------------------------------------------------


def _break(course, edit) -> None:
    path = course.assignment_dir("exp1") / "checks/test_exp1_public.py"
    text = path.read_text()
    assert edit(text) != text, "the edit found nothing to break"
    path.write_text(edit(text))


def test_a_check_calling_an_unknown_probe_is_an_error_for_the_instructor(quick_course, tmp_path):
    _break(quick_course, lambda s: s.replace('contestant.call("f_values"', 'contestant.call("f_vals"'))
    result = grade(quick_course, "exp1", SOLUTION, sandbox=LocalSandbox())
    check = next(c for c in result.checks if c.id == "f_reference_values")
    assert check.status == "error" and check.score == 0
    assert re.match(r"checks/test_exp1_public\.py:\d+: the check calls probe 'f_vals', which probes\.py does not "
                    r"define \(it defines: custom_noise, custom_values, export_model, f_values, ",
                    check.message), check.message
    assert check.message.rstrip().endswith("(a mistake in the course, not in the submission: tell the instructor)")
    assert all(c.status == "passed" for c in result.checks if c.id != "f_reference_values")
    r = cli("grade", "exp1", str(SOLUTION), "--out", str(tmp_path / "out"), "--course", str(quick_course.root))
    assert r.returncode == 2 and "1 check(s) could not be run" in r.stderr


def test_a_check_that_raises_names_its_own_line(quick_course):
    _break(quick_course, lambda s: s.replace('returns=TrainCurve)["state"]', 'returns=TrainCurve)["weights"]'))
    result = grade(quick_course, "exp1", SOLUTION, sandbox=LocalSandbox())
    check = next(c for c in result.checks if c.id == "training_lowers_mse")
    assert check.status == "error"
    assert re.match(r"checks/test_exp1_public\.py:\d+: the check itself failed \(KeyError: 'weights'\): a mistake in "
                    r"the course", check.message), check.message


def test_a_broken_probe_module_is_an_error_at_once(quick_course):
    probes = quick_course.assignment_dir("exp1") / "probes.py"
    probes.write_text(probes.read_text().replace("def f_values(x):", "def f_values(x:", 1))
    result = grade(quick_course, "exp1", SOLUTION, sandbox=LocalSandbox())
    needs_code = [c for c in result.checks if c.id != "model_fits_target"]
    assert all(c.status == "error" for c in result.checks if c.id in ("f_reference_values", "mlp_output_shape"))
    assert "probes.py line" in needs_code[0].message and "syntax error in the probe module" in needs_code[0].message
    assert result.timings.get("contestant_starts", 0) == 0  # found without starting a sandbox


def test_a_declared_check_without_a_test_exits_2_with_a_message(quick_course, tmp_path):
    _break(quick_course, lambda s: s.replace("def test_mlp_output_shape(", "def helper_mlp_output_shape("))
    r = cli("grade", "exp1", str(SOLUTION), "--out", str(tmp_path / "out"), "--course", str(quick_course.root))
    assert r.returncode == 2 and "no test implements the checks mlp_output_shape" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_syntax_error_in_a_check_file_exits_2_naming_the_file(quick_course, tmp_path):
    """pytest ends a session whose files do not collect as if interrupted: the grader says it is the course's."""
    _break(quick_course, lambda s: s.replace("def test_mlp_output_shape(", "def test_mlp_output_shape((", 1))
    r = cli("grade", "exp1", str(SOLUTION), "--out", str(tmp_path / "out"), "--course", str(quick_course.root))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "test_exp1_public.py" in r.stderr and "SyntaxError" in r.stderr and "interrupted" not in r.stderr
    assert "no test implements" not in r.stderr  # the syntax error is why; nothing else to say


def test_definitions_keep_the_calls_that_configure_what_they_use(tmp_path, monkeypatch):
    """A script at module level: argparse options, a seed, then a download. The fallback keeps the options and the
    seed (the kept `args` and `model` need them) and leaves out the download and the loop."""
    from grader.loader import import_definitions

    (tmp_path / "exp2.py").write_text(
        "import argparse\nimport torch\n\nparser = argparse.ArgumentParser(description='ResNet20 作业')\n"
        "parser.add_argument('--lr', type=float, default=0.1)\nparser.set_defaults(epochs=10)\n"
        "args = parser.parse_args()\ntorch.manual_seed(0)\nw = torch.randn(3)\n"
        "data = open('/nonexistent/cifar').read()  # 'download'\nfor epoch in range(args.epochs):\n    print(epoch)\n\n"
        "def lr_for_epoch(epoch):\n    return args.lr if epoch < 5 else args.lr * 0.1\n"
    )  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["exp2.py"])
    module, left = import_definitions("student_exp2", tmp_path / "exp2.py", cpu_s=10)
    assert module.lr_for_epoch(7) == pytest.approx(0.01) and module.args.epochs == 10
    torch.manual_seed(0)
    assert torch.equal(module.w, torch.randn(3))  # the seed ran before the model's weights were drawn
    assert [(lo.line, lo.why) for lo in left] == [(10, "raised FileNotFoundError"), (11, "a loop")]


def test_a_line_that_fails_only_for_a_failed_import_is_that_import_s_slip(tmp_path):
    """`device = d2l.try_gpu()` after d2l's import failed: left out as the import's consequence (which the
    package problem charges), not as code that fails by itself (which would cost the fallback's 5% again), and a
    function that uses `device` is told where it was to come from."""
    from grader.grading import _FAILED_ITSELF
    from grader.loader import LEFT_OUT_NAMES, import_definitions

    (tmp_path / "lenet.py").write_text("import torch\nfrom d2l_not_here import torch as d2l\n"
                                       "device = d2l.try_gpu()  # 有GPU就用GPU\nx = undefined_name + 1\n")  # fmt: skip
    _, left = import_definitions("student_lenet", tmp_path / "lenet.py", cpu_s=10)
    assert [(lo.line, lo.why) for lo in left] == [(2, "raised ModuleNotFoundError"),
                                                  (3, "uses d2l, whose import at line 2 failed"),
                                                  (4, "raised NameError")]  # fmt: skip
    assert [lo.line for lo in left if _FAILED_ITSELF.search(str(lo))] == [4]
    assert LEFT_OUT_NAMES["device"] == "lenet.py line 3 sets it from d2l, whose import failed: set it without d2l"


def test_past_syntax_errors_blanks_whole_top_level_statements_and_keeps_line_numbers(tmp_path):
    """A decorated def with a missing colon and a class with an unclosed bracket: both blanked whole (decorator
    included), every other line where it was; a third statement that breaks too many is given up on."""
    source = ("import functools\n\n\n@functools.lru_cache\ndef f(x)\n    return x\n\n\nclass Net:\n"
              "    sizes = [1, 2\n\n\ndef g(x):\n    return x + 1\n")  # fmt: skip
    from grader.loader import LEFT_OUT_NAMES, SYNTAX_DROPS, past_syntax_errors

    fixed, left = past_syntax_errors(source, tmp_path / "exp1.py")
    assert fixed.split("\n") == ["import functools", "", "", "", "", "", "", "", "", "", "", "", "def g(x):",
                                  "    return x + 1", ""]  # fmt: skip
    assert [(lo.line, lo.code) for lo in left] == [(4, "@functools.lru_cache"), (9, "class Net:")]
    assert LEFT_OUT_NAMES["f"].startswith("the grader left it out for a syntax error (exp1.py line 5: ")
    broken = "".join(f"def f{i}(:\n    pass\n\n\n" for i in range(SYNTAX_DROPS + 1))
    assert past_syntax_errors(broken, tmp_path / "exp1.py") is None


NO_CUDA_HERE = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@NO_CUDA_HERE
def test_code_written_for_a_gpu_is_graded_as_on_a_gpu_with_one_note(quick_course, tmp_path):
    """DEVICE = 'cuda' at the top, used by build_model() and train(), and a demo at import that calls .cuda():
    a machine with a GPU would grade it in full, so this one does too, with CUDA mapped to the CPU, and says once
    where the code asks for CUDA and how to choose the device."""
    folder = student_exp1(tmp_path, lambda src: src.replace("import torch\n", (
        "import torch\nDEVICE = torch.device('cuda')  # 实验室的 GPU\n"), 1).replace(
        "    return MLP(hidden=64)\n", "    return MLP(hidden=64).to(DEVICE)\n").replace(
        "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n",
        "    x, y = x.to(DEVICE), y.to(DEVICE)\n"
        "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n"))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and not any(c.notes for c in result.checks)
    (note,) = result.problems
    line = folder.joinpath("exp1.py").read_text().splitlines().index("    return MLP(hidden=64).to(DEVICE)") + 1
    assert note.id == "cuda" and note.points == 0 and note.message.startswith(
        f"your code asks for CUDA (exp1.py line {line}, in build_model), which this grading machine does not have: "
        "it was run with CUDA mapped to the CPU")  # fmt: skip
    assert "device = 'cuda' if torch.cuda.is_available() else 'cpu'" in note.message


@NO_CUDA_HERE
def test_cuda_at_import_is_graded_whole_not_from_its_definitions(quick_course, tmp_path):
    """`.cuda()` in a top-level demo: the import is not a failed one (no definitions-only fallback, no 5%)."""
    folder = student_exp1(tmp_path, at_bottom("demo = build_model().cuda()  # 先在GPU上试一下\n"
                                              "print(demo(torch.zeros(4, 1).cuda()).shape)\n"))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox(), only=["mlp_output_shape"])
    assert scores(result) == {"mlp_output_shape": 10.0}
    assert [(p.id, p.points, p.locations[0].function) for p in result.problems] == [("cuda", 0, "<module>")]


@NO_CUDA_HERE
def test_cuda_in_a_definitions_only_import_is_mapped_too(quick_course, tmp_path):
    """A package grading lacks (Colab's, imported first) sends the import to its definitions; a top-level
    `.to(DEVICE)` there asks for CUDA: mapped to the CPU as in a full import, not a 5% "fails by itself"."""
    folder = student_exp1(tmp_path, lambda src: src.replace("import torch\n", (
        "import torch\nfrom google.colab import drive  # Colab 上跑的\nDEVICE = torch.device('cuda')\n"), 1) + (
        "\nmodel = build_model().to(DEVICE)\n"))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox(), only=["mlp_output_shape"])
    assert scores(result) == {"mlp_output_shape": 10.0}
    assert sorted((p.id, p.points) for p in result.problems) == [("cuda", 0), ("packages:exp1.py", 0)]


@NO_CUDA_HERE
def test_cuda_that_cannot_run_on_the_cpu_is_charged_once(quick_course, tmp_path):
    """torch.cuda.get_device_properties() has no CPU meaning: the first check it fails charges it, with how to
    choose the device; the others that fail only for it say so and take nothing."""
    folder = student_exp1(tmp_path, lambda src: src.replace("def build_model(", (
        "def show_gpu():\n    print('训练设备:', torch.cuda.get_device_name(0))\n"
        "    print('显存:', torch.cuda.get_device_properties(0).total_memory // 2**20, 'MiB')\n\n\n"
        "def build_model("), 1).replace(
        "    return MLP(hidden=64)\n", "    show_gpu()\n    return MLP(hidden=64).cuda()\n").replace(
        "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n",
        "    show_gpu()\n    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n"))  # fmt: skip
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    lost = {c.id: c.message for c in result.checks if c.score < c.max_score}
    assert list(lost) == ["mlp_output_shape"] and lost["mlp_output_shape"].startswith("used CUDA"), lost
    assert "exp1.py line" in lost["mlp_output_shape"] and "if torch.cuda.is_available() else 'cpu'" in lost[
        "mlp_output_shape"]  # fmt: skip
    training = by_id(result)["training_lowers_mse"]
    assert training.notes == ["not charged here: your code asks for CUDA, which this grading machine does not have; "
                              "that mistake is charged once, by mlp_output_shape"]  # fmt: skip
    assert not result.problems  # the charged check says it: no note that it cost nothing


@pytest.mark.parametrize("edit, says", [
    # the constant read from the command line, its default the assignment's: as imported, 1000
    (lambda src: src.replace("NUM_TRAIN_SAMPLES = 1000 ", "import argparse\n_p = argparse.ArgumentParser()\n"
                             "_p.add_argument('--samples', type=int, default=1000)\n"
                             "args, _ = _p.parse_known_args()\nNUM_TRAIN_SAMPLES = args.samples "), None),
    (lambda src: src.replace("NUM_TRAIN_SAMPLES = 1000 ", "NUM_TRAIN_SAMPLES = int(1e3) "), None),
    # the constant kept, but main() trains on fewer; a helper that looks at 8 samples is not training
    (lambda src: src.replace("        x, y = make_data(fn)\n", "        x, y = make_data(fn, 500)  # 少一点, 快\n")
     .replace("def main()", "def peek():\n    print(make_data(f, 8)[0].T)\n\n\ndef main()"),
     "exp1.py trains on another number of samples (line "),
], ids=["argparse", "int", "main-fewer"])  # fmt: skip
def test_num_train_samples_is_what_training_uses(quick_course, tmp_path, edit, says):
    folder = student_exp1(tmp_path, edit)
    check = by_id(grade(quick_course, "exp1", folder, sandbox=LocalSandbox(), only=["num_train_samples_unchanged"]))[
        "num_train_samples_unchanged"]  # fmt: skip
    if says is None:
        assert check.status == "passed", check.message
    else:
        assert check.score == 0 and check.message.startswith(says) and "make_data(fn, 500)" in check.message


class FitNet(torch.nn.Module):
    """A student's own MLP class, with the handout's layer names."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(1, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                                       torch.nn.Tanh(), torch.nn.Linear(64, 1))  # fmt: skip

    def forward(self, x):
        return self.net(x)


def test_whole_pickled_models_are_graded_from_their_weights_with_one_note(quick_course, tmp_path):
    """torch.save({"default": model, "custom": model2}): the weights are read without running the student's class."""
    folder = student_exp1(tmp_path, lambda src: src)
    saved = torch.load(folder / "model.pth", weights_only=True)
    models = {}
    for which in ("default", "custom"):
        models[which] = FitNet()
        models[which].load_state_dict(saved[which])
    torch.save(models, folder / "model.pth")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox())
    assert scores(result) == EXPECTED["solution"] and not result.problems
    (note,) = [n for n in result.notices() if n.note]
    assert note.text == ("model.pth holds 2 whole models (FitNet), pickled, where only their weights were expected: "
                         "the grader read the weights out of it without running any of its code, and graded them. "
                         "Next time save model.state_dict() in the format the assignment asks for")  # fmt: skip
    assert not any("bare state_dict" in n for c in result.checks for n in c.notes)


def test_diverged_weights_are_named_as_such(quick_course, tmp_path):
    folder = student_exp1(tmp_path, lambda src: src)
    saved = torch.load(folder / "model.pth", weights_only=True)
    saved["default"] = {k: torch.full_like(v, float("nan")) for k, v in saved["default"].items()}
    torch.save(saved, folder / "model.pth")
    result = grade(quick_course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"])
    assert by_id(result)["model_fits_target"].message == (
        'model.pth["default"] holds NaN or infinite weights (net.0.weight, net.0.bias, net.2.weight and 3 more): '
        "training diverged; lower the learning rate, train again and save the new weights")  # fmt: skip
