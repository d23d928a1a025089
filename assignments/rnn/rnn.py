"""rnn: a character-level RNN from scratch on The Time Machine (d2l 8.1-8.5).

Complete the TODOs (get_params, init_rnn_state, rnn, RNNModelScratch.__call__, grad_clipping, predict), then run

    python rnn.py --data-root DATA      # NUM_EPOCHS epochs, lr 1, batch 32, 35 steps, 512 hidden units -> rnn.pth

DATA holds timemachine.txt. Tokenization (characters) and the vocabulary are given. The script prints the
perplexity of each epoch and a sample, and writes rnn.pth = {"W_xh", "W_hh", "b_h", "W_hq", "b_q": tensors,
"perplexity": [one float per epoch]}. Submit rnn.py and rnn.pth.
"""

import argparse
import collections
import math
import random
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F

NUM_HIDDENS = 512
BATCH_SIZE, NUM_STEPS = 32, 35
LR = 1.0
NUM_EPOCHS = 50  # d2l trains 500 (perplexity ~1.0); 50 keep a CPU run to about 4 minutes
THETA = 1.0  # gradient clipping threshold
SEED = 0
PARAM_NAMES = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")


# ----------------------------------------------------------------------------------------------------------------
# Data (given): d2l 8.2's preprocessing, character tokens, and a vocabulary sorted by frequency.
# ----------------------------------------------------------------------------------------------------------------
def read_time_machine(root: str) -> list:
    """Lines of the book; in each, every run of non-letters becomes one space, then strip and lowercase."""
    lines = (Path(root) / "timemachine.txt").read_text(encoding="utf-8").splitlines()
    return [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in lines]


class Vocab:
    """Characters <-> indices. Index 0 is '<unk>'; the others follow by frequency (ties: alphabetical)."""

    def __init__(self, lines: list) -> None:
        counter = collections.Counter(ch for line in lines for ch in line)
        self.idx_to_token = ["<unk>"] + sorted(counter, key=lambda ch: (-counter[ch], ch))
        self.token_to_idx = {tok: i for i, tok in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, token: str) -> int:
        return self.token_to_idx.get(token, 0)


def load_corpus_time_machine(root: str):
    """The corpus as a list of indices (the lines concatenated, as d2l does) and its vocabulary."""
    lines = read_time_machine(root)
    vocab = Vocab(lines)
    return [vocab[ch] for line in lines for ch in line], vocab


