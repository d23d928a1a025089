"""rnn public checks: students run these with `grader check rnn DIR --data-root DATA`."""

from pathlib import Path
from typing import Any

import torch
from rnn_judge import (
    PARAM_NAMES,
    STACKED,
    STACKED_SHORT,
    ParamShapes,
    RnnStep,
    corpus,
    fixed_params,
    init_problem,
    order_of,
    order_problem,
    param_shapes,
    stacked,
    student_order,
    to_student,
    vocabulary,
)

from grader.judge import ContestantError, defer, expect_finite, expect_shape, expect_shapes, fail, partial

NUM_HIDDENS = 64


def test_param_shapes(contestant, data_root, check):
    v = len(vocabulary(data_root))
    r = contestant.call("param_shapes", vocab_size=v, num_hiddens=NUM_HIDDENS, batch_size=4, returns=ParamShapes)
    if r["params_type"] == "dict":
        fail(f"get_params returns a dict; the handout's returns a list [{', '.join(PARAM_NAMES)}], which the given "
             "code and d2l index and iterate. Your own functions read your dict, so the other checks handed them "
             "one (charged here only): return the list")  # fmt: skip
    if perm := order_of([tuple(p.shape) for p in r["params"]], param_shapes(v, NUM_HIDDENS)):
        fail(order_problem(perm))
    params = expect_shapes(r["params"], param_shapes(v, NUM_HIDDENS), PARAM_NAMES,
                           f"get_params({v}, {NUM_HIDDENS})")  # fmt: skip
    for name, grad in zip(PARAM_NAMES, r["requires_grad"], strict=True):
        if not grad:
            fail(f"get_params: {name} does not require grad; call requires_grad_(True) on every parameter")
    if problem := init_problem(params):
        fail(problem)
    state, bare = r["state"], isinstance(r["state"], torch.Tensor)
    if bare:  # H itself: the student's own rnn() reads it so, but the given code and d2l unpack (H,)
        state = [state]
    elif r["state_type"] not in ("tuple", "list") or not isinstance(state, list) or len(state) != 1:
        fail(f"init_rnn_state(4, {NUM_HIDDENS}) returned a {r['state_type']}; expected a tuple of one tensor (H,)")
    if r["state_type"] == "list":  # works the same everywhere the state goes: not worth points
        check.note(f"init_rnn_state(4, {NUM_HIDDENS}) returns a list [H]; d2l returns a tuple (H,), which cannot "
                   "be changed by accident")  # fmt: skip
    what = f"init_rnn_state(4, {NUM_HIDDENS})" + ("" if bare else "[0]")
    H = expect_shape(state[0], (4, NUM_HIDDENS), what)
    if bool(H.abs().max() > 0):
        fail("init_rnn_state: the initial hidden state should be zeros")
    if bare:
        partial(0.5, f"init_rnn_state(4, {NUM_HIDDENS}) returns the tensor H itself; the handout's returns a tuple "
                "of one tensor, (H,), which rnn(), the given training code and d2l unpack as `H, = state`: return "
                "(H,)")  # fmt: skip


def _forward(contestant: Any, data_root: Path, v: int) -> RnnStep:
    """The student's model on the corpus's first 15 tokens as X (B=3, T=5)."""
    X = corpus(data_root)[:15].reshape(3, 5)  # (B=3, T=5) token indices
    return contestant.call("forward", X=X, vocab_size=v, num_hiddens=NUM_HIDDENS, returns=RnnStep)


def outputs_stacked(contestant: Any, data_root: Path) -> bool:
    """Whether the student's model lays its outputs out (steps, batch, vocab): forward_shapes charges that, and
    the checks whose code path runs into it defer to it."""
    v = len(vocabulary(data_root))
    try:
        return stacked(_forward(contestant, data_root, v)["Y"], 5, 3, v)
    except ContestantError:
        return False


def test_forward_shapes(contestant, data_root):
    v = len(vocabulary(data_root))
    r = _forward(contestant, data_root, v)
    what = "the model on X of shape (batch 3, steps 5)"
    if stacked(r["Y"], 5, 3, v):
        fail(f"{what}: outputs have shape (5, 3, {v}); expected (15, {v}): {STACKED}")
    expect_finite(expect_shape(r["Y"], (15, v), f"{what}: outputs (steps * batch, vocab)"), what)
    if not isinstance(r["state"], list) or len(r["state"]) != 1:
        fail(f"{what} returned a state of type {type(r['state']).__name__}; expected a tuple of one tensor (H,)")
    expect_shape(r["state"][0], (3, NUM_HIDDENS), f"{what}: the new state H (batch, hiddens)")


def _global_norm(grads) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))


