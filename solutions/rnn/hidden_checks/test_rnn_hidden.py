"""rnn hidden checks: the reference step, a short capped training run, and rnn.pth's perplexity on the book.

Perplexity: rnn.pth's five tensors in the student's own RNN step (the reference rnn()'s graph when it computes
the same, else the student's, exported as one step: the judge drives it over the book, so any recurrence is
measured exactly, with no unrolling limit), run by the judge with onnxruntime over the corpus (170,580
characters) cut into 256 contiguous streams of 666 that start from a zero state, predicting each next character
(170,496 predictions; the last 83 characters are left over): exp(mean cross-entropy). No randomness; the
tolerance 0.01 covers float32 rounding across machines.

Where the bounds come from: d2l trains 500 epochs (lr 1, batch 32, 35 steps, 512 hidden units) to a
perplexity of about 1.0, which takes ~15 minutes on an H100. The reference here trains the same model for 50
epochs on one CPU thread (`grader assets build rnn`: 444 s on a busy 2-core VM, ~5 s an epoch when idle) and
measures 4.90 with this evaluation (its last training epoch reported 4.88). Full credit at <= 5.5 leaves a
12% margin (the reference's training perplexity passes 5.5 near epoch 30); none at >= 10, about where 2 epochs
end; log-linear between.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from rnn_judge import (
    PARAM_NAMES,
    STACKED_SHORT,
    ParamShapes,
    RnnStep,
    corpus,
    fixed_params,
    from_student,
    init_problem,
    minibatches,
    param_shapes,
    stacked,
    student_order,
    to_student,
    vocabulary,
)

from grader.graphs import GraphPolicy
from grader.judge import (
    CheckFailed,
    ContestantError,
    defer,
    expect_curve,
    expect_shape,
    fail,
    first_mismatch,
    perplexity_threshold,
)
from grader.judge.measured import Chosen, ModelSpec, choose, reference_with
from grader.modules import load_module

REFERENCE = Path(__file__).resolve().parents[1] / "rnn.py"
PERPLEXITY = perplexity_threshold(full=5.5, zero=10.0, seed=None, tolerance=0.01)  # the reference: 4.90
STREAMS = 256  # evaluation: 256 parallel streams, one step of each per run of the graph
TRAIN_STEPS, TRAIN_HIDDENS, TRAIN_LR, TRAIN_THETA, TRAIN_SECONDS = 40, 128, 1.0, 1.0, 40.0
TRAIN_WINDOW, TRAIN_RATIO = 5, 0.8  # the reference: mean perplexity of the first 5 steps 26.0, last 5 17.0 (0.65)


@functools.lru_cache(maxsize=1)
def reference() -> ModuleType:
    """solutions/rnn/rnn.py (instructor code; never the student's)."""
    return load_module(REFERENCE, "rnn_reference")


def test_rnn_matches_reference(contestant, data_root):
    v = len(vocabulary(data_root))
    params = fixed_params(v, 32, seed=4, std=0.3)
    tokens = corpus(data_root)[100:124].reshape(4, 6)  # (B=4, T=6)
    inputs = F.one_hot(tokens.T, v).float()  # (T, B, V)
    H = torch.randn(4, 32, generator=torch.Generator().manual_seed(5)) * 0.5  # (B, H): not zeros, so it matters
    theirs = to_student(params, student_order(contestant, v))  # another order is charged once, by param_shapes
    r = contestant.call("rnn_step", inputs=inputs, H=H, params=theirs, returns=RnnStep)
    with torch.no_grad():
        want_Y, (want_H,) = reference().rnn(inputs, (H,), params)
    laid_out = stacked(r["Y"], 6, 4, v)  # forward_shapes charges the layout; the values are compared here
    got_Y = expect_shape(_outputs(r, v), (24, v), "rnn(inputs (6, 4, V), (H,), params): outputs")
    if problem := first_mismatch(got_Y, want_Y, torch.arange(got_Y.numel()), 1e-5, 1e-4):
        fail(f"rnn's outputs differ from the reference H = tanh(X W_xh + H W_hh + b_h), Y = H W_hq + b_q: "
             f"entry {problem.removeprefix('at x=')}")  # fmt: skip
    if not isinstance(r["state"], list) or len(r["state"]) != 1:
        fail("rnn returned a state that is not a tuple of one tensor (H,)")
    got_H = expect_shape(r["state"][0], (4, 32), "rnn's new state H")
    if torch.allclose(got_H, H) and not torch.allclose(want_H, H):
        fail(STALE_STATE)
    if problem := first_mismatch(got_H, want_H, torch.arange(got_H.numel()), 1e-5, 1e-4):
        fail(f"rnn's final state differs from the reference's: entry {problem.removeprefix('at x=')}")
    if laid_out:
        defer("forward_shapes", f"the values are the reference's, but {STACKED_SHORT}")


STALE_STATE = ("rnn returns the state it was given, not the one its last step computed: the next minibatch and "
               "predict then start from a stale H; return (H,) with the H the loop updated")  # fmt: skip


def _fixed_step(contestant: Any, v: int, perm: list[int] | None) -> tuple[RnnStep, torch.Tensor, torch.Tensor]:
    """The student's rnn on fixed inputs and weights from a fixed state H (4, 32): what it returned, the
    reference's outputs, and H. Raises ContestantError."""
    params = fixed_params(v, 32, seed=4, std=0.3)
    inputs = F.one_hot(corpus_tokens_for_step(v), v).float()  # (T, B, V)
    H = torch.randn(4, 32, generator=torch.Generator().manual_seed(5)) * 0.5  # (B, H)
    r = contestant.call("rnn_step", inputs=inputs, H=H, params=to_student(params, perm), returns=RnnStep)
    with torch.no_grad():
        want, _ = reference().rnn(inputs, (H,), params)  # (T * B, V)
    return r, want, H


def _same(got: Any, want: torch.Tensor) -> bool:
    return isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want, atol=1e-4)