def seq_data_iter_sequential(corpus: list, batch_size: int, num_steps: int):
    """d2l's sequential partitioning: consecutive minibatches continue each other, so the state carries over."""
    offset = random.randint(0, num_steps)
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    Xs = torch.tensor(corpus[offset : offset + num_tokens]).reshape(batch_size, -1)  # (B, L)
    Ys = torch.tensor(corpus[offset + 1 : offset + 1 + num_tokens]).reshape(batch_size, -1)  # (B, L)
    for i in range(0, (Xs.shape[1] // num_steps) * num_steps, num_steps):
        yield Xs[:, i : i + num_steps], Ys[:, i : i + num_steps]  # (B, T), (B, T)


# ----------------------------------------------------------------------------------------------------------------
# The model (d2l 8.5)
# ----------------------------------------------------------------------------------------------------------------
def get_params(vocab_size: int, num_hiddens: int, device="cpu") -> list:
    """[W_xh (V, H), W_hh (H, H), b_h (H,), W_hq (H, V), b_q (V,)], all with requires_grad=True.
    Weights are drawn from N(0, 0.01^2) with torch.randn, in this order; biases are zeros."""
    # TODO: the five tensors above; inputs and outputs are one-hot over the vocabulary
    raise NotImplementedError


def init_rnn_state(batch_size: int, num_hiddens: int, device="cpu") -> tuple:
    """The initial hidden state: a tuple holding one zero tensor of shape (batch_size, num_hiddens)."""
    # TODO: a one-element tuple of zeros
    raise NotImplementedError


def rnn(inputs: torch.Tensor, state: tuple, params: list):
    """Run the RNN over inputs (T, B, V), one time step at a time: H = tanh(X W_xh + H W_hh + b_h),
    Y = H W_hq + b_q. Returns (the outputs of all steps concatenated along dim 0: (T * B, V), (H,))."""
    # TODO: loop over the T steps, collect each Y (B, V), torch.cat them along dim 0
    raise NotImplementedError


class RNNModelScratch:
    """An RNN built from the functions above (d2l 8.5)."""

    def __init__(self, vocab_size: int, num_hiddens: int, device, get_params, init_state, forward_fn) -> None:
        self.vocab_size, self.num_hiddens = vocab_size, num_hiddens
        self.params = get_params(vocab_size, num_hiddens, device)
        self.init_state, self.forward_fn = init_state, forward_fn

    def __call__(self, X: torch.Tensor, state: tuple):
        """X: token indices (B, T). One-hot encode X's transpose to (T, B, V) floats, then run forward_fn.
        Returns (outputs (T * B, V), new state)."""
        # TODO: F.one_hot(X.T, self.vocab_size) as float32, then self.forward_fn(.., state, self.params)
        raise NotImplementedError

    def begin_state(self, batch_size: int, device="cpu") -> tuple:
        return self.init_state(batch_size, self.num_hiddens, device)


def grad_clipping(net, theta: float) -> None:
    """Scale every gradient of net.params by theta / g when their GLOBAL norm g (all parameters together)
    exceeds theta; change nothing otherwise."""
    # TODO: the norm of all gradients together; if above theta, scale each gradient in place
    raise NotImplementedError


def predict(prefix: str, num_preds: int, net, vocab) -> str:
    """Warm the state up on prefix, then append num_preds characters, each the argmax of the output.
    Returns prefix followed by exactly num_preds new characters."""
    # TODO: batch size 1; feed prefix[1:] one character at a time, then predict greedily
    raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------------
# Training (given): d2l's train_epoch_ch8 with sequential minibatches
# ----------------------------------------------------------------------------------------------------------------
def sgd(params: list, lr: float) -> None:
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad
            param.grad.zero_()


def train_epoch(net, corpus: list, lr: float, batch_size: int = BATCH_SIZE, num_steps: int = NUM_STEPS) -> float:
    """One pass over the corpus; returns the epoch's perplexity, exp(mean cross-entropy)."""
    state, total, count = None, 0.0, 0
    for X, Y in seq_data_iter_sequential(corpus, batch_size, num_steps):
        if state is None:
            state = net.begin_state(batch_size=X.shape[0])
        else:
            state = tuple(s.detach() for s in state)  # keep the state, cut the graph at the batch boundary
        y_hat, state = net(X, state)  # (T * B, V)
        loss = F.cross_entropy(y_hat, Y.T.reshape(-1))  # mean over the T * B predictions
        loss.backward()
        grad_clipping(net, THETA)
        sgd(net.params, lr)
        total += loss.item() * Y.numel()
        count += Y.numel()
    return math.exp(total / count)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder holding timemachine.txt")
    ap.add_argument("--epochs", type=int, default=NUM_EPOCHS)
    ap.add_argument("--out", default="rnn.pth")
    args = ap.parse_args(argv)
    random.seed(SEED)
    torch.manual_seed(SEED)
    corpus, vocab = load_corpus_time_machine(args.data_root)
    net = RNNModelScratch(len(vocab), NUM_HIDDENS, "cpu", get_params, init_rnn_state, rnn)
    history = []
    for epoch in range(args.epochs):
        t0 = time.time()
        history.append(train_epoch(net, corpus, LR))
        print(f"epoch {epoch + 1}: perplexity {history[-1]:.2f} ({time.time() - t0:.1f} s)", flush=True)
    print(predict("time traveller ", 50, net, vocab))
    weights = {n: p.detach() for n, p in zip(PARAM_NAMES, net.params, strict=True)}
    torch.save({**weights, "perplexity": history}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
