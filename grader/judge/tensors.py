"""Judge-side checks on values the contestant sent back: each failure says expected vs got."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import AfterValidator

from grader.judge.outcome import fail


def shape_str(shape: Any) -> str:
    dims = tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def tensor(*, dtype: torch.dtype | None = None, ndim: int | None = None, shape: tuple[int, ...] | None = None) -> Any:
    """A `returns=` type for `contestant.call`: a tensor, of `dtype`, `ndim` dimensions or `shape` when given."""

    def check(t: torch.Tensor) -> torch.Tensor:
        if dtype is not None and t.dtype != dtype:
            raise ValueError(f"a tensor of dtype {t.dtype}; expected {dtype}")
        if ndim is not None and t.dim() != ndim:
            raise ValueError(f"a tensor with {t.dim()} dimension(s); expected {ndim}")
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise ValueError(f"a tensor of shape {shape_str(t.shape)}; expected {shape_str(shape)}")
        return t

    return Annotated[torch.Tensor, AfterValidator(check)]


# The bytes of a file written in the sandbox (e.g. a checkpoint), as the probes send them.
FileBytes = tensor(dtype=torch.uint8, ndim=1)


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
    if got64.numel() != want64.numel():
        return f"got {got64.numel()} values; expected {want64.numel()}"
    bad = ~torch.isclose(got64, want64, atol=atol, rtol=rtol) | ~torch.isfinite(got64)
    if not bad.any():
        return None
    i = int(bad.nonzero()[0])
    return (
        f"at x={x.reshape(-1)[i].item():.4g} got {got64[i].item():.6g}; expected {want64[i].item():.6g} "
        f"({int(bad.sum())} of {bad.numel()} points differ by more than {atol:g} + {rtol:g}*|expected|)"
    )


def expect_shapes(
    values: Any, shapes: Sequence[tuple[int, ...]], names: Sequence[str], what: str
) -> list[torch.Tensor]:
    """A list of tensors with one expected shape each (e.g. a model's parameters); fails on the first that differs."""
    if not isinstance(values, (list, tuple)):
        fail(f"{what} returned a {type(values).__name__}; expected a list of {len(shapes)} tensors "
             f"({', '.join(names)})")  # fmt: skip
    if len(values) != len(shapes):
        fail(f"{what} returned {len(values)} item(s); expected {len(shapes)} ({', '.join(names)})")
    return [expect_shape(v, s, f"{what}: {n}") for v, s, n in zip(values, shapes, names, strict=True)]


def collapse_repeats(shapes: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Drop each shape equal to the one before it: activations keep their input's shape, so a trace of every
    layer's output collapses to the shapes where something changed."""
    out: list[tuple[int, ...]] = []
    for s in shapes:
        if not out or out[-1] != tuple(s):
            out.append(tuple(s))
    return out


def shape_trace_mismatch(
    got: Sequence[Sequence[int]], want: Sequence[Sequence[int]], names: Sequence[str]
) -> str | None:
    """None if the traces agree; else a message naming the first step (by `names`) whose shape differs."""
    got_t, want_t = [tuple(s) for s in got], [tuple(s) for s in want]
    for i, (g, w) in enumerate(zip(got_t, want_t, strict=False)):
        if g != w:
            name = names[i] if i < len(names) else f"step {i + 1}"
            return f"after {name} the shape is {shape_str(g)}; expected {shape_str(w)}"
    if len(got_t) != len(want_t):
        shown = " -> ".join(shape_str(s) for s in got_t)
        return f"{len(got_t)} shape changes ({shown}); expected {len(want_t)}"
    return None


def expect_shape_trace(got: Any, want: Sequence[Sequence[int]], names: Sequence[str], what: str) -> None:
    """Fail unless `got` (a list of shapes, e.g. each layer's output) equals `want` step by step."""
    if not isinstance(got, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in got):
        fail(f"{what}: expected a list of shapes, got a {type(got).__name__}")
    if problem := shape_trace_mismatch(got, want, names):
        fail(f"{what}: {problem}")


def renamed_keys(state: dict[str, Sequence[int]], reference: dict[str, Sequence[int]], limit: int = 3) -> str | None:
    """'stem.0.weight for conv1.weight, ...' when a state_dict's shapes (by key) are the reference's in the same
    order under other names: the same network, named or indexed its own way. None otherwise."""
    if len(state) != len(reference) or [list(v) for v in state.values()] != [list(v) for v in reference.values()]:
        return None
    pairs = [(k, r) for k, r in zip(state, reference, strict=True) if k != r]
    # One example of each distinct rename first (downsample for shortcut, fc for linear), so that a student who
    # fixes what the message shows is not surprised by a second rename hidden among the first's many keys.
    firsts: dict[tuple[tuple[str, str], ...], tuple[str, str]] = {}
    for k, r in pairs:
        firsts.setdefault(_rename(k, r), (k, r))
    shown = list(firsts.values())[:limit]
    shown += [p for p in pairs if p not in shown][: limit - len(shown)]
    more = len(pairs) - len(shown)
    return ", ".join(f"{k} for {r}" for k, r in shown) + (f" and {more} more" if more else "")


def _rename(key: str, ref: str) -> tuple[tuple[str, str], ...]:
    """The dotted parts that differ between two keys of one depth (('downsample', 'shortcut'),); the whole keys
    where the depths differ."""
    a, b = key.split("."), ref.split(".")
    if len(a) != len(b):
        return ((key, ref),)
    return tuple((x, y) for x, y in zip(a, b, strict=True) if x != y)
