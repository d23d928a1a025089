"""exp1 probes: run inside the sandbox, next to the student's exp1.py, and return plain data.

The judge decides every input (points, seeds, step budgets) and checks every output against the reference.
"""

import torch

from grader.contestant import probe, student


def _exp1():
    return student("exp1")


def _mse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float(((pred.reshape(y.shape) - y) ** 2).mean())


@probe
def f_values(x):
    return _exp1().f(x)


@probe
def custom_values(x):
    return _exp1().custom_f(x)


@probe
def model_output(x):
    model = _exp1().build_model()
    with torch.no_grad():
        return model(x)


def _reference_mlp() -> torch.nn.Module:
    """The handout's MLP (1 -> 64 -> 64 -> 1, tanh), so the training check grades train() alone: a mistake in the
    student's model is charged once, by the shape and fit checks."""
    return torch.nn.Sequential(
        torch.nn.Linear(1, 64), torch.nn.Tanh(),  # (N, 1) -> (N, 64)
        torch.nn.Linear(64, 64), torch.nn.Tanh(),  # (N, 64) -> (N, 64)
        torch.nn.Linear(64, 1),  # (N, 64) -> (N, 1)
    )  # fmt: skip


@probe
def train_curve(x, y, num_epochs, lr):
    """MSE of a fresh reference MLP before and after the student's train()."""
    m = _exp1()
    model = _reference_mlp()
    with torch.no_grad():
        before = _mse(model(x), y)
    losses = m.train(model, x, y, num_epochs, lr)
    with torch.no_grad():
        after = _mse(model(x), y)
    try:
        losses = [float(v) for v in losses]
    except TypeError:
        losses = None
    return {"before": before, "after": after, "losses": losses}


@probe
def settings():
    m = _exp1()
    names = ("NUM_TRAIN_SAMPLES", "NUM_TRAIN_EPOCHS", "LEARNING_RATE", "X_MIN", "X_MAX")
    out = {n: (v if isinstance(v := getattr(m, n, None), (int, float, str, type(None))) else repr(v)) for n in names}
    x, _ = m.make_data(m.f)  # the data the student's main() would train on
    out["samples_made"] = int(x.shape[0])
    return out


@probe
def predict(state_dict, x, which):
    """Load the judge-provided state_dict (read by the judge with weights_only) into the student's model."""
    m = _exp1()
    model = m.build_model() if which == "default" else m.build_custom_model()
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"model.pth[{which!r}] does not fit {'build_model' if which == 'default' else 'build_custom_model'}(): "
            f"missing keys {result.missing_keys[:5]}, unexpected keys {result.unexpected_keys[:5]}"
        )
    model.eval()
    with torch.no_grad():
        return model(x)
