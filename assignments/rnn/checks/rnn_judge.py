"""The corpus, vocabulary and fixed inputs shared by rnn's public and hidden checks (judge side only).

The vocabulary is rebuilt here exactly as rnn.py's given Vocab builds it: '<unk>', then the characters by
frequency (ties alphabetical), from d2l's preprocessing of the book (grader.data.read_time_machine).
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import AfterValidator
from typing_extensions import TypedDict

from grader.data import read_time_machine
from grader.judge import ContestantError

PARAM_NAMES = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")
INIT_STD, STD_TOLERANCE = 0.01, 0.2  # W_* from N(0, 0.01^2); a sample std within 20% (W_hq has 1,792 entries)
ORDER_HIDDENS = 64  # hidden units when asking get_params for its order: all five shapes differ from the vocabulary's


def init_problem(params: list[torch.Tensor]) -> str | None:
    """What is wrong with get_params's values, in the handout's order: weights from N(0, 0.01^2), biases zero."""
    for name, p in zip(PARAM_NAMES, params, strict=True):
        if name.startswith("b") and bool(p.abs().max() > 0):
            return f"get_params: {name} should start at zero"
        if name.startswith("W") and abs(float(p.std()) - INIT_STD) > STD_TOLERANCE * INIT_STD:
            return f"get_params: {name} has std {float(p.std()):.4g}; expected weights from N(0, {INIT_STD:g}^2)"
    return None


class _ParamShapes(TypedDict):
    """What the param_shapes probe returns: get_params's tensors and their requires_grad, and init_rnn_state's
    value (a list of its tensors if it is a tuple or list, else the value itself) and type name."""

    params: list[torch.Tensor]
    requires_grad: list[bool]
    state: Any  # whatever init_rnn_state returned when not a tuple or list; the check says what it got
    state_type: str
    params_type: str  # what get_params returned: list or tuple (the handout's), or dict (its values are `params`)


def _flag_per_param(r: _ParamShapes) -> _ParamShapes:
    if len(r["requires_grad"]) != len(r["params"]):
        raise ValueError("expected one requires_grad flag per parameter")
    return r


ParamShapes = Annotated[_ParamShapes, AfterValidator(_flag_per_param)]


class RnnStep(TypedDict):
    """What the rnn_step and forward probes return: the outputs, and the new state (a list of its tensors if it
    is a tuple or list, else the value itself)."""

    Y: torch.Tensor
    state: Any  # whatever the student's rnn returned as its state when not a tuple or list; the checks say what


def stacked(Y: Any, steps: int, batch: int, vocab_size: int) -> bool:
    """Whether outputs Y are laid out (steps, batch, vocab), torch.stack of the steps' outputs, where the handout
    concatenates them along dim 0 to (steps * batch, vocab)."""
    return isinstance(Y, torch.Tensor) and tuple(Y.shape) == (steps, batch, vocab_size)


# What forward_shapes says of that layout, and what the checks that defer to it say.
STACKED = ("rnn() returns its steps' outputs stacked, shape (steps, batch, vocab), where the handout concatenates "
           "them along dim 0 to (steps * batch, vocab), the layout the given train_epoch's loss and predict read: "
           "return torch.cat(outputs, dim=0), not torch.stack(outputs)")  # fmt: skip
STACKED_SHORT = "rnn() returns its outputs stacked, (steps, batch, vocab), not concatenated to (steps * batch, vocab)"


@functools.lru_cache(maxsize=2)
def vocabulary(data_root: Path) -> tuple[str, ...]:
    lines = read_time_machine(data_root)
    counter = collections.Counter(ch for line in lines for ch in line)
    return ("<unk>", *sorted(counter, key=lambda ch: (-counter[ch], ch)))


@functools.lru_cache(maxsize=2)
def corpus(data_root: Path) -> torch.Tensor:
    """The book as token indices (170,580 of them), the lines concatenated as d2l does."""
    index = {tok: i for i, tok in enumerate(vocabulary(data_root))}
    return torch.tensor([index[ch] for line in read_time_machine(data_root) for ch in line])


def param_shapes(vocab_size: int, num_hiddens: int) -> list[tuple[int, ...]]:
    v, h = vocab_size, num_hiddens
    return [(v, h), (h, h), (h,), (h, v), (v,)]


def order_of(got: list[tuple[int, ...]], want: list[tuple[int, ...]]) -> list[int] | None:
    """Where a get_params that returns the five tensors in another order put each: perm[j] is the handout index of
    its j-th tensor, told apart by shape (all five differ while vocab_size != num_hiddens). None when the order is
    the handout's, or the shapes are not the handout's five in any order (the shape checks charge that)."""
    if got == want or len(set(want)) != len(want) or sorted(got) != sorted(want):
        return None
    return [want.index(s) for s in got]


def student_order(contestant: Any, vocab_size: int) -> list[int] | None:
    """order_of for the student's get_params: the checks then hand the student's rnn() its tensors in the order it
    reads them, and charge the order once (param_shapes)."""
    try:
        r = contestant.call("param_shapes", vocab_size=vocab_size, num_hiddens=ORDER_HIDDENS, batch_size=1,
                            returns=ParamShapes)  # fmt: skip
    except ContestantError:
        return None
    return order_of([tuple(p.shape) for p in r["params"]], param_shapes(vocab_size, ORDER_HIDDENS))


def to_student(params: list[torch.Tensor], perm: list[int] | None) -> list[torch.Tensor]:
    """The handout's order -> the order the student's get_params (and so their rnn) uses."""
    return list(params) if perm is None else [params[k] for k in perm]


def from_student(params: list[torch.Tensor], perm: list[int] | None) -> list[torch.Tensor]:
    """The student's order -> the handout's."""
    if perm is None or len(params) != len(perm):
        return list(params)
    out = list(params)
    for j, k in enumerate(perm):
        out[k] = params[j]
    return out


def order_problem(perm: list[int]) -> str:
    """What param_shapes says about a get_params whose tensors are all there, in another order."""
    theirs = ", ".join(PARAM_NAMES[k] for k in perm)
    return (f"get_params returns its tensors in another order ([{theirs}]); the handout's is "
            f"[{', '.join(PARAM_NAMES)}]. Your rnn() reads them in your order, so the other checks hand them to it "
            "that way, but the given main() names the tensors it saves in rnn.pth by the handout's order: return "
            "them in that order (and unpack them so in rnn())")  # fmt: skip


def fixed_params(vocab_size: int, num_hiddens: int, seed: int, std: float) -> list[torch.Tensor]:
    """The five parameters drawn from N(0, std^2) with a fixed seed (biases too, so they matter)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) * std for s in param_shapes(vocab_size, num_hiddens)]


def minibatches(tokens: torch.Tensor, steps: int, batch_size: int, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """d2l's sequential partitioning from offset 0: `steps` consecutive minibatches X, Y of shape
    (steps, batch_size, num_steps), each continuing the one before it."""
    n = steps * num_steps
    Xs = tokens[: batch_size * n].reshape(batch_size, n)  # (B, L)
    Ys = tokens[1 : batch_size * n + 1].reshape(batch_size, n)  # (B, L)
    X = torch.stack([Xs[:, i : i + num_steps] for i in range(0, n, num_steps)])  # (S, B, T)
    Y = torch.stack([Ys[:, i : i + num_steps] for i in range(0, n, num_steps)])  # (S, B, T)
    return X, Y
