"""lenet probes: run inside the sandbox next to the student's lenet.py and return plain data only.

The training and evaluation probes use a fixed small model of their own, so those checks grade train_epoch
and evaluate_accuracy alone, not the student's LeNet.
"""

import torch
from torch import nn

from grader.contestant import export_graph, probe, student, uncompiled


def _lenet():
    return student("lenet")


def _build():
    """build_lenet(), its lazy layers (nn.LazyConv2d, nn.LazyLinear, as the current d2l writes LeNet) given their
    shapes by one forward pass on a blank image, as d2l's apply_init does before initializing."""
    net = _lenet().build_lenet()
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in net.parameters()):
        with torch.no_grad():
            net(torch.zeros(1, 1, 28, 28))  # (1, 1, 28, 28): Fashion-MNIST's shape
    return net


@probe
def layer_shapes(x):
    """The output shape of every torch operation build_lenet()'s forward runs on x, in order: a layer written as a
    module (nn.AvgPool2d) or as a call in the student's own forward (F.avg_pool2d) alike."""
    from torch.overrides import TorchFunctionMode

    net = _build()
    shapes, names = [], []

    class Trace(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))  # the mode is off inside: only the forward's own calls are traced
            if isinstance(out, torch.Tensor) and len(shapes) < 1000:
                shapes.append(list(out.shape))
                names.append(str(getattr(func, "__name__", func))[:40])
            return out

    net.eval()
    with torch.no_grad(), Trace():
        out = net(x)
    return {"shapes": shapes, "names": names, "output": list(out.shape)}


@probe
def describe():
    net = _build()
    return {
        "num_params": int(sum(p.numel() for p in net.parameters())),
        "state": {k: list(v.shape) for k, v in net.state_dict().items()},
    }


@probe
def initialised_weights():
    """The weight of every Conv2d and Linear layer after net.apply(init_weights), with its fans."""
    net = _build()
    net.apply(_lenet().init_weights)
    out = {}
    for name, module in net.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            out[name] = module.weight.detach()
    return out


def _with_weights(state):
    net = uncompiled(_build())
    net.load_state_dict(state)
    net.eval()
    return net


@probe
def model_outputs(state, inputs):
    """The student's LeNet's outputs with lenet.pth's weights: tells the judge whether the reference computes the
    same (it never grades these numbers)."""
    with torch.no_grad():
        return [_with_weights(state)(*inputs)]


@probe
def export_model(state):
    """The student's LeNet with lenet.pth's weights, as an ONNX graph the judge checks and runs itself."""
    return export_graph(_with_weights(state), (torch.zeros(1, 1, 28, 28),), ["x"], ["logits"])


@probe
def forward_logits(state, x):
    """build_lenet() with the judge's weights loaded (strictly), in eval mode, on x."""
    net = _build()
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return net(x)


def _small_model(dropout: bool) -> nn.Module:
    # With dropout, train mode and eval mode disagree, so evaluating in train mode shows.
    if dropout:
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(784, 10))  # (N, 784) -> (N, 10)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))  # (N, 784) -> (N, 10)


@probe
def evaluate_known(x, flip_fraction, train_mode=True):
    """The student's evaluate_accuracy on labels whose accuracy is known: the model's own eval-mode predictions
    with the first `flip_fraction` of them made wrong. `train_mode=False` hands the model over in eval mode, which
    tells a function that never calls net.eval() from one that counts something else."""
    m = _lenet()
    model = _small_model(dropout=True)
    model.eval()
    with torch.no_grad():
        labels = model(x).argmax(dim=1)  # (N,)
    k = int(len(labels) * flip_fraction)
    labels[:k] = (labels[:k] + 1) % 10
    model.train(train_mode)  # the student's function must switch to eval mode itself
    return {"student": float(m.evaluate_accuracy(model, x, labels)), "expected": (len(labels) - k) / len(labels)}


@probe
def train_small(x, y, lr, batch_size):
    """One epoch of the student's train_epoch on a fixed small model, in order; its weights before and after."""
    model = _small_model(dropout=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _lenet().train_epoch(model, x, y, lr, batch_size)
    return {"before": before, "after": dict(model.state_dict())}
