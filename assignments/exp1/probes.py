"""exp1 probes: run inside the sandbox, next to the student's exp1.py, and return plain data.

The judge decides every input (points, seeds, step budgets) and checks every output against the reference.
"""

import torch

from grader.contestant import export_graph, number, probe, student, uncompiled


def _exp1():
    return student("exp1")


@probe
def f_values(x):
    return _exp1().f(x)


NOISE_DRAWS = 64  # a noisy custom_f's mean over this many draws stands in for it (its noise shrinks 8x)


@probe
def custom_values(x):
    """custom_f on x; where it adds random noise (two calls differ), the mean of NOISE_DRAWS calls: the function
    a model trained on its draws learns."""
    f = _exp1().custom_f
    first, again = f(x), f(x)
    if not (isinstance(first, torch.Tensor) and isinstance(again, torch.Tensor)) or torch.equal(first, again):
        return first
    return torch.stack([first, again, *(f(x) for _ in range(NOISE_DRAWS - 2))]).double().mean(0)


@probe
def custom_noise(x):
    """The standard deviation of custom_f's values between calls at the same x (0.0: it adds no noise)."""
    f = _exp1().custom_f
    draws = torch.stack([f(x) for _ in range(8)]).double()
    return float(draws.std(0).mean())


@probe
def model_output(x):
    model = _exp1().build_model()
    with torch.no_grad():
        return model(x)


class _HandoutMLP(torch.nn.Module):
    """The handout's MLP (1 -> 64 -> 64 -> 1, tanh), as in the checks' exp1_judge.HandoutMLP: the training check
    grades train() alone, so a mistake in the student's model is charged once, by the shape and fit checks."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(1, 64), torch.nn.Tanh(),  # (N, 1) -> (N, 64)
            torch.nn.Linear(64, 64), torch.nn.Tanh(),  # (N, 64) -> (N, 64)
            torch.nn.Linear(64, 1),  # (N, 64) -> (N, 1)
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


@probe
def train_curve(x, y, init_state, num_epochs, lr):
    """The student's train() on the handout's MLP from the judge's weights; the weights it leaves (the judge
    measures the loss before and after itself) and the losses train() returned (drawn, never graded)."""
    m = _exp1()
    model = _HandoutMLP()
    model.load_state_dict(init_state)
    losses = m.train(model, x, y, num_epochs, lr)
    try:
        values = [number(v) for v in losses]  # a list of floats, or of losses still holding their graphs
    except TypeError:  # not a sequence: None, one number
        values = [None]
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "losses": None if None in values else values}


def _handout_f(x):
    return x**2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5  # (N, 1) -> (N, 1)


@probe
def settings():
    m = _exp1()
    names = ("NUM_TRAIN_SAMPLES", "NUM_TRAIN_EPOCHS", "LEARNING_RATE", "X_MIN", "X_MAX")
    out = {n: (v if isinstance(v := getattr(m, n, None), (int, float, str, type(None))) else repr(v)) for n in names}
    try:
        x, _ = m.make_data(m.f)  # the data the student's main() would train on
    except NotImplementedError:  # f still a TODO: the handout as released earns nothing here either
        raise
    except Exception:  # a broken f is f_reference_values' to charge; how many samples is make_data's alone
        x, _ = m.make_data(_handout_f)
    out["samples_made"] = int(x.shape[0])
    return out


def _with_weights(state, which):
    """The student's model (build_model() or build_custom_model()) with model.pth's weights, in eval mode."""
    m = _exp1()
    model = uncompiled(m.build_model() if which == "default" else m.build_custom_model())
    model.load_state_dict(state)
    model.eval()
    return model


@probe
def model_outputs(state, inputs, which):
    """The student's model's outputs with model.pth's weights: tells the judge whether the reference computes the
    same (it never grades these numbers)."""
    with torch.no_grad():
        return [_with_weights(state, which)(*inputs)]


@probe
def export_model(state, which):
    """The student's model with model.pth's weights, as an ONNX graph the judge checks and runs itself."""
    return export_graph(_with_weights(state, which), (torch.zeros(1, 1),), ["x"], ["y"])