def _outputs(r: RnnStep, v: int) -> Any:
    """The outputs of an rnn step on 6 steps of 4 streams, as (24, V): laid out (6, 4, V) too, which
    forward_shapes charges, so that the checks here compare the values."""
    return r["Y"].reshape(24, v) if stacked(r["Y"], 6, 4, v) else r["Y"]


def _stacked_step(contestant: Any, v: int, perm: list[int] | None) -> bool:
    """Whether the student's rnn step computes the reference's outputs, laid out (steps, batch, vocab)."""
    try:
        r, want, _ = _fixed_step(contestant, v, perm)
    except ContestantError:
        return False
    return stacked(r["Y"], 6, 4, v) and _same(_outputs(r, v), want)


def _returns_given_state(contestant: Any, v: int, perm: list[int] | None) -> bool:
    """Whether the student's rnn step gives the reference's outputs but hands back the state it was given."""
    try:
        r, want, H = _fixed_step(contestant, v, perm)
    except ContestantError:
        return False
    state = r["state"]
    return _same(_outputs(r, v), want) and isinstance(state, list) and len(state) == 1 and _same(state[0], H)


def _rnn_differs(contestant: Any, v: int, perm: list[int] | None) -> str | None:
    """What the rnn_matches_reference check charges, if the student's rnn step differs from the reference's."""
    try:
        r, want, _ = _fixed_step(contestant, v, perm)
    except ContestantError as exc:
        return None if exc.kind == "not_implemented" else f"your rnn does not run ({exc.message.splitlines()[0]})"
    return None if _same(_outputs(r, v), want) else "your rnn computes another step than the reference"


def corpus_tokens_for_step(v: int) -> torch.Tensor:
    return (torch.arange(24) * 7 % v).reshape(6, 4)  # (T=6, B=4), fixed


def test_training_lowers_perplexity(contestant, data_root):
    v = len(vocabulary(data_root))
    X, Y = minibatches(corpus(data_root), TRAIN_STEPS, 32, 35)  # (40, 32, 35) each
    shapes = param_shapes(v, TRAIN_HIDDENS)
    perm = student_order(contestant, v)
    try:
        trajectory = contestant.call("train_steps", X=X, Y=Y, vocab_size=v, num_hiddens=TRAIN_HIDDENS, lr=TRAIN_LR,
                                     theta=TRAIN_THETA, max_seconds=TRAIN_SECONDS, seed=0,
                                     returns=list[list[torch.Tensor]])  # fmt: skip
    except ContestantError:
        if _stacked_step(contestant, v, perm):  # the given train_epoch's loss cannot read that layout
            defer("forward_shapes", f"training fails on the model's outputs, because {STACKED_SHORT}")
        if frozen := _frozen_params(contestant, v):  # backward() has nothing to differentiate
            defer("param_shapes", f"training fails because get_params's {', '.join(frozen)} "
                                  f"{'do' if len(frozen) > 1 else 'does'} not require grad")  # fmt: skip
        raise
    trajectory = [from_student(params, perm) for params in trajectory]  # the handout's order, as the judge reads it
    if len(trajectory) < 2 * TRAIN_WINDOW:
        fail(f"training ran {len(trajectory)} step(s) within {TRAIN_SECONDS:g} s; expected {TRAIN_STEPS} (is the "
             "model far slower than it needs to be?)")  # fmt: skip
    for params in trajectory:
        if [tuple(p.shape) for p in params] != list(shapes):
            defer("param_shapes", f"during training get_params's tensors have shapes {[tuple(p.shape) for p in params]}"
                                  f"; expected {list(shapes)}")  # fmt: skip
    if problem := init_problem(trajectory[0]):  # training from there is that slip's consequence
        defer("param_shapes", f"{problem}, and training starts from those values")
    if problem := _rnn_differs(contestant, v, perm):  # the losses below are the reference step's
        defer("rnn_matches_reference", problem)
    losses = _training_losses(trajectory, X, Y, v)  # measured by the judge, on the weights training produced
    perplexities = [math.exp(min(x, 700.0)) if math.isfinite(x) else x for x in losses]
    expect_curve(perplexities, f"{len(losses)} SGD steps (batch 32, 35 steps, {TRAIN_HIDDENS} hidden units, lr "
                 f"{TRAIN_LR:g}, grad_clipping at {TRAIN_THETA:g}) from get_params's initialisation: perplexity "
                 "(measured by the judge on the weights each step started from)",
                 window=TRAIN_WINDOW, max_ratio=TRAIN_RATIO)  # fmt: skip


