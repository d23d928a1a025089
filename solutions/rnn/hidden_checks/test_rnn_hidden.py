"""rnn hidden checks: the reference step, a short capped training run, and rnn.pth's perplexity on the book.

Perplexity: rnn.pth's five tensors in the reference rnn() (solutions/rnn/rnn.py), over the corpus (170,580
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
import importlib.util
import math
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from rnn_judge import PARAM_NAMES, RnnStep, corpus, fixed_params, minibatches, param_shapes, vocabulary

from grader.judge import (
    CheckFailed,
    WeightsError,
    expect_curve,
    expect_shape,
    fail,
    first_mismatch,
    load_weights,
    perplexity_threshold,
)

REFERENCE = Path(__file__).resolve().parents[1] / "rnn.py"
PERPLEXITY = perplexity_threshold(full=5.5, zero=10.0, seed=None, tolerance=0.01)  # the reference: 4.90
STREAMS, CHUNK = 256, 128  # evaluation: 256 parallel streams, 128 steps of them at a time
TRAIN_STEPS, TRAIN_HIDDENS, TRAIN_LR, TRAIN_THETA, TRAIN_SECONDS = 40, 128, 1.0, 1.0, 40.0
TRAIN_WINDOW, TRAIN_RATIO = 5, 0.8  # the reference: mean perplexity of the first 5 steps 26.0, last 5 17.0 (0.65)


@functools.lru_cache(maxsize=1)
def reference() -> ModuleType:
    """solutions/rnn/rnn.py (instructor code; never the student's)."""
    spec = importlib.util.spec_from_file_location("rnn_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rnn_matches_reference(contestant, data_root):
    v = len(vocabulary(data_root))
    params = fixed_params(v, 32, seed=4, std=0.3)
    tokens = corpus(data_root)[100:124].reshape(4, 6)  # (B=4, T=6)
    inputs = F.one_hot(tokens.T, v).float()  # (T, B, V)
    H = torch.randn(4, 32, generator=torch.Generator().manual_seed(5)) * 0.5  # (B, H): not zeros, so it matters
    r = contestant.call("rnn_step", inputs=inputs, H=H, params=params, returns=RnnStep)
    with torch.no_grad():
        want_Y, (want_H,) = reference().rnn(inputs, (H,), params)
    got_Y = expect_shape(r["Y"], (24, v), "rnn(inputs (6, 4, V), (H,), params): outputs")
    if problem := first_mismatch(got_Y, want_Y, torch.arange(got_Y.numel()), 1e-5, 1e-4):
        fail(f"rnn's outputs differ from the reference H = tanh(X W_xh + H W_hh + b_h), Y = H W_hq + b_q: "
             f"entry {problem.removeprefix('at x=')}")  # fmt: skip
    if not isinstance(r["state"], list) or len(r["state"]) != 1:
        fail("rnn returned a state that is not a tuple of one tensor (H,)")
    got_H = expect_shape(r["state"][0], (4, 32), "rnn's new state H")
    if problem := first_mismatch(got_H, want_H, torch.arange(got_H.numel()), 1e-5, 1e-4):
        fail(f"rnn's final state differs from the reference's: entry {problem.removeprefix('at x=')}")


def test_training_lowers_perplexity(contestant, data_root):
    v = len(vocabulary(data_root))
    X, Y = minibatches(corpus(data_root), TRAIN_STEPS, 32, 35)  # (40, 32, 35) each
    losses = contestant.call("train_steps", X=X, Y=Y, vocab_size=v, num_hiddens=TRAIN_HIDDENS, lr=TRAIN_LR,
                             theta=TRAIN_THETA, max_seconds=TRAIN_SECONDS, seed=0, returns=list[float])  # fmt: skip
    if not isinstance(losses, list) or len(losses) < 2 * TRAIN_WINDOW:
        n = len(losses) if isinstance(losses, list) else losses
        fail(f"training ran {n} step(s) within {TRAIN_SECONDS:g} s; expected {TRAIN_STEPS} (is the model far slower "
             "than it needs to be?)")  # fmt: skip
    perplexities = [math.exp(min(x, 700.0)) if math.isfinite(x) else x for x in losses]
    expect_curve(perplexities, f"{len(losses)} SGD steps (batch 32, 35 steps, {TRAIN_HIDDENS} hidden units, lr "
                 f"{TRAIN_LR:g}, grad_clipping at {TRAIN_THETA:g}) from get_params's initialisation: perplexity",
                 window=TRAIN_WINDOW, max_ratio=TRAIN_RATIO)  # fmt: skip


def corpus_perplexity(params: list[torch.Tensor], tokens: torch.Tensor, vocab_size: int) -> float:
    """exp(mean cross-entropy) of the reference rnn over `tokens`, as STREAMS contiguous streams."""
    n = (len(tokens) - 1) // STREAMS
    X = tokens[: STREAMS * n].reshape(STREAMS, n)  # (S, L)
    Y = tokens[1 : STREAMS * n + 1].reshape(STREAMS, n)  # (S, L)
    state = (torch.zeros(STREAMS, params[1].shape[0]),)  # (S, H)
    total = 0.0
    # 1,300 small matrix products in a row: one thread runs them in ~1.5 s, where two threads spend most of
    # their time synchronising (20 s and more when the machine is busy).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for i in range(0, n, CHUNK):
                inputs = F.one_hot(X[:, i : i + CHUNK].T, vocab_size).float()  # (T, S, V)
                out, state = reference().rnn(inputs, state, params)  # (T * S, V)
                total += float(F.cross_entropy(out.double(), Y[:, i : i + CHUNK].T.reshape(-1), reduction="sum"))
    finally:
        torch.set_num_threads(threads)
    return math.exp(total / (STREAMS * n))


@functools.lru_cache(maxsize=64)
def _measure(sha256: str, path: str, data_root: Path) -> float | str:
    """Perplexity of a weights file on the corpus, or why it cannot be measured; cached by content."""
    try:
        saved = load_weights(Path(path))
    except WeightsError as exc:
        return str(exc)
    v = len(vocabulary(data_root))
    if not isinstance(saved, dict) or not all(isinstance(saved.get(k), torch.Tensor) for k in PARAM_NAMES):
        have = sorted(map(str, saved))[:8] if isinstance(saved, dict) else type(saved).__name__
        return f"rnn.pth holds {have}; expected a dict with the tensors {', '.join(PARAM_NAMES)}"
    hiddens = saved["W_xh"].shape[-1]
    for name, shape in zip(PARAM_NAMES, param_shapes(v, hiddens), strict=True):
        if tuple(saved[name].shape) != shape:
            have = tuple(saved[name].shape)
            return f"rnn.pth[{name!r}] has shape {have}; expected {shape} for {hiddens} hidden units"
    return corpus_perplexity([saved[k].float() for k in PARAM_NAMES], corpus(data_root), v)


def test_perplexity(submission, data_root):
    path = submission.path("rnn.pth")
    outcome = _measure(hashlib.sha256(path.read_bytes()).hexdigest(), str(path), data_root)
    if isinstance(outcome, str):
        raise CheckFailed(outcome)
    n = (len(corpus(data_root)) - 1) // STREAMS * STREAMS
    PERPLEXITY.grade(outcome, f"rnn.pth in the reference RNN on The Time Machine ({n:,} next-character "
                              f"predictions in {STREAMS} streams)")  # fmt: skip
