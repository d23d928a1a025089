"""Judge-side checks on values the contestant sent back: each failure says expected vs got."""

from __future__ import annotations

from typing import Any

import torch

from grader.judge.outcome import fail


def shape_str(shape: Any) -> str:
    dims = tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def expect_tensor(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        fail(f"{what} returned a {type(value).__name__}; expected a torch.Tensor")
    return value


def expect_shape(value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    t = expect_tensor(value, what)
    if tuple(t.shape) != tuple(shape):
        fail(f"{what} returned shape {shape_str(t.shape)}; expected {shape_str(shape)}")
    return t


def expect_finite(t: torch.Tensor, what: str) -> torch.Tensor:
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        fail(f"{what} holds {bad} NaN or infinite value(s); expected only finite numbers")
    return t


def first_mismatch(got: torch.Tensor, want: torch.Tensor, x: torch.Tensor, atol: float, rtol: float) -> str | None:
    """None if `got` matches `want` within atol + rtol*|want|, else a message naming the first bad point."""
    got64, want64 = got.double().reshape(-1), want.double().reshape(-1)
    bad = ~torch.isclose(got64, want64, atol=atol, rtol=rtol) | ~torch.isfinite(got64)
    if not bad.any():
        return None
    i = int(bad.nonzero()[0])
    return (
        f"at x={x.reshape(-1)[i].item():.4g} got {got64[i].item():.6g}; expected {want64[i].item():.6g} "
        f"({int(bad.sum())} of {bad.numel()} points differ by more than {atol:g} + {rtol:g}*|expected|)"
    )
