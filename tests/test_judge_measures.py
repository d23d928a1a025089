"""The judge measures every trained model itself (grader.judge.measured): a model whose architecture differs from
the handout's earns the points of what it really does, and numbers student code returns never decide a score.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

from grader.grading import grade
from grader.sandbox.local import LocalSandbox
from tests.test_exp1_e2e import EXPECTED

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "examples/exp1/solution"


def exp1_with(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "student"
    shutil.copytree(SOLUTION, folder)
    src = (folder / "exp1.py").read_text()
    assert old in src
    (folder / "exp1.py").write_text(src.replace(old, new))
    return folder


def train_default(folder: Path) -> None:
    """Train the student's build_model() with their own train() and save it as model.pth["default"]."""
    torch.manual_seed(0)
    from grader.modules import load_module

    module = load_module(folder / "exp1.py", "student_exp1")  # a test may run student code: it is not the judge
    model = module.build_model()
    x, y = module.make_data(module.f)
    module.train(model, x, y, 3000, 0.01)
    saved = torch.load(folder / "model.pth", weights_only=True)
    torch.save({**saved, "default": model.state_dict()}, folder / "model.pth")


def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


def test_a_forward_that_computes_f_itself_is_refused(course, tmp_path):
    """The MLP's layers are there, and its weights load, but forward() returns the analytic f(x): the judge runs
    the model's own graph, which applies Sin to the input itself (an MLP may use it only as an activation)."""
    folder = exp1_with(tmp_path, "        return self.net(x)  # (N, 1)", (
        "        # TODO remove: checking my plots against the true curve\n"
        "        return x**2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5 + 0 * self.net(x)"))  # fmt: skip
    checks = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox()))
    fit = checks["model_fits_target"]
    assert fit.score == 0 and fit.status == "failed"
    assert re.search(r'model\.pth\["default"\] loads into the reference MLP of the handout, but your model computes '
                     r"otherwise: measured in your own model, exported with those weights, but the judge will not "
                     r"run it: the graph applies (Sin|Cos|Pow) to the input itself",
                     fit.message), fit.message  # fmt: skip
    assert checks["custom_function_fits"].score == 0


def test_a_train_that_only_reports_losses_earns_nothing(course, tmp_path):
    """train() returns a made-up falling curve and never updates the model: the judge measures the weights."""
    folder = exp1_with(tmp_path, "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)", (
        "    return [1.0 / (epoch + 1) for epoch in range(num_epochs)]  # looks like training\n"
        "    optimizer = torch.optim.Adam(model.parameters(), lr=lr)"))  # fmt: skip
    checks = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["training_lowers_mse"]))
    train = checks["training_lowers_mse"]
    assert train.score == 0
    assert re.match(r"after train\(model, x, y, num_epochs=300, lr=0\.01\) the MSE went from (\S+) to \1; expected "
                    r"it to fall to at most", train.message), train.message  # fmt: skip


def test_a_model_of_another_width_is_measured_as_it_is(course, tmp_path):
    """build_model() with 32 hidden units and weights trained for it: no reference to load them into, so the
    judge runs the student's own graph and grades its fit."""
    folder = exp1_with(tmp_path, '    return MLP(hidden=64)\n\n\ndef build_custom_model', (
        '    return MLP(hidden=32)  # smaller is enough\n\n\ndef build_custom_model'))  # fmt: skip
    train_default(folder)
    checks = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"]))
    fit = checks["model_fits_target"]
    assert fit.score == EXPECTED["solution"]["model_fits_target"], fit.message
    assert fit.notes[0].startswith('model.pth["default"] does not load into the reference MLP of the handout '
                                   "(mis-shaped: net.0.weight (32, 1) (expected (64, 1))")  # fmt: skip


def test_any_of_torchs_activations_and_norms_is_measured(course, tmp_path):
    """build_model() with LayerNorm, GELU (Erf in the graph) and Hardswish: no operator of theirs can compute
    f(x) by itself, so the judge runs the graph and grades the fit."""
    folder = exp1_with(tmp_path, '    return MLP(hidden=64)\n\n\ndef build_custom_model', (
        "    # GELU trains smoother than tanh for me\n"
        "    return nn.Sequential(nn.Linear(1, 64), nn.LayerNorm(64), nn.GELU(), nn.Linear(64, 64), nn.Hardswish(),\n"
        "                         nn.Linear(64, 1))\n\n\ndef build_custom_model"))  # fmt: skip
    train_default(folder)
    checks = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"]))
    fit = checks["model_fits_target"]
    assert fit.score == EXPECTED["solution"]["model_fits_target"], fit.message
    assert "measured in your own model" in fit.notes[0]


