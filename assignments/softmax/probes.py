"""softmax probes: run inside the sandbox next to the student's softmax.py and return plain data only.

The judge sends every input (logits, images, W and b); probes that need parameters set the module's globals
W and b to copies of the judge's, since the student's net() reads them.
"""

import torch

from grader.contestant import probe, student


def _softmax():
    return student("softmax")


def _set_params(m, W, b):
    m.W = W.clone().requires_grad_(True)
    m.b = b.clone().requires_grad_(True)
    return m.W, m.b


@probe
def softmax_values(X):
    with torch.no_grad():
        return _softmax().softmax(X)


@probe
def cross_entropy_values(y_hat, y):
    with torch.no_grad():
        return _softmax().cross_entropy(y_hat, y)


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
    m = _softmax()
    _set_params(m, W, b)
    with torch.no_grad():
        return m.net(X)


@probe
def loss_gradient(X, y, W, b):
    """The summed loss through the student's net and cross_entropy, and its gradient by autograd."""
    m = _softmax()
    W, b = _set_params(m, W, b)
    loss = m.cross_entropy(m.net(X), y).sum()
    loss.backward()
    return {"loss": float(loss), "W": W.grad, "b": b.grad}


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


@probe
def train_epoch(X, y, W, b, lr, batch_size):
    """One epoch of the student's train_epoch, in order, from the judge's W and b; the parameters after it."""
    m = _softmax()
    _set_params(m, W, b)
    m.train_epoch(X, y, lr, batch_size)
    return {"W": m.W.detach(), "b": m.b.detach()}