def _frozen_params(contestant: Any, v: int) -> list[str]:
    """The tensors get_params returns without requires_grad (param_shapes charges that)."""
    try:
        r = contestant.call("param_shapes", vocab_size=v, num_hiddens=TRAIN_HIDDENS, batch_size=4, returns=ParamShapes)
    except ContestantError:
        return []
    return [name for name, grad in zip(PARAM_NAMES, r["requires_grad"], strict=False) if not grad]


def _training_losses(trajectory: list[list[torch.Tensor]], X: torch.Tensor, Y: torch.Tensor, v: int) -> list[float]:
    """Each step's loss as training saw it: the step's weights on its minibatch, the state carried over."""
    state = (torch.zeros(X.shape[1], trajectory[0][1].shape[0]),)  # (B, H)
    losses = []
    with torch.no_grad():
        for params, xb, yb in zip(trajectory, X, Y, strict=False):  # (B, T), (B, T)
            out, state = reference().rnn(F.one_hot(xb.T, v).float(), state, [p.float() for p in params])
            losses.append(float(F.cross_entropy(out, yb.T.reshape(-1))))
    return losses


# A one-step RNN's operators: matrix products, the activation, and the shapes around them.
POLICY = GraphPolicy(ops=("MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Tanh", "Relu", "Sigmoid", "Identity",
                          "Constant", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Transpose", "Cast", "Flatten",
                          "Slice", "Split"),
                     max_params=4_000_000, inputs=((None, None), (None, None)), outputs=((None, None), (None, None)))


class ReferenceStep(torch.nn.Module):
    """One step of the reference rnn() with rnn.pth's tensors: (x (S, V), h (S, H)) -> (y (S, V), h')."""

    def __init__(self, vocab_size: int, hiddens: int) -> None:
        super().__init__()
        for name, shape in zip(PARAM_NAMES, param_shapes(vocab_size, hiddens), strict=True):
            setattr(self, name, torch.nn.Parameter(torch.zeros(shape)))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, (new,) = reference().rnn(x.unsqueeze(0), (h,), [getattr(self, n) for n in PARAM_NAMES])
        return y, new  # (S, V), (S, H)


def model_spec(vocab_size: int, hiddens: int, perm: list[int] | None = None) -> ModelSpec:
    """The reference step, and the student's: their rnn() gets the tensors in their get_params's order."""
    g = torch.Generator().manual_seed(0)
    return ModelSpec(
        name="RNN step", reference_source=REFERENCE, build=lambda: ReferenceStep(vocab_size, hiddens),
        example=(torch.rand(4, vocab_size, generator=g), torch.rand(4, hiddens, generator=g) - 0.5),
        input_names=["x", "h"], output_names=["y", "h_next"], policy=POLICY,
        outputs_probe="step_outputs", export_probe="export_step",
        extra={"order": [PARAM_NAMES[k] for k in perm]} if perm is not None else {},
    )  # fmt: skip


