"""exp2 probes: run inside the sandbox next to the student's exp2.py and return plain data only."""

import torch
import torch.nn.functional as F
from torch import nn

from grader.contestant import export_graph, number, probe, student, uncompiled


def _exp2():
    return student("exp2")


@probe
def normalized(x):
    """The student's normalize() on uint8 images: how their training prepares an image (the judge reads the
    per-channel mean and std off it, and measures their model with those)."""
    return _exp2().normalize(x)


@probe
def describe_model(x):
    """Output for x, parameter count, and the state_dict's keys and shapes of a fresh ResNet20()."""
    model = _exp2().ResNet20()
    model.eval()
    with torch.no_grad():
        out = model(x)
    return {
        "output": out,
        "num_params": int(sum(p.numel() for p in model.parameters())),
        "state": {k: list(v.shape) for k, v in model.state_dict().items()},
    }


def _with_weights(state):
    """The student's ResNet20 with the judge's weights (final.pth's), in eval mode."""
    model = uncompiled(_exp2().ResNet20())
    model.load_state_dict(state)
    model.eval()
    return model


@probe
def model_outputs(state, inputs):
    """The student's model's outputs with final.pth's weights: tells the judge whether the reference computes
    the same (it never grades these numbers)."""
    with torch.no_grad():
        return [_with_weights(state)(*inputs)]


@probe
def export_model(state):
    """The student's model with final.pth's weights, as an ONNX graph the judge checks and runs itself."""
    return export_graph(_with_weights(state), (torch.zeros(1, 3, 32, 32),), ["x"], ["logits"])


@probe
def gradient_norms(x, y):
    """One forward/backward pass of cross-entropy; the gradient norm of every parameter (None: no gradient)."""
    model = _exp2().ResNet20()
    model.train()
    F.cross_entropy(model(x), y).backward()
    return {
        name: (None if p.grad is None else float(p.grad.detach().double().norm()))
        for name, p in model.named_parameters()
    }


def _small_cnn() -> nn.Module:
    """A fixed small CNN (with BatchNorm), so the checks of train_step, evaluate and the checkpoints grade those
    functions alone: a mistake in the student's ResNet20 is charged once, by the architecture check."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # (N, 16, 32, 32)
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),  # (N, 16, 4, 4)
        nn.Flatten(),  # (N, 256)
        nn.Linear(256, 10),  # (N, 10)
    )


@probe
def train_steps(x, y, init_state, steps, lr):
    """`steps` calls of the student's train_step on one fixed batch, from the judge's weights, with SGD; the
    weights they leave (the judge measures the loss before and after itself), and whether that SGD was stepped."""
    m = _exp2()
    model = _small_cnn()
    model.load_state_dict(init_state)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    kwargs, signature = _train_step_args(m.train_step, model, optimizer, x, y)
    for _ in range(steps):
        if kwargs is None:
            m.train_step(model, optimizer, x, y)
        else:
            m.train_step(**kwargs)
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "stepped": any(bool(s) for s in optimizer.state.values()), "signature": signature}


# What a train_step that differs from the handout's (model, optimizer, x, y) calls its parameters
_ROLES = {"model": ("model", "net", "network"),
          "x": ("x", "inputs", "input", "images", "imgs", "data", "xb", "batch_x"),
          "y": ("y", "labels", "label", "targets", "target", "yb", "batch_y")}


def _role(name):
    low = name.lower()
    role = next((r for r, names in _ROLES.items() if low in names), None)
    return role or ("optimizer" if low.startswith("opt") else "loss" if "crit" in low or "loss" in low
                    else "device" if "device" in low else None)  # fmt: skip


def _train_step_args(fn, model, optimizer, x, y):
    """(None, None) to call train_step as the handout does, train_step(model, optimizer, x, y). Where its
    parameters, by their names, are those in another order or with a loss (criterion, loss_fn) or a device added:
    the keyword arguments to call it with (the loss is cross-entropy), and its signature as written."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None, None
    roles = [_role(p.name) for p in params]
    required = [r for p, r in zip(params, roles, strict=True) if p.default is p.empty]
    if None in required or any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return None, None  # a parameter the judge cannot fill: called as the handout does, it says what is wrong
    if roles[:4] == ["model", "optimizer", "x", "y"] and len(required) <= 4:
        return None, None  # the handout's, maybe with parameters of its own that have defaults
    value = {"model": model, "optimizer": optimizer, "x": x, "y": y, "loss": nn.CrossEntropyLoss(),
             "device": x.device}  # fmt: skip
    kwargs = {p.name: value[r] for p, r in zip(params, roles, strict=True) if r}
    return kwargs, f"train_step{inspect.signature(fn)}"


