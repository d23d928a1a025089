"""rnn probes: run inside the sandbox next to the student's rnn.py and return plain data only.

Probes that need fixed parameters build the given RNNModelScratch around the judge's tensors. The training
probe runs its own loop (trusted code) around the student's model and grad_clipping, capped both by the
number of minibatches the judge sends and by a time budget.
"""

import os
import time

import torch
import torch.nn.functional as F

from grader.contestant import export_graph, probe, student

PARAM_NAMES = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")


def _rnn():
    return student("rnn")


_KEYS: dict[int, list | None] = {}  # id(module) -> the keys of the dict its get_params returns (None: a list)


def _theirs(m, params):
    """The judge's tensors (a list in the student's order) as the student's get_params hands them over: a dict
    under its keys where it returns one (the handout's is a list; param_shapes charges that once)."""
    if id(m) not in _KEYS:
        try:
            got = m.get_params(3, 2, "cpu")
        except Exception:  # noqa: BLE001 - a get_params that fails is param_shapes' to report, not this probe's
            got = None
        _KEYS[id(m)] = list(got) if isinstance(got, dict) else None
    keys = _KEYS[id(m)]
    return dict(zip(keys, params, strict=True)) if keys and len(keys) == len(params) else params


_BARE: dict[int, bool] = {}  # id(module) -> whether its init_rnn_state returns H itself rather than (H,)


def _bare(m) -> bool:
    """Whether the student's state is H itself, not the handout's (H,): param_shapes charges that once, and their
    own functions agree on it, so the probes hand it over their way."""
    if id(m) not in _BARE:
        try:
            _BARE[id(m)] = isinstance(m.init_rnn_state(1, 2, "cpu"), torch.Tensor)
        except Exception:  # noqa: BLE001 - an init_rnn_state that fails is param_shapes' to report
            _BARE[id(m)] = False
    return _BARE[id(m)]


def _state_for(m, H):
    """The state H as the student's rnn() reads it."""
    return H if _bare(m) else (H,)


def _state_list(m, state):
    """A state the student's code returned, as a list of tensors (H itself only where that is their way)."""
    if isinstance(state, (tuple, list)):
        return list(state)
    return [state] if _bare(m) and isinstance(state, torch.Tensor) else state


def _detached(m, state):
    """The state with its history cut, in the student's form."""
    hs = [s.detach() for s in _state_list(m, state)]
    return hs[0] if _bare(m) and len(hs) == 1 else tuple(hs)


def _values(params):
    return list(params.values()) if isinstance(params, dict) else list(params)


def _leaves(params):
    return [p.clone().requires_grad_(True) for p in params]


class _HandoutModel:
    """The handout's RNNModelScratch (d2l 8.5), standing in where the student's module has none (a syntax error
    in the class leaves it out), so that the checks of grad_clipping, predict and training still grade those
    functions; forward_shapes, which tests the class, charges its absence."""

    def __init__(self, vocab_size, num_hiddens, device, get_params, init_state, forward_fn):
        self.vocab_size, self.num_hiddens = vocab_size, num_hiddens
        self.params = get_params(vocab_size, num_hiddens, device)
        self.init_state, self.forward_fn = init_state, forward_fn

    def __call__(self, X, state):
        X = F.one_hot(X.T.long(), self.vocab_size).type(torch.float32)  # (T, B, V)
        return self.forward_fn(X, state, self.params)

    def begin_state(self, batch_size, device="cpu"):
        return self.init_state(batch_size, self.num_hiddens, device)


def _model_class(m):
    return getattr(m, "RNNModelScratch", None) or _HandoutModel


def _model_with(m, params):
    """The student's RNNModelScratch (or the handout's, where theirs is missing) whose parameters are `params`
    (not get_params's)."""
    theirs = _theirs(m, params)
    return _model_class(m)(params[0].shape[0], params[0].shape[1], "cpu", lambda *args: theirs, m.init_rnn_state,
                           m.rnn)  # fmt: skip


@probe
def param_shapes(vocab_size, num_hiddens, batch_size):
    m = _rnn()
    got = m.get_params(vocab_size, num_hiddens, "cpu")
    params = _values(got)
    state = m.init_rnn_state(batch_size, num_hiddens, "cpu")
    return {
        "params": [p.detach() for p in params],
        "requires_grad": [bool(p.requires_grad) for p in params],
        "state": [s.detach() for s in state] if isinstance(state, (tuple, list)) else state,
        "state_type": type(state).__name__,
        "params_type": type(got).__name__,
    }


@probe
def forward(X, vocab_size, num_hiddens):
    """The student's model (get_params, init_rnn_state, rnn, __call__) on token indices X (B, T)."""
    m = _rnn()
    net = m.RNNModelScratch(vocab_size, num_hiddens, "cpu", m.get_params, m.init_rnn_state, m.rnn)
    with torch.no_grad():
        Y, state = net(X, net.begin_state(X.shape[0]))
    return {"Y": Y, "state": _state_list(m, state)}