def test_a_sin_activation_is_measured(course, tmp_path):
    """A SIREN-style MLP: torch.sin as its activation. Sin follows a layer with weights, so the judge runs it."""
    folder = exp1_with(tmp_path, '    return MLP(hidden=64)\n\n\ndef build_custom_model', (
        "    return SinNet()  # read that sin activations fit smooth functions well\n\n\n"
        "class SinNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc1 = nn.Linear(1, 64)\n"
        "        self.fc2 = nn.Linear(64, 1)\n\n"
        "    def forward(self, x):\n"
        "        h = torch.sin(self.fc1(x))  # (N, 64)\n"
        "        return self.fc2(h)  # (N, 1)\n\n\ndef build_custom_model"))  # fmt: skip
    train_default(folder)
    fit = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"]))["model_fits_target"]
    assert fit.score > 0.8 * EXPECTED["solution"]["model_fits_target"], fit.message
    assert "measured in your own model" in fit.notes[0]


GAUSSIAN_NET = """class GaussNet(nn.Module):
    \"\"\"exp(-h^2) as the activation: a Gaussian unit\"\"\"

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(1, 64)
        self.fc2 = nn.Linear(64, 1)

    def forward(self, x):
        h = torch.exp(-self.fc1(x) ** 2)  # (N, 64)
        return self.fc2(h)  # (N, 1)
"""
RBF_NET = """class RBFNet(nn.Module):
    \"\"\"RBF network: one Gaussian bump per centre, widths learned as log(sigma) so they stay positive\"\"\"

    def __init__(self, k=40):
        super().__init__()
        self.centers = nn.Parameter(torch.linspace(X_MIN, X_MAX, k).reshape(1, k))  # (1, k)
        self.log_sigma = nn.Parameter(torch.zeros(1, k))  # (1, k)
        self.out = nn.Linear(k, 1)

    def forward(self, x):
        d2 = (x - self.centers) ** 2  # (N, k)
        phi = torch.exp(-d2 / (2 * torch.exp(self.log_sigma) ** 2))  # (N, k)
        return self.out(phi)  # (N, 1)
"""


@pytest.mark.parametrize("net", [GAUSSIAN_NET, RBF_NET])
def test_gaussian_units_and_an_rbf_network_are_measured(course, tmp_path, net):
    """exp(-h^2) after a layer (ONNX's Neg among its operators) and an RBF layer (x - centres, exp(log_sigma) on a
    parameter) learn f: the judge runs their graphs, where it once refused them as computing f in forward()."""
    name = net.split("(")[0].removeprefix("class ")
    folder = exp1_with(tmp_path, "    return MLP(hidden=64)\n\n\ndef build_custom_model",
                       f"    return {name}()\n\n\n{net}\n\ndef build_custom_model")
    train_default(folder)
    fit = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"]))["model_fits_target"]
    assert "measured in your own model" in fit.notes[0], (fit.message, fit.notes)
    assert fit.score > 0, fit.message


@pytest.mark.filterwarnings("ignore:Using a target size")  # the student's own training warns, as it did for them
def test_a_model_that_learned_the_mean_is_told_about_broadcasting(course, tmp_path):
    """make_data returns x and y of shape (N,); train() reshapes x for the model but not y, so MSELoss compares
    (N, 1) with (N,), broadcasts to (N, N) and trains the model to output the mean of y."""
    folder = exp1_with(tmp_path, "    x = torch.rand(num_samples, 1, generator=g) * (X_MAX - X_MIN) + X_MIN  # (N, 1)",
                       "    x = torch.rand(num_samples, generator=g) * (X_MAX - X_MIN) + X_MIN  # 1000 points")
    src = (folder / "exp1.py").read_text().replace("loss = loss_fn(model(x), y)  # scalar",
                                                   "loss = loss_fn(model(x.reshape(-1, 1)), y)  # model wants 2D")
    (folder / "exp1.py").write_text(src)
    train_default(folder)
    fit = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"]))["model_fits_target"]
    assert fit.score == 0
    assert "about the targets' mean" in fit.message and "broadcasts to (N, N)" in fit.message, fit.message


def test_a_constant_model_is_told_why_it_might_be_constant(course, tmp_path):
    """Weights initialised to zeros: every hidden unit stays alike and the output is one value everywhere."""
    folder = exp1_with(tmp_path, "    return MLP(hidden=64)\n\n\ndef build_custom_model",
                       "    return MLP(hidden=64)  # 全零初始化\n\n\ndef build_custom_model")
    saved = torch.load(folder / "model.pth", weights_only=True)
    saved["default"] = {k: torch.zeros_like(v) for k, v in saved["default"].items()}
    saved["default"]["net.4.bias"] += 0.5  # all the last bias learns when nothing else can
    torch.save(saved, folder / "model.pth")
    fit = by_id(grade(course, "exp1", folder, sandbox=LocalSandbox(), only=["model_fits_target"]))["model_fits_target"]
    assert fit.score == 0 and re.search(
        r"grid points over \[-5, 5\]: the same value \(0\.5\) at every point, normalized MSE [\d.]+: a network whose "
        r"weights all start equal \(zeros, or one constant\)", fit.message), fit.message