@probe
def schedule(epochs):
    return [float(_exp2().lr_for_epoch(e)) for e in range(epochs)]


def _history(restored):
    """The history resume() returned, as plain data: lists of numbers (None where an entry is none)."""
    if not isinstance(restored, dict):
        return {}
    return {str(k): [number(v) for v in vals] if isinstance(vals, (list, tuple)) else []
            for k, vals in restored.items()}


@probe
def checkpoint_roundtrip(epoch, history):
    """save_checkpoint a model, then resume() it into a differently initialised one."""
    m = _exp2()
    torch.manual_seed(0)
    model = _small_cnn()  # not the student's ResNet20: this grades save_checkpoint and resume alone
    m.save_checkpoint("probe_checkpoint.pth", model, epoch, history)
    with open("probe_checkpoint.pth", "rb") as f:
        saved = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)

    def resumed():
        """resume() into a differently initialised model: (that model, its optimizer, what resume() returned)."""
        torch.manual_seed(12345)
        fresh = _small_cnn()
        optimizer = m.make_optimizer(fresh)
        return fresh, optimizer, m.resume("probe_checkpoint.pth", fresh, optimizer)

    try:
        fresh, optimizer, returned = resumed()
        resume_error = ""
    except Exception as exc:  # noqa: BLE001 - the student's resume() may raise anything
        # A whole model under 'net' that the student's own torch.load(..., weights_only=True) refuses: one slip, in
        # save_checkpoint; resume() is then checked on the handout's form of the same checkpoint
        try:
            ckpt = torch.load("probe_checkpoint.pth", weights_only=False)  # the student's own file, in the sandbox
        except Exception:  # noqa: BLE001 - then resume()'s own error is the one to report
            ckpt = None
        if not (isinstance(ckpt, dict) and isinstance(ckpt.get("net"), torch.nn.Module)):
            raise
        said = (str(exc).strip().splitlines() or [""])[0]
        resume_error = type(exc).__name__ + (f": {said[:80]}{'...' if len(said) > 80 else ''}" if said else "")
        torch.save({**ckpt, "net": ckpt["net"].state_dict()}, "probe_checkpoint.pth")
        fresh, optimizer, returned = resumed()
    start, restored = returned
    want, got = model.state_dict(), fresh.state_dict()
    diff = max(float((want[k].double() - got[k].double()).abs().max()) for k in want if k in got)
    return {
        "file": saved,
        "start": int(start),
        "history": _history(restored),
        "lr": float(optimizer.param_groups[0]["lr"]),
        "max_weight_diff": diff,
        "resume_error": resume_error,
    }


@probe
def evaluate_accuracy(x, flip_fraction, train_mode=True):
    """The student's evaluate() on labels whose true accuracy is known: the model's own eval-mode
    predictions, with the first `flip_fraction` of them made wrong. BatchNorm statistics are warmed on
    other data first, so evaluating in train mode gives a different answer, and the model arrives in train
    mode, as it does after a training epoch: evaluate() must switch to eval mode itself. With
    train_mode=False it arrives in eval mode, which tells a missing model.eval() from other mistakes."""
    m = _exp2()
    model = _small_cnn()  # not the student's ResNet20: this grades evaluate() alone
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(m.normalize(x.flip(0)) * 0.5 + 0.3)
    model.eval()
    with torch.no_grad():
        labels = model(m.normalize(x)).argmax(dim=1)  # (N,)
    k = int(len(labels) * flip_fraction)
    labels[:k] = (labels[:k] + 1) % 10
    model.train(train_mode)
    return {"student": float(m.evaluate(model, x, labels)), "expected": 100.0 * (len(labels) - k) / len(labels)}


@probe
def rerun(subset):
    """Run the student's own main() for one epoch on `subset` images; return the checkpoint's bytes."""
    import os

    _exp2().main(["--data-root", os.environ["GRADER_DATA_ROOT"], "--epochs", "1", "--subset", str(subset),
                  "--out", "rerun.pth"])  # fmt: skip
    with open("rerun.pth", "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