def graph_perplexity(chosen: Chosen, tokens: torch.Tensor, vocab_size: int, hiddens: int) -> float:
    """exp(mean cross-entropy) of the chosen one-step graph over `tokens`, as STREAMS contiguous streams from a
    zero state: the judge drives the loop, one step of all streams per run."""
    from grader.graphs import GraphRefused, runner

    n = (len(tokens) - 1) // STREAMS
    X = tokens[: STREAMS * n].reshape(STREAMS, n)  # (S, L)
    Y = tokens[1 : STREAMS * n + 1].reshape(STREAMS, n)  # (S, L)
    try:
        key = runner().prepare(chosen.graph, POLICY)["key"]
        h = torch.zeros(STREAMS, hiddens).numpy()  # (S, H)
        total = 0.0
        for t in range(n):
            x = F.one_hot(X[:, t], vocab_size).float().numpy()  # (S, V)
            y, h = runner().run(key, {"x": x, "h": h})
            total += float(F.cross_entropy(torch.from_numpy(y).double(), Y[:, t], reduction="sum"))
    except GraphRefused as exc:
        if not chosen.own:
            raise RuntimeError(f"the reference RNN step's graph failed to run: {exc}") from None
        raise CheckFailed(chosen.refused(exc)) from None
    return math.exp(total / (STREAMS * n))


@functools.lru_cache(maxsize=64)
def _measure(graph_sha: str, chosen: Chosen, data_root: Path, vocab_size: int, hiddens: int) -> float:
    return graph_perplexity(chosen, corpus(data_root), vocab_size, hiddens)


def test_perplexity(submission, data_root, contestant, check):
    saved = submission.weights("rnn.pth")
    v = len(vocabulary(data_root))
    if isinstance(saved, (list, tuple)) and len(saved) == len(PARAM_NAMES) and all(
            isinstance(t, torch.Tensor) for t in saved):  # fmt: skip
        check.note(f"rnn.pth holds a {type(saved).__name__} of {len(saved)} tensors (net.params saved as they are), "
                   f"not the handout's dict: read them as {', '.join(PARAM_NAMES)}, in get_params's order (the given "
                   "main() saves {'W_xh': ..., ...} by name)")  # fmt: skip
        saved = dict(zip(PARAM_NAMES, saved, strict=True))
    if not isinstance(saved, dict) or not all(isinstance(saved.get(k), torch.Tensor) for k in PARAM_NAMES):
        have = sorted(map(str, saved))[:8] if isinstance(saved, dict) else type(saved).__name__
        fail(f"rnn.pth holds {have}; expected a dict with the tensors {', '.join(PARAM_NAMES)}")
    perm = student_order(contestant, v)
    tensors = from_student([saved[k] for k in PARAM_NAMES], perm)
    hiddens = tensors[0].shape[-1]
    if perm is not None and [tuple(t.shape) for t in tensors] == param_shapes(v, hiddens):
        # main() zipped the handout's names with get_params's own order; the order is charged by param_shapes
        check.note("rnn.pth's tensors are named by the handout's order but come in your get_params's, so the "
                   "judge read each by its shape")  # fmt: skip
    else:
        perm, tensors = None, [saved[k] for k in PARAM_NAMES]
        hiddens = tensors[0].shape[-1]
    for name, t, shape in zip(PARAM_NAMES, tensors, param_shapes(v, hiddens), strict=True):
        if tuple(t.shape) != shape:
            fail(f"rnn.pth[{name!r}] has shape {tuple(t.shape)}; expected {shape} for {hiddens} hidden units")
    state = {k: t.float() for k, t in zip(PARAM_NAMES, tensors, strict=True)}
    spec = model_spec(v, hiddens, perm)
    if _returns_given_state(contestant, v, perm):  # its steps are the reference's; only the state is not carried
        check.note(f"not charged here: {STALE_STATE} (rnn_matches_reference charges it); rnn.pth is measured in "
                   "the reference RNN step, which carries the new state")  # fmt: skip
        chosen = Chosen(reference_with(spec, state), False, "rnn.pth measured in the reference RNN step")
    elif _stacked_step(contestant, v, perm):  # the same step, its outputs laid out otherwise
        check.note(f"not charged here: {STACKED_SHORT} (forward_shapes charges it); rnn.pth is measured in the "
                   "reference RNN step, which computes what yours does")  # fmt: skip
        chosen = Chosen(reference_with(spec, state), False, "rnn.pth measured in the reference RNN step")
    else:
        chosen = choose(spec, state, contestant, "rnn.pth")
    if chosen.own:
        check.note(chosen.note)
    outcome = _measure(hashlib.sha256(chosen.graph).hexdigest(), chosen, data_root, v, hiddens)
    n = (len(corpus(data_root)) - 1) // STREAMS * STREAMS
    which = "your own" if chosen.own else "the reference"
    PERPLEXITY.grade(outcome, f"rnn.pth in {which} RNN, run by the judge on The Time Machine ({n:,} next-character "
                              f"predictions in {STREAMS} streams)")  # fmt: skip