def test_grad_clipping(contestant):
    params = fixed_params(28, 16, seed=1, std=0.1)
    g = torch.Generator().manual_seed(2)
    grads = [torch.randn(p.shape, generator=g) for p in params]
    for target, theta in ((10.0, 1.0), (0.5, 1.0)):
        scaled = [x * (target / _global_norm(grads)) for x in grads]  # global norm `target`
        got = contestant.call("clip", params=params, grads=scaled, theta=theta, returns=list[torch.Tensor | None])
        if not isinstance(got, list) or any(x is None for x in got) or len(got) != len(scaled):
            fail("grad_clipping removed gradients; it should scale them in place (param.grad[:] *= ...)")
        got = expect_shapes(got, [tuple(s.shape) for s in scaled], PARAM_NAMES, "the gradients after grad_clipping")
        norm = _global_norm(got)
        if target > theta:
            if norm > theta * (1 + 1e-5):
                fail(f"after grad_clipping(net, theta={theta:g}) on gradients of global norm {target:g} the "
                     f"global norm is {norm:.4g}; expected at most {theta:g} (one norm over ALL parameters "
                     "together)")  # fmt: skip
            factor = norm / target  # what a uniform scaling used
            uniform = all(torch.allclose(have, want * factor, rtol=1e-4, atol=1e-7)
                          for want, have in zip(scaled, got, strict=True))  # fmt: skip
            if uniform:
                if not abs(factor - theta / target) <= 1e-4 * theta / target:
                    fail(f"grad_clipping scaled every gradient by {factor:.4g}; expected theta / norm = "
                         f"{theta / target:g}, where norm is the square root of the sum of all squared gradient "
                         "entries")  # fmt: skip
            for name, want, have in zip(PARAM_NAMES, scaled, got, strict=True):
                if not torch.allclose(have, want * (theta / target), rtol=1e-4, atol=1e-7):
                    fail(f"grad_clipping changed the direction of the gradient: {name} is not scaled by "
                         f"theta / norm = {theta / target:g} like the others")  # fmt: skip
        else:
            for name, want, have in zip(PARAM_NAMES, scaled, got, strict=True):
                if not torch.equal(have, want):
                    fail(f"grad_clipping(net, theta={theta:g}) changed the gradient of {name} although the global "
                         f"norm {target:g} is already below theta")  # fmt: skip


def test_predict_length(contestant, data_root):
    tokens = set(vocabulary(data_root))
    params = fixed_params(len(tokens), 32, seed=3, std=0.5)
    params[4][0] = -1e3  # never predict '<unk>' (index 0), which prints as 5 characters
    params = to_student(params, student_order(contestant, len(tokens)))
    prefix, device = "time traveller ", None
    for n in (1, 10, 25):
        try:
            text = contestant.call("predict_text", params=params, prefix=prefix, num_preds=n, device=device)
        except ContestantError as exc:
            if outputs_stacked(contestant, data_root):
                defer("forward_shapes", f"predict fails on the model's outputs, because {STACKED_SHORT}")
            if device or "required positional argument: 'device'" not in exc.message:
                raise
            device = "cpu"  # d2l's predict_ch8(prefix, num_preds, net, vocab, device): charged below, once
            text = contestant.call("predict_text", params=params, prefix=prefix, num_preds=n, device=device)
        if not isinstance(text, str):
            fail(f"predict(prefix, {n}, net, vocab) returned a {type(text).__name__}; expected a str")
        if not text.startswith(prefix):
            fail(f"predict({prefix!r}, {n}, net, vocab) returned {text!r}; expected it to start with the prefix")
        if len(text) != len(prefix) + n:
            hint = {1: ": one too many; the output after the prefix's last character is already the first of the "
                       "num_preds new ones, so num_preds outputs are appended in all",
                    -1: ": one too few; the loop appends one character per prediction, num_preds of them (d2l: "
                        "for _ in range(num_preds)), the first from the prefix's last character"
                    }.get(len(text) - len(prefix) - n, "")  # fmt: skip
            fail(f"predict({prefix!r}, {n}, net, vocab) returned {len(text)} characters ({text!r}); expected "
                 f"{len(prefix)} + {n} = {len(prefix) + n}{hint}")  # fmt: skip
        if bad := sorted(set(text[len(prefix) :]) - tokens):
            fail(f"predict returned characters outside the vocabulary: {bad}")
    try:
        greedy = contestant.call("greedy_text", params=params, prefix=prefix, num_preds=n)
    except ContestantError:  # the model runs as predict drives it, not as d2l's warm-up does: nothing to compare
        greedy = text
    if text != greedy:
        cold = contestant.call("greedy_text", params=params, prefix=prefix, num_preds=n, warm=False)
        if text == cold:
            fix = ("that is what it gives from the initial state, as if the prefix had never been read: keep the "
                   "state the net returns for each prefix character (_, state = net(x, state)) and predict from it")
        elif text == contestant.call("greedy_text", params=params, prefix=prefix, num_preds=n, twice=True):
            fix = ("that is what it gives when the prefix's last character goes through the net twice, at the end of "
                   "the warm-up and again as the first prediction's input: warm up on every character but the last "
                   "(d2l feeds prefix[1:], each as the input after the one before), so that the last one is fed "
                   "once, by the first prediction")  # fmt: skip
        elif len({contestant.call("predict_text", params=params, prefix=prefix, num_preds=n, device=device, seed=s)
                   for s in (1, 2)}) > 1:  # fmt: skip
            fix = ("it returns other characters each time it is called with other random seeds, so it draws them "
                   "at random (torch.multinomial, random.choices): take the most likely character at each step, "
                   "int(y.argmax(dim=1).reshape(1)), so that predict repeats and can be graded")  # fmt: skip
        else:
            fix = ("feed every prefix character through the net (prefix[1:], each after the one before) before "
                   "predicting")
        partial(0.5, f"predict({prefix!r}, {n}, net, vocab) returned {text!r}; warming the state up on the prefix and "
                f"then taking the argmax at each step gives {greedy!r} with the same model: {fix}")  # fmt: skip
    if device:
        partial(0.5, "predict requires a device argument (as d2l's predict_ch8 does); the handout's is predict(prefix, "
                "num_preds, net, vocab), as the handout's main() and the grader call it: give device a default "
                "(device='cpu')")
