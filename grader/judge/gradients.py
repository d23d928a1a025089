"""Gradient comparisons for checks: against autograd, and against central finite differences in float64.

A gradient is a dict {name: tensor}. The judge computes the reference with `autograd_gradients` on its own
function, or with `finite_difference_gradients` where autograd itself is in question (small inputs only: two
evaluations per entry). For big parameters, `random_directions` + `perturbed` give the points at which to ask
the contestant for loss values, and `directional_derivatives` turns those values into derivatives along each
direction, to compare with `gradient_dot(reference, direction)`: 2 evaluations per direction, whatever the size.

Tolerances: central differences in float64 with eps = 1e-6 have a truncation error of O(eps^2) and a rounding
error of about 1e-16 / eps = 1e-10 (times the function's magnitude), so atol 1e-6 + rtol 1e-5 is safe for
smooth losses of moderate size. Autograd-vs-autograd in float32 needs about atol 1e-5 + rtol 1e-4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from grader.judge.outcome import fail
from grader.judge.tensors import shape_str

Tensors = Mapping[str, torch.Tensor]
ScalarFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]
FD_EPS = 1e-6


def _float64(inputs: Tensors) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float64).clone() for k, v in inputs.items()}


def autograd_gradients(fn: ScalarFn, inputs: Tensors) -> dict[str, torch.Tensor]:
    """d fn / d inputs by autograd, in float64. `fn` takes a dict like `inputs` and returns a scalar."""
    leaves = {k: v.requires_grad_(True) for k, v in _float64(inputs).items()}
    out = fn(leaves)
    if out.numel() != 1:
        raise ValueError(f"the function returned shape {shape_str(out.shape)}; gradients need a scalar")
    grads = torch.autograd.grad(out.reshape(()), list(leaves.values()), allow_unused=True)
    pairs = zip(leaves.items(), grads, strict=True)
    return {k: (torch.zeros_like(v) if g is None else g.detach()) for (k, v), g in pairs}


def finite_difference_gradients(fn: ScalarFn, inputs: Tensors, eps: float = FD_EPS) -> dict[str, torch.Tensor]:
    """d fn / d inputs by central differences (f(x + eps e_i) - f(x - eps e_i)) / 2 eps, entry by entry, in
    float64. Costs two evaluations per entry: for small inputs (a few thousand entries at most)."""
    point = _float64(inputs)
    grads = {}
    with torch.no_grad():
        for name, value in point.items():
            g = torch.zeros_like(value).reshape(-1)
            flat = value.reshape(-1)  # a view: writing into it moves the point
            for i in range(flat.numel()):
                saved = float(flat[i])
                flat[i] = saved + eps
                plus = float(fn(point))
                flat[i] = saved - eps
                minus = float(fn(point))
                flat[i] = saved
                g[i] = (plus - minus) / (2 * eps)
            grads[name] = g.reshape(value.shape)
    return grads


def random_directions(inputs: Tensors, count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """`count` float64 directions shaped like `inputs`, each of unit norm over all tensors together."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        d = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in inputs.items()}
        norm = torch.sqrt(torch.stack([(t**2).sum() for t in d.values()]).sum())
        out.append({k: t / norm for k, t in d.items()})
    return out


def perturbed(inputs: Tensors, direction: Tensors, eps: float = FD_EPS) -> tuple[dict, dict]:
    """The two float64 points inputs + eps * direction and inputs - eps * direction."""
    base = _float64(inputs)
    return ({k: v + eps * direction[k] for k, v in base.items()}, {k: v - eps * direction[k] for k, v in base.items()})


def directional_derivatives(plus: list[float], minus: list[float], eps: float = FD_EPS) -> list[float]:
    """Central differences (f(x + eps d) - f(x - eps d)) / 2 eps, one per direction."""
    return [(float(p) - float(m)) / (2 * eps) for p, m in zip(plus, minus, strict=True)]


def gradient_dot(grad: Tensors, direction: Tensors) -> float:
    """<grad, direction> over all tensors: the derivative along `direction` that `grad` predicts."""
    return float(sum((grad[k].double() * direction[k].double()).sum() for k in direction))


def gradient_mismatch(got: Any, want: Tensors, atol: float, rtol: float) -> str | None:
    """None if every tensor of `got` matches `want` within atol + rtol * |want|; else what differs first."""
    if not isinstance(got, Mapping):
        return f"got a {type(got).__name__}; expected gradients for {', '.join(want)}"
    for name, w in want.items():
        g = got.get(name)
        if g is None:
            return f"no gradient for {name} (is it a leaf with requires_grad=True, used in the loss?)"
        if not isinstance(g, torch.Tensor):
            return f"the gradient for {name} is a {type(g).__name__}; expected a tensor"
        if tuple(g.shape) != tuple(w.shape):
            return f"the gradient for {name} has shape {shape_str(g.shape)}; expected {shape_str(w.shape)}"
        g64, w64 = g.double(), w.double()
        bad = ~torch.isclose(g64, w64, atol=atol, rtol=rtol) | ~torch.isfinite(g64)
        if bad.any():
            idx = tuple(int(i) for i in bad.nonzero()[0])
            return (
                f"d/d{name}{list(idx)} is {g64[idx].item():.6g}; expected {w64[idx].item():.6g} "
                f"({int(bad.sum())} of {bad.numel()} entries differ by more than {atol:g} + {rtol:g}*|expected|; "
                f"largest difference {float((g64 - w64).abs().nan_to_num(float('inf')).max()):.3g})"
            )
    return None


def expect_gradients_match(got: Any, want: Tensors, what: str, atol: float, rtol: float) -> None:
    """Fail with a message naming the first entry of the first tensor that differs."""
    if problem := gradient_mismatch(got, want, atol, rtol):
        fail(f"{what}: {problem}")


def expect_directional_match(
    measured: list[float], predicted: list[float], what: str, atol: float = 1e-6, rtol: float = 1e-5
) -> None:
    """Compare finite-difference derivatives (`measured`) with a gradient's predictions, direction by direction."""
    if len(measured) != len(predicted):
        fail(f"{what}: {len(measured)} finite differences for {len(predicted)} directions")
    for i, (m, p) in enumerate(zip(measured, predicted, strict=True)):
        if not (abs(m - p) <= atol + rtol * abs(p)):  # `not <=` so that NaN fails too
            fail(f"{what}: along direction {i + 1} of {len(predicted)} the central difference is {m:.6g}; the "
                 f"reference gradient predicts {p:.6g} (allowed {atol:g} + {rtol:g}*|predicted|)")  # fmt: skip
