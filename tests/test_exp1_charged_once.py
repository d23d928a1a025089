"""exp1: realistic slips, each charged once, with one message that says what happened and how to fix it.

Graded for real (the sandbox, the checks); each submission is the bundled solution with one mistake.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from grader.grading import grade
from grader.modules import load_module
from tests.test_exp1_e2e import by_id

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "examples/exp1/solution"
CORRECT_F = "    return x**2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5\n"
TYPO_F = "    return x**2 + 2 * torch.sin(x) + torch.cos(x) - 1 - 5  # cos(x) - 1, meant cos(x - 1)\n"
OVERWRITTEN = ('model.pth holds one model, and it fits your custom_f, not f: the default model is missing (did a '
               'second torch.save overwrite the first?). Save both in one file: torch.save({"default": '
               'model.state_dict(), "custom": custom_model.state_dict()}, "model.pth")')  # fmt: skip


def solution_with(folder: Path, old: str, new: str) -> Path:
    """The bundled solution copied to `folder`, with `old` replaced by `new` in exp1.py."""
    shutil.copytree(SOLUTION, folder)
    src = (folder / "exp1.py").read_text()
    assert src.count(old) == 1, old
    (folder / "exp1.py").write_text(src.replace(old, new))
    return folder


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Training in this process on one thread: the same weights on every machine, and no fight over 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_a_typo_in_f_is_charged_once(course, tmp_path, one_thread):
    """f has `cos(x) - 1` for `cos(x - 1)`, and the default model was trained on that f (500 Adam epochs from the
    student's own script, about 2 s): f_reference_values charges the typo; the fit, measured against the student's
    own f, earns its points (against the assignment's f it measures NMSE ~0.03, about 7 of 25)."""
    folder = solution_with(tmp_path / "typo", CORRECT_F, TYPO_F)
    module = load_module(folder / "exp1.py", "student_exp1_typo")  # a test may run student code: it is not the judge
    torch.manual_seed(0)
    model = module.build_model()
    x, y = module.make_data(module.f)
    module.train(model, x, y, 500, 0.01)
    saved = torch.load(folder / "model.pth", weights_only=True)
    torch.save({"default": model.state_dict(), "custom": saved["custom"]}, folder / "model.pth")

    checks = by_id(grade(course, "exp1", folder, only=["f_reference_values", "model_fits_target"]))
    assert checks["f_reference_values"].score == 0
    assert checks["f_reference_values"].message.startswith("f(x) at x=-5 got")
    fit = checks["model_fits_target"]
    assert (fit.score, fit.status) == (25, "passed"), fit.message
    assert fit.notes == ["the fit is measured against your own f(x), not the assignment's: your f(x) differs from "
                         "it, and that mistake is charged once, by f_reference_values"]  # fmt: skip
    assert fit.message.startswith('model.pth["default"] in your model, run by the judge, against your own f(x), on '
                                  "2001 grid points over [-5, 5]: normalized MSE")  # fmt: skip


def test_an_f_written_with_math_is_charged_once(course, tmp_path):
    """f with math.sin and math.cos, which take one number, not a tensor: f_reference_values charges the
    ValueError; the hidden count of make_data's samples does not need the student's f, and passes."""
    folder = solution_with(tmp_path / "math", CORRECT_F,
                           "    return x**2 + 2 * math.sin(x) + math.cos(x - 1) - 5  # 用math库\n")  # fmt: skip
    src = (folder / "exp1.py").read_text()
    (folder / "exp1.py").write_text(src.replace("import torch\n", "import math\n\nimport torch\n", 1))
    result = grade(course, "exp1", folder)
    lost = {c.id: c.message for c in result.checks if c.score < c.max_score}
    assert list(lost) == ["f_reference_values"], lost
    assert "only one element tensors can be converted to Python scalars" in lost["f_reference_values"]


def test_a_typo_in_f_with_a_model_fit_to_the_right_f_is_graded_as_always(course, tmp_path):
    """The same typo, with the solution's model.pth (trained on the right f): the fit is measured against the
    assignment's f, as always, and earns full points; nothing is said about the student's f there."""
    folder = solution_with(tmp_path / "typo", CORRECT_F, TYPO_F)
    checks = by_id(grade(course, "exp1", folder, only=["f_reference_values", "model_fits_target"]))
    assert checks["f_reference_values"].score == 0
    fit = checks["model_fits_target"]
    assert (fit.score, fit.notes) == (25, [])
    assert "against your own f(x)" not in fit.message


def _custom_only(folder: Path, kind: str) -> None:
    """model.pth as left by a second save that overwrote the first: only the custom model, as its state_dict, or
    as the whole model (torch.save(custom_model, ...), which the judge reads as its state_dict)."""
    custom = torch.load(folder / "model.pth", weights_only=True)["custom"]
    if kind == "state_dict":
        torch.save(custom, folder / "model.pth")
        return
    name = "student_exp1_pickled"
    module = load_module(folder / "exp1.py", name, register=True)  # pickling names the class by its module
    try:
        model = module.build_custom_model()
        model.load_state_dict(custom)
        torch.save(model, folder / "model.pth")
    finally:
        del sys.modules[name]


@pytest.mark.parametrize("kind", ["state_dict", "whole-model"])
def test_a_second_save_that_overwrote_the_default_model(course, tmp_path, kind):
    """torch.save(model.state_dict(), "model.pth") twice, the custom model last: the custom task is graded on the
    model that is there, and the default task fails once, saying what happened and how to save both."""
    twice = '    torch.save(trained["default"], "model.pth")\n    torch.save(trained["custom"], "model.pth")\n'
    folder = solution_with(tmp_path / "overwrite", '    torch.save(trained, "model.pth")\n', twice)
    _custom_only(folder, kind)
    result = grade(course, "exp1", folder)
    checks = by_id(result)
    fit = checks["model_fits_target"]
    assert (fit.score, fit.status, fit.message, fit.notes) == (0, "failed", OVERWRITTEN, [])
    custom = checks["custom_function_fits"]
    one = "a single state_dict" if kind == "state_dict" else "a single model (student_exp1_pickled.MLP)"
    assert (custom.score, custom.status) == (25, "passed"), custom.message
    assert custom.notes == [f"model.pth holds {one}, and it fits your custom_f better than f, so it was graded as "
                            "the custom model"]  # fmt: skip
    assert custom.message.startswith("model.pth in your custom model, run by the judge, on 2001 grid points")
    assert [c.id for c in result.checks if c.score < c.max_score] == ["model_fits_target"]
    assert result.score == 75


def test_a_single_default_model_still_says_the_custom_one_is_missing(course, tmp_path):
    """Only the default model saved (a bare state_dict that fits f): it is graded as the default model, with a note,
    and the custom task says how to save both, as before."""
    folder = solution_with(tmp_path / "default-only", '    torch.save(trained, "model.pth")\n',
                           '    torch.save(trained["default"], "model.pth")\n')  # fmt: skip
    torch.save(torch.load(folder / "model.pth", weights_only=True)["default"], folder / "model.pth")
    checks = by_id(grade(course, "exp1", folder, only=["model_fits_target", "custom_function_fits"]))
    fit = checks["model_fits_target"]
    assert (fit.score, fit.notes) == (25, ['model.pth is a bare state_dict; read it as the "default" model'])
    custom = checks["custom_function_fits"]
    assert (custom.score, custom.message) == (0, 'model.pth holds a single state_dict; save {"default": ..., '
                                                 '"custom": ...} to grade the custom task')  # fmt: skip


def test_a_train_without_zero_grad_is_told_why_the_loss_grew(course, tmp_path):
    """train() never resets the gradients: Adam follows their running sum and the MSE grows. The check keeps its
    score (0) and its measurement, and says what usually causes it."""
    folder = solution_with(tmp_path / "no-zero-grad", "        optimizer.zero_grad()\n", "")
    train = by_id(grade(course, "exp1", folder, only=["training_lowers_mse"]))["training_lowers_mse"]
    assert (train.score, train.status) == (0, "failed")
    got = re.fullmatch(r"after train\(model, x, y, num_epochs=300, lr=0\.01\) the MSE went from (\S+) to (\S+); "
                       r"expected it to fall to at most (\S+)\. (.*)", train.message)  # fmt: skip
    assert got, train.message
    before, after, limit = map(float, got.groups()[:3])
    assert after > before and limit == pytest.approx(before / 2, rel=1e-3)
    assert got[4] == ("The loss grew: a train() that does not reset the gradients each step (optimizer.zero_grad() "
                      "before loss.backward()), or that takes too large a step, diverges like this")  # fmt: skip


def test_training_starts_from_the_same_weights_whatever_the_judge_drew_before(course, tmp_path):
    """The judge's starting weights come from a fixed seed, not from the judge's global RNG, which a batch worker
    has advanced by every submission before: the same train() gets the same message in any order."""
    folder = solution_with(tmp_path / "no-zero-grad", "        optimizer.zero_grad()\n", "")
    messages = []
    for draws in (1, 3):
        torch.rand(draws)  # the judge's global RNG, moved on
        messages.append(by_id(grade(course, "exp1", folder, only=["training_lowers_mse"]))["training_lowers_mse"])
    assert messages[0].model_dump(exclude={"duration_s"}) == messages[1].model_dump(exclude={"duration_s"})


@pytest.mark.parametrize("old, new, says", [
    # Liu Er's lectures: criterion = torch.nn.MSELoss(size_average=False), with SGD and a small lr of their own
    ("    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n    loss_fn = nn.MSELoss()\n",
     "    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)\n"
     "    loss_fn = nn.MSELoss(reduction='sum')  # 和课上一样用 sum\n",
     r"MSE went from 71\.7 to nan: train\(\)'s first step is 256 times plain SGD's on the mean squared error, so its "
     r"loss is summed over the 256 samples .*use nn\.MSELoss\(\) \(with lr 0\.01/256 it trains as it should\)$"),
    ("    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n",
     "    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)\n",
     r"^train\(\) ignores its lr argument: called with num_epochs=300 and lr=0\.001 it left exactly the weights of "
     r"train\(model, x, y, num_epochs=300, lr=0\.01\)\. Use the arguments inside train\(\)"),
    ("    for _ in range(num_epochs):\n", "    for _ in range(NUM_TRAIN_EPOCHS):  # 训练轮数\n",
     r"^train\(\) ignores its num_epochs argument: called with num_epochs=10 and lr=0\.01"),
], ids=["summed-loss", "ignores-lr", "ignores-epochs"])  # fmt: skip
def test_a_train_that_breaks_the_handouts_contract_costs_half(course, tmp_path, old, new, says):
    """A summed loss, or a train() that ignores lr or num_epochs: half of training_lowers_mse, with a message that
    names the slip (model.pth, trained before, is not at stake)."""
    folder = solution_with(tmp_path / "student", old, new)
    checks = by_id(grade(course, "exp1", folder, only=["training_lowers_mse"]))
    check = checks["training_lowers_mse"]
    assert check.score == check.max_score / 2 and re.search(says, check.message), check.message


def test_a_custom_f_that_is_f_shifted_earns_part_of_its_fit(course, tmp_path):
    """custom_f = f(x) + 1, and its model is the default one with 1 added to the output bias: a perfect fit of no
    function of the student's own, which earns 40% of custom_function_fits with a message saying why."""
    folder = solution_with(tmp_path / "shifted", "    return 3 * torch.sin(2 * x) + 0.5 * x\n",
                           "    return f(x) + 1  # 自己的函数: 在 f 的基础上加 1\n")  # fmt: skip
    saved = torch.load(folder / "model.pth", weights_only=True)
    saved["custom"] = {k: v.clone() for k, v in saved["default"].items()}
    saved["custom"]["net.4.bias"] += 1
    torch.save(saved, folder / "model.pth")
    check = by_id(grade(course, "exp1", folder, only=["custom_function_fits"]))["custom_function_fits"]
    assert check.score == pytest.approx(0.4 * check.max_score), check.message
    assert check.message.startswith("custom_f(x) is f(x) + 1: the assignment's f, shifted or scaled"), check.message


def test_models_saved_for_standardized_targets_are_charged_once(course, tmp_path):
    """main() trains both models on (y - mean) / std and saves them as they are (their outputs need `* std + mean`):
    model_fits_target says so and earns half of the rescaled fit; custom_function_fits, the same slip, defers."""
    folder = solution_with(tmp_path / "standardized", "        trained[name] = model.state_dict()\n",
                           "        trained[name] = model.state_dict()  # 训练时 y 做了标准化\n")  # fmt: skip
    module = load_module(folder / "exp1.py", "student_exp1_standardized")
    saved = torch.load(folder / "model.pth", weights_only=True)
    for name, fn in (("default", module.f), ("custom", module.custom_f)):
        _, y = module.make_data(fn)
        mean, std = y.mean(), y.std()
        saved[name]["net.4.weight"] = saved[name]["net.4.weight"] / std  # outputs (y - mean) / std
        saved[name]["net.4.bias"] = (saved[name]["net.4.bias"] - mean) / std
    torch.save(saved, folder / "model.pth")
    checks = by_id(grade(course, "exp1", folder, only=["model_fits_target", "custom_function_fits"]))
    fit = checks["model_fits_target"]
    assert 0 < fit.score <= fit.max_score / 2 and "was the model trained on standardized targets" in fit.message
    assert checks["custom_function_fits"].status == "passed"
    assert "charged once, by model_fits_target" in checks["custom_function_fits"].notes[0]


@pytest.mark.parametrize("default, custom, how", [("model", "custom_model", ""), ("f", "g", "in the order saved, ")])
def test_two_models_saved_under_names_of_their_own_are_read_with_one_note(course, tmp_path, default, custom, how):
    """{"model": ..., "custom_model": ...}: the name says which is custom; {"f": ..., "g": ...}: neither does, and
    the one saved first is the default model, as in the handout."""
    both = f'{{"{default}": trained["default"], "{custom}": trained["custom"]}}'
    folder = solution_with(tmp_path / "names", '    torch.save(trained, "model.pth")\n',
                           f'    torch.save({both}, "model.pth")  # 两个模型\n')  # fmt: skip
    saved = torch.load(folder / "model.pth", weights_only=True)
    torch.save({default: saved["default"], custom: saved["custom"]}, folder / "model.pth")
    result = grade(course, "exp1", folder, only=["model_fits_target", "custom_function_fits"])
    assert all(c.status == "passed" for c in result.checks), [c.message for c in result.checks]
    notes = [n for c in result.checks for n in c.notes]
    assert notes == [f"model.pth keeps its two models under '{default}' and '{custom}': read them {how}as \"default\" "
                     "and \"custom\", the names the handout saves them under"]


def test_two_models_saved_as_a_list_are_read_in_the_order_saved(course, tmp_path):
    """torch.save([model.state_dict(), custom_model.state_dict()], "model.pth"): both graded, with one note."""
    folder = solution_with(tmp_path / "list", '    torch.save(trained, "model.pth")\n',
                           '    torch.save([trained["default"], trained["custom"]], "model.pth")  # 先 f 后 custom\n')
    saved = torch.load(folder / "model.pth", weights_only=True)
    torch.save([saved["default"], saved["custom"]], folder / "model.pth")
    result = grade(course, "exp1", folder, only=["model_fits_target", "custom_function_fits"])
    assert all(c.status == "passed" for c in result.checks), [c.message for c in result.checks]
    notes = [n for c in result.checks for n in c.notes]
    assert notes == ['model.pth is a list of two state_dicts: read them in the order saved, as "default" and '
                     '"custom"; the handout saves {"default": ..., "custom": ...}']


def test_a_train_that_prints_every_hundredth_of_its_epochs_keeps_full_marks(course, tmp_path):
    """`epoch % (num_epochs // 100)` divides by zero below 100 epochs: the grader's short probing calls fail, which
    tells nothing, and the check grades the 300-epoch run as it is."""
    folder = solution_with(tmp_path / "prints", "    for _ in range(num_epochs):\n",
                           "    for epoch in range(num_epochs):\n        if epoch % (num_epochs // 100) == 0:\n"
                           "            print(f'epoch {epoch}')  # 每 1% 打印一次\n")  # fmt: skip
    check = by_id(grade(course, "exp1", folder, only=["training_lowers_mse"]))["training_lowers_mse"]
    assert check.status == "passed", check.message


def test_a_custom_f_that_adds_noise_is_graded_against_its_mean(course, tmp_path):
    """custom_f adds the noise itself (make_data calls it), so each call differs: the fit is graded against the mean
    of many draws, the function a model of noisy data learns, not against one draw of its noise (was 0.43 of it)."""
    folder = solution_with(tmp_path / "noisy", "    return 3 * torch.sin(2 * x) + 0.5 * x\n",
                           "    y = 3 * torch.sin(2 * x) + 0.5 * x\n"
                           "    return y + 0.3 * torch.randn_like(y)  # 加一点噪声, 更像真实数据\n")  # fmt: skip
    check = by_id(grade(course, "exp1", folder, only=["custom_function_fits"]))["custom_function_fits"]
    assert check.score == check.max_score, check.message
    assert re.match(r"custom_f adds random noise \(std about 0\.[23]\d* between calls\): graded against its mean",
                    check.notes[0]), check.notes


STANDARDIZING_TRAIN = (
    "    mean, std = y.mean(), y.std()\n"
    "    y = (y - mean) / std  # 标准化, 训练更稳定\n"
    "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n")


@pytest.mark.parametrize("saved_as_is", [True, False])
def test_a_train_that_standardizes_y_is_charged_once(course, tmp_path, saved_as_is):
    """train() standardizes y itself and never undoes it. Saved as it is, model.pth's outputs need `* std + mean`
    too: model_fits_target charges that, and training_lowers_mse, the same slip, defers. Where main() folded the
    scaling back before saving, the slip is train()'s alone: half of training_lowers_mse, saying why."""
    folder = solution_with(tmp_path / "std", "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)\n",
                           STANDARDIZING_TRAIN)
    if saved_as_is:
        module = load_module(folder / "exp1.py", "student_exp1_std_train")
        saved = torch.load(folder / "model.pth", weights_only=True)
        _, y = module.make_data(module.f)
        mean, std = y.mean(), y.std()
        saved["default"]["net.4.weight"] = saved["default"]["net.4.weight"] / std  # outputs (y - mean) / std
        saved["default"]["net.4.bias"] = (saved["default"]["net.4.bias"] - mean) / std
        torch.save(saved, folder / "model.pth")
    checks = by_id(grade(course, "exp1", folder, only=["training_lowers_mse", "model_fits_target"]))
    train, fit = checks["training_lowers_mse"], checks["model_fits_target"]
    said = re.compile(r"after train\(model, x, y, num_epochs=\d+, lr=[\d.]+\) the MSE went from \S+ to \S+, but once "
                      r"scaled and shifted \(y = [\d.]+ \* output [+-] [\d.]+\) its outputs fit y: train\(\) fits "
                      r"standardized targets")  # fmt: skip
    if saved_as_is:
        assert train.status == "passed" and said.search(train.notes[-1]), (train.message, train.notes)
        assert "charged once, by model_fits_target" in train.notes[-1]
        assert 0 < fit.score <= fit.max_score / 2 and "trained on standardized targets" in fit.message
    else:
        assert train.score == train.max_score / 2 and said.match(train.message), train.message
        assert fit.status == "passed", fit.message


def test_models_trained_on_scaled_inputs_are_charged_once(course, tmp_path):
    """main() trains both models on x / 5 (scaled to [-1, 1]) and saves them as they are: they fit f and custom_f
    only on scaled inputs. model_fits_target says so and earns half of that fit; custom_function_fits defers."""
    folder = solution_with(tmp_path / "scaled", "        x, y = make_data(fn)\n",
                           "        x, y = make_data(fn)\n        x = x / X_MAX  # 输入归一化到 [-1, 1]\n")
    saved = torch.load(folder / "model.pth", weights_only=True)
    for name in ("default", "custom"):
        saved[name]["net.0.weight"] = saved[name]["net.0.weight"] * 5  # model(x / 5) is the solution's model(x)
    torch.save(saved, folder / "model.pth")
    checks = by_id(grade(course, "exp1", folder, only=["model_fits_target", "custom_function_fits"]))
    fit = checks["model_fits_target"]
    assert fit.score == fit.max_score / 2, fit.message
    assert "once its inputs are scaled as x / 5, it fits with normalized MSE" in fit.message, fit.message
    assert "fold the scaling into its first layer" in fit.message
    custom = checks["custom_function_fits"]
    assert custom.status == "passed", custom.message
    assert "charged once, by model_fits_target" in custom.notes[-1]
