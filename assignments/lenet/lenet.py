"""lenet: LeNet-5 on Fashion-MNIST (d2l 6.6), with sigmoid activations and average pooling.

Complete the TODOs (build_lenet, init_weights, evaluate_accuracy, train_epoch), then run

    python lenet.py --data-root DATA      # 10 epochs, SGD lr 0.9, batch 256 -> lenet.pth

DATA holds FashionMNIST/raw/ (torchvision's layout). The script prints the test accuracy after each epoch and
writes lenet.pth, the state_dict of build_lenet(). Submit lenet.py and lenet.pth.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

NUM_EPOCHS = 10
LR = 0.9
BATCH_SIZE = 256
SEED = 0


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
# What you write
# ----------------------------------------------------------------------------------------------------------------
def build_lenet() -> nn.Sequential:
    """d2l's LeNet as ONE nn.Sequential (the grader loads lenet.pth into it by these indices):
    conv 5x5 (1->6, padding 2), sigmoid, avg pool 2x2 (stride 2), conv 5x5 (6->16), sigmoid, avg pool 2x2,
    flatten, linear 400->120, sigmoid, linear 120->84, sigmoid, linear 84->10. (N, 1, 28, 28) -> (N, 10)."""
    # TODO: nn.Sequential of the 12 layers above, in that order
    raise NotImplementedError


def init_weights(m: nn.Module) -> None:
    """Xavier-uniform initialisation of the weights of every Linear and Conv2d layer (use with net.apply)."""
    # TODO: nn.init.xavier_uniform_ on m.weight when m is a Linear or Conv2d
    raise NotImplementedError


def evaluate_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction (0 to 1) of images in x (N, 1, 28, 28) that net classifies as y (N,), in eval mode."""
    # TODO: eval mode, no_grad, count argmax == y over batches(x, y, batch_size), divide by N
    raise NotImplementedError


def train_epoch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, batch_size: int, generator=None):
    """One epoch of minibatch SGD (learning rate lr) on the mean cross-entropy over (x, y), in the order
    batches(x, y, batch_size, generator) gives. Returns the mean training loss of the epoch."""
    # TODO: train mode; an SGD optimizer; per batch: zero_grad, forward, cross-entropy, backward, step
    raise NotImplementedError


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder holding FashionMNIST/raw/")
    ap.add_argument("--epochs", type=int, default=NUM_EPOCHS)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--out", default="lenet.pth")
    args = ap.parse_args(argv)
    torch.manual_seed(SEED)
    x_train, y_train = load_fashion_mnist(args.data_root, train=True)  # (60000, 1, 28, 28), (60000,)
    x_test, y_test = load_fashion_mnist(args.data_root, train=False)  # (10000, 1, 28, 28), (10000,)
    net = build_lenet()
    net.apply(init_weights)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(args.epochs):
        t0 = time.time()
        loss = train_epoch(net, x_train, y_train, args.lr, BATCH_SIZE, gen)
        acc = evaluate_accuracy(net, x_test, y_test)
        seconds = time.time() - t0
        print(f"epoch {epoch + 1}: train loss {loss:.4f}, test accuracy {acc:.4f} ({seconds:.0f} s)", flush=True)
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