@probe
def clip(params, grads, theta):
    """The student's grad_clipping on leaf parameters holding the judge's gradients; the gradients after it."""
    m = _rnn()
    leaves = _leaves(params)
    for p, g in zip(leaves, grads, strict=True):
        p.grad = g.clone()
    m.grad_clipping(_model_with(m, leaves), theta)
    return [None if p.grad is None else p.grad for p in leaves]


@probe
def predict_text(params, prefix, num_preds, device=None, seed=None):
    """The student's predict on the student's model with the judge's parameters; `device` is passed on to a predict
    that requires one (d2l's predict_ch8 takes it). `seed`: every generator seeded with it first, so that two
    seeds tell a predict that samples its characters from one that takes the argmax."""
    if seed is not None:
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    m = _rnn()
    vocab = m.Vocab(m.read_time_machine(os.environ["GRADER_DATA_ROOT"]))
    with torch.no_grad():
        return m.predict(prefix, num_preds, _model_with(m, _leaves(params)), vocab, *([device] if device else []))


@probe
def greedy_text(params, prefix, num_preds, warm=True, twice=False):
    """What predict should return with the student's own model: d2l's warm-up on the prefix, then greedy steps (this
    probe's code, not the student's predict; the student's model runs both, so a model slip is not charged here).
    `warm=False`: the state each warm-up step returns is dropped, as a predict that never keeps it does.
    `twice=True`: the prefix's last character is fed once more before the first prediction, as a predict whose
    warm-up feeds the whole prefix does."""
    m = _rnn()
    vocab = m.Vocab(m.read_time_machine(os.environ["GRADER_DATA_ROOT"]))
    net = _model_with(m, _leaves(params))
    with torch.no_grad():
        state, outputs = net.begin_state(1), [vocab[prefix[0]]]
        for ch in prefix[1:]:
            _, after = net(torch.tensor([[outputs[-1]]]), state)  # (1, 1)
            state = after if warm else state
            outputs.append(vocab[ch])
        if twice:
            _, state = net(torch.tensor([[outputs[-1]]]), state)  # (1, 1)
        for _ in range(num_preds):
            y, state = net(torch.tensor([[outputs[-1]]]), state)  # (1, V)
            outputs.append(int(y.argmax(dim=1).reshape(1)))
    return "".join(vocab.idx_to_token[i] for i in outputs)


@probe
def rnn_step(inputs, H, params):
    """The student's rnn() on one-hot inputs (T, B, V) from the state (H,)."""
    with torch.no_grad():
        m = _rnn()
        Y, state = m.rnn(inputs, _state_for(m, H), _theirs(m, params))
    return {"Y": Y, "state": _state_list(m, state)}


class _Step(torch.nn.Module):
    """One time step of the student's rnn() with rnn.pth's tensors: (x (S, V), h (S, H)) -> (y (S, V), h').
    `order`: the names in the order the student's get_params returns them, which is how their rnn() reads them."""

    def __init__(self, state, order=PARAM_NAMES):
        super().__init__()
        self.order = tuple(order)
        for name in PARAM_NAMES:
            setattr(self, name, torch.nn.Parameter(state[name].float()))

    def forward(self, x, h):
        m = _rnn()
        y, new = m.rnn(x.unsqueeze(0), _state_for(m, h), _theirs(m, [getattr(self, n) for n in self.order]))
        return y, _state_list(m, new)[0]


@probe
def step_outputs(state, inputs, order=PARAM_NAMES):
    """The student's rnn step's outputs with rnn.pth's tensors: tells the judge whether the reference computes the
    same (it never grades these numbers)."""
    with torch.no_grad():
        return list(_Step(state, order)(*inputs))


@probe
def export_step(state, order=PARAM_NAMES):
    """One step of the student's rnn with rnn.pth's tensors, as an ONNX graph; the judge drives it over the book."""
    v, h = state["W_xh"].shape
    return export_graph(_Step(state, order), (torch.zeros(1, v), torch.zeros(1, h)), ["x", "h"], ["y", "h_next"])


@probe
def train_steps(X, Y, vocab_size, num_hiddens, lr, theta, max_seconds):
    """SGD on the judge's consecutive minibatches X, Y (S, B, T) with the student's model and grad_clipping;
    the parameters before each step (the judge measures each step's loss itself). Stops early, returning what
    it has, once max_seconds have passed."""
    m = _rnn()
    net = _model_class(m)(vocab_size, num_hiddens, "cpu", m.get_params, m.init_rnn_state, m.rnn)
    state, trajectory, start = None, [], time.monotonic()
    for xb, yb in zip(X, Y, strict=True):  # (B, T), (B, T)
        trajectory.append([p.detach().clone() for p in _values(net.params)])
        state = net.begin_state(xb.shape[0]) if state is None else _detached(m, state)
        y_hat, state = net(xb, state)  # (T * B, V)
        loss = F.cross_entropy(y_hat, yb.T.reshape(-1))
        loss.backward()
        m.grad_clipping(net, theta)
        with torch.no_grad():
            for p in _values(net.params):
                p -= lr * p.grad
                p.grad.zero_()
        if time.monotonic() - start > max_seconds:
            break
    return trajectory
