"""softmax: softmax regression from scratch on Fashion-MNIST (d2l 3.6).

Complete the five TODOs (softmax, cross_entropy, accuracy, sgd, net), then run

    python softmax.py --data-root DATA      # 10 epochs, lr 0.1, batch 256 -> softmax.pth

DATA holds FashionMNIST/raw/ (torchvision's layout). The script prints the test accuracy after each epoch and
writes softmax.pth = {"W": (784, 10), "b": (10,)}. Submit softmax.py and softmax.pth.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

NUM_INPUTS, NUM_OUTPUTS = 784, 10
NUM_EPOCHS = 10
LR = 0.1
BATCH_SIZE = 256
SEED = 0

# The model's parameters (d2l 3.6): weights drawn from N(0, 0.01^2), zero bias. net() reads these globals.
torch.manual_seed(SEED)
W = torch.normal(0, 0.01, size=(NUM_INPUTS, NUM_OUTPUTS), requires_grad=True)
b = torch.zeros(NUM_OUTPUTS, requires_grad=True)


# ----------------------------------------------------------------------------------------------------------------
# Data (given): Fashion-MNIST's IDX files, pixels scaled to [0, 1].
# ----------------------------------------------------------------------------------------------------------------
def _read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    ndim = raw[3]
    dims = np.frombuffer(raw[4 : 4 + 4 * ndim], dtype=">i4")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(root: str, train: bool):
    """Images as float (N, 1, 28, 28) in [0, 1] and int64 labels (N,)."""
    folder = Path(root) / "FashionMNIST" / "raw"
    prefix = "train" if train else "t10k"
    x = torch.from_numpy(_read_idx(folder / f"{prefix}-images-idx3-ubyte").copy()).unsqueeze(1).float() / 255
    y = torch.from_numpy(_read_idx(folder / f"{prefix}-labels-idx1-ubyte").astype(np.int64))
    return x, y


def batches(x, y, batch_size, generator=None):
    """Mini-batches of (x, y); shuffled when a generator is given."""
    order = torch.randperm(len(x), generator=generator) if generator is not None else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]


# ----------------------------------------------------------------------------------------------------------------
# The five functions you write
# ----------------------------------------------------------------------------------------------------------------
def softmax(X: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of logits X (N, q): every row is non-negative and sums to 1. Must stay finite for
    logits as large as +-1000."""
    X_exp = torch.exp(X - X.max(dim=1, keepdim=True).values)  # (N, q), every entry in (0, 1]
    return X_exp / X_exp.sum(dim=1, keepdim=True)  # (N, q)


def net(X: torch.Tensor) -> torch.Tensor:
    """Class probabilities softmax(X W + b) for images X (N, 1, 28, 28) or (N, 784): shape (N, 10)."""
    return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)  # (N, 10)


def cross_entropy(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example loss -log y_hat[i, y[i]] for probabilities y_hat (N, q) and labels y (N,): shape (N,)."""
    # cross entropy = -log softmax(...)[true class]
    probs = softmax(y_hat)
    return -torch.log(probs[range(len(y)), y])


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """The NUMBER of correct predictions (as in d2l): argmax of each row of y_hat (N, q) compared with y (N,)."""
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)  # (N,)
    cmp = y_hat.type(y.dtype) == y  # (N,)
    return float(cmp.type(y.dtype).sum())


def sgd(params, lr: float, batch_size: int) -> None:
    """Minibatch SGD: p -= lr * p.grad / batch_size for every p, in place under no_grad; then zero p.grad."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


# ----------------------------------------------------------------------------------------------------------------
# Training (given): d2l's train_epoch_ch3 with the functions above.
# ----------------------------------------------------------------------------------------------------------------
def evaluate_accuracy(x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of correct predictions of net on (x, y)."""
    correct = 0.0
    with torch.no_grad():
        for xb, yb in batches(x, y, batch_size):
            correct += accuracy(net(xb), yb)
    return correct / len(y)


def train_epoch(x: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int, generator=None) -> float:
    """One pass over (x, y) in mini-batches: cross_entropy summed over the batch, backward, sgd.
    Returns the mean training loss of the epoch."""
    total = 0.0
    for xb, yb in batches(x, y, batch_size, generator):
        loss = cross_entropy(net(xb), yb)  # (B,)
        loss.sum().backward()
        sgd([W, b], lr, len(yb))
        total += float(loss.detach().sum())
    return total / len(y)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder holding FashionMNIST/raw/")
    ap.add_argument("--epochs", type=int, default=NUM_EPOCHS)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--out", default="softmax.pth")
    args = ap.parse_args(argv)
    x_train, y_train = load_fashion_mnist(args.data_root, train=True)  # (60000, 1, 28, 28), (60000,)
    x_test, y_test = load_fashion_mnist(args.data_root, train=False)  # (10000, 1, 28, 28), (10000,)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(args.epochs):
        loss = train_epoch(x_train, y_train, args.lr, BATCH_SIZE, gen)
        print(f"epoch {epoch + 1}: train loss {loss:.4f}, test accuracy {evaluate_accuracy(x_test, y_test):.4f}")
    torch.save({"W": W.detach(), "b": b.detach()}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
