"""softmax probes: run inside the sandbox next to the student's softmax.py and return plain data only.

The judge sends every input (logits, images, W and b); probes that need parameters set the module's globals
W and b to copies of the judge's, since the student's net() reads them.

One bug is charged once: a probe that tests one function puts the reference in place of the student's other
functions it calls (`_stand_ins`), so a wrong softmax is charged by the softmax check alone, not again by
net's, the gradient's and training's.
"""

from contextlib import contextmanager

import torch

from grader.contestant import export_graph, probe, student


def _softmax():
    return student("softmax")


def ref_softmax(X):
    return torch.softmax(X, dim=1)


def ref_net(X):
    m = _softmax()
    return ref_softmax(X.reshape(-1, m.W.shape[0]) @ m.W + m.b)


def ref_cross_entropy(y_hat, y):
    return -torch.log(y_hat.gather(1, y.reshape(-1, 1)).squeeze(1))


def ref_sgd(params, lr, batch_size):
    with torch.no_grad():
        for p in params:
            p -= lr * p.grad / batch_size
            p.grad.zero_()


REFERENCE = {"softmax": ref_softmax, "net": ref_net, "cross_entropy": ref_cross_entropy, "sgd": ref_sgd}


@contextmanager
def _stand_ins(m, *names):
    """The reference in place of the student's `names` for the duration (the student's functions look each
    other up in the module's globals, so they call the stand-ins)."""
    saved = {n: getattr(m, n, None) for n in names}
    for n in names:
        setattr(m, n, REFERENCE[n])
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(m, n, f)


def _keeps_graph(fn, *args):
    """Whether fn's output still carries autograd's graph back to its first input, which is computed from the
    parameters as in training (not a leaf: an in-place `X -= X.max(...)` works on it, as on net(X))."""
    x = args[0].clone().requires_grad_(True) * 1.0  # (same shape): the graph's first node
    out = fn(x, *args[1:])
    return isinstance(out, torch.Tensor) and out.requires_grad


def _set_params(m, W, b):
    m.W = W.clone().requires_grad_(True)
    m.b = b.clone().requires_grad_(True)
    return m.W, m.b


@probe
def softmax_values(X):
    with torch.no_grad():
        return _softmax().softmax(X)


@probe
def softmax_keeps_graph(X):
    return _keeps_graph(_softmax().softmax, X)


@probe
def cross_entropy_values(y_hat, y):
    with torch.no_grad():
        return _softmax().cross_entropy(y_hat, y)


@probe
def cross_entropy_keeps_graph(y_hat, y):
    return _keeps_graph(_softmax().cross_entropy, y_hat, y)


@probe
def accuracy_value(y_hat, y):
    return float(_softmax().accuracy(y_hat, y))


@probe
def sgd_step(params, grads, lr, batch_size):
    """The student's sgd on leaf tensors with the judge's gradients; what the ORIGINAL tensors hold afterwards."""
    ps = [p.clone().requires_grad_(True) for p in params]
    for p, g in zip(ps, grads, strict=True):
        p.grad = g.clone()
    originals = list(ps)  # sgd may rebind list items; an in-place update changes these very tensors
    _softmax().sgd(ps, lr, batch_size)
    return {
        "params": [p.detach() for p in originals],
        "grads": [None if p.grad is None else p.grad.detach() for p in originals],
        "requires_grad": [bool(p.requires_grad) for p in originals],
    }


@probe
def net_output(X, W, b):
    """The student's net, with the reference softmax: net's own part (flatten, X W + b) is what is tested."""
    m = _softmax()
    _set_params(m, W, b)
    with torch.no_grad(), _stand_ins(m, "softmax"):
        return m.net(X)


@probe
def loss_gradient(X, y, W, b):
    """The summed loss through the student's net (reference softmax and cross_entropy), and its gradient by
    autograd: whether net lets the gradient reach W and b."""
    m = _softmax()
    W, b = _set_params(m, W, b)
    with _stand_ins(m, "softmax", "cross_entropy"):
        loss = m.cross_entropy(m.net(X), y).sum()
        loss.backward()
    return {"loss": float(loss.detach()), "W": W.grad, "b": b.grad}


@probe
def loss_values(X, y, points):
    """The summed loss at each {"W", "b"} in `points` (the judge's finite-difference points)."""
    m = _softmax()
    out = []
    for point in points:
        _set_params(m, point["W"], point["b"])
        with torch.no_grad():
            out.append(float(m.cross_entropy(m.net(X), y).sum()))
    return out


class _StudentNet(torch.nn.Module):
    """The student's net() with softmax.pth's W and b as parameters (net reads the module's globals W and b)."""

    def __init__(self, W, b):
        super().__init__()
        self.W, self.b = torch.nn.Parameter(W), torch.nn.Parameter(b)

    def forward(self, X):
        m = _softmax()
        m.W, m.b = self.W, self.b
        return m.net(X)


@probe
def model_outputs(state, inputs):
    """The student's net's outputs with softmax.pth's W and b: tells the judge whether the reference computes the
    same (it never grades these numbers)."""
    with torch.no_grad():
        return [_StudentNet(state["W"], state["b"])(*inputs)]


@probe
def export_model(state):
    """The student's net with softmax.pth's W and b, as an ONNX graph the judge checks and runs itself."""
    return export_graph(_StudentNet(state["W"], state["b"]), (torch.zeros(1, 1, 28, 28),), ["X"], ["probabilities"])


@probe
def train_epoch(X, y, W, b, lr, batch_size):
    """One epoch of train_epoch with the student's sgd, from the judge's W and b, and the reference softmax, net
    and cross_entropy (each has its own check): training with the student's sgd; the parameters after it."""
    m = _softmax()
    _set_params(m, W, b)
    with _stand_ins(m, "softmax", "net", "cross_entropy"):
        m.train_epoch(X, y, lr, batch_size)
    return {"W": m.W.detach(), "b": m.b.detach()}
