"""exp2: train ResNet20 on CIFAR-10 from epoch 0, on the 50,000 training images only.

Schedule: SGD (momentum 0.9, weight decay 5e-4, batch 128), LR 0.1 for epochs 0-4, then 0.01 for epochs 5-9.
Expected: at least 70% test accuracy after 10 epochs.

    python exp2.py --data-root DATA                             # 10 epochs from scratch -> final.pth
    python exp2.py --data-root DATA --resume pretrain_model.pth # continue after the 5 provided epochs

A checkpoint is a dict: {"net": state_dict, "epoch": epochs completed, "history": {"train_loss": [...],
"train_acc": [...], "test_acc": [...]}} with one entry per completed epoch (accuracies in percent).
Submit exp2.py and final.pth, and report the test accuracy after each of the 10 epochs.
"""

import argparse
import pickle
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NUM_EPOCHS = 10
BATCH_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
SEED = 0
# Per-channel mean and std of the CIFAR-10 training images, used to normalize inputs.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------------------------------------------
# Data (given). torchvision's CIFAR10 class checks md5 sums, so the batches are read directly here.
# ----------------------------------------------------------------------------------------------------------------
def load_cifar10(root: str, train: bool):
    """Images as a uint8 tensor (N, 3, 32, 32) and labels (N,), from DATA/cifar-10-batches-py."""
    folder = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        xs.append(torch.as_tensor(batch["data"]).reshape(-1, 3, 32, 32))  # rows are 1024 R, 1024 G, 1024 B
        ys.append(torch.as_tensor(batch["labels"]))
    return torch.cat(xs), torch.cat(ys)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) -> float (N, 3, 32, 32), standardized per channel."""
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the 4-pixel zero-padded image, and a random horizontal flip. (N, 3, 32, 32)."""
    n = x.shape[0]
    padded = F.pad(x, (4, 4, 4, 4))  # (N, 3, 40, 40)
    dx = torch.randint(0, 9, (n,), generator=generator)
    dy = torch.randint(0, 9, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(32).view(1, 32)).to(x.device)  # (N, 32)
    cols = (dx.view(n, 1) + torch.arange(32).view(1, 32)).to(x.device)  # (N, 32)
    idx_n = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    idx_c = torch.arange(3, device=x.device).view(1, 3, 1, 1)
    out = padded[idx_n, idx_c, rows.view(n, 1, 32, 1), cols.view(n, 1, 1, 32)]  # (N, 3, 32, 32)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


def batches(x, y, batch_size, generator=None, train=False):
    """Yield (images, labels) mini-batches; shuffled and augmented when train=True."""
    order = torch.randperm(len(x), generator=generator) if train else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        idx = order[i : i + batch_size]
        xb = x[idx]
        if train:
            xb = augment(xb, generator)
        yield normalize(xb), y[idx]


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------
class LambdaLayer(nn.Module):
    """Wraps a function as a layer (for the parameter-free shortcut)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection. (N, c_in, H, W) -> (N, c_out, H/stride, W/stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            # Option A from the ResNet paper (He et al. 2016, section 4.2, CIFAR-10): subsample by 2 and pad the
            # new channels with zeros. No extra parameters, unlike the 1x1 conv the handout suggests.
            pad = (c_out - c_in) // 2
            self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (N, c_out, H', W')
        out = self.bn2(self.conv2(out))  # (N, c_out, H', W')
        return F.relu(out + self.shortcut(x))  # (N, c_out, H', W')


class ResNet20(nn.Module):
    """ResNet20 for CIFAR-10: a 3x3 stem, 3 stages of 3 BasicBlocks (16, 32, 64 channels), global average
    pooling and a linear classifier. About 0.27M parameters. (N, 3, 32, 32) -> (N, 10) logits."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, stride=1)
        self.layer2 = self._stage(16, 32, stride=2)
        self.layer3 = self._stage(32, 64, stride=2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(c_in: int, c_out: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out), BasicBlock(c_out, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (N, 16, 32, 32)
        out = self.layer1(out)  # (N, 16, 32, 32)
        out = self.layer2(out)  # (N, 32, 16, 16)
        out = self.layer3(out)  # (N, 64, 8, 8)
        out = out.mean(dim=(2, 3))  # (N, 64)
        return self.linear(out)  # (N, 10)


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------
def lr_for_epoch(epoch: int) -> float:
    """The learning rate of epoch `epoch` (0-based): 0.1 for epochs 0-4, 0.01 for epochs 5-9."""
    return 0.1 if epoch < 5 else 0.01


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=lr_for_epoch(0), momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor):
    """One optimization step on a batch. Returns (loss as a float, number of correct predictions)."""
    model.train()
    optimizer.zero_grad()
    logits = model(x)  # (N, 10)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    optimizer.step()
    return loss.item(), (logits.argmax(dim=1) == y).sum().item()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str = "cpu", batch_size: int = 500) -> float:
    """Accuracy in percent of `model` on uint8 images x (N, 3, 32, 32) with labels y (N,)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for xb, yb in batches(x, y, batch_size):
            correct += (model(xb.to(device)).argmax(dim=1) == yb.to(device)).sum().item()
    return 100.0 * correct / len(x)


def save_checkpoint(path: str, model: nn.Module, epoch: int, history: dict) -> None:
    """Save {"net": state_dict, "epoch": epochs completed, "history": history} to `path`."""
    torch.save({"net": model.state_dict(), "epoch": epoch, "history": history}, path)


def resume(path: str, model: nn.Module, optimizer: torch.optim.Optimizer):
    """Load a checkpoint into `model`, set the optimizer's LR for the next epoch, and return
    (the next epoch to run, the history so far)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    # strict=False: the given pretrain_model.pth has 1x1-conv shortcuts, which my option-A blocks do not need
    missing, unexpected = model.load_state_dict(ckpt["net"], strict=False)
    print(f"resumed from {path}: ignored {len(unexpected)} shortcut tensors")
    start = int(ckpt["epoch"])
    set_lr(optimizer, lr_for_epoch(start))
    return start, {k: list(v) for k, v in ckpt["history"].items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py/")
    ap.add_argument("--epochs", type=int, default=NUM_EPOCHS)
    ap.add_argument("--resume", help="checkpoint to continue from, e.g. pretrain_model.pth")
    ap.add_argument("--out", default="final.pth")
    ap.add_argument("--save-at", type=int, action="append", default=[], help="also save after this epoch")
    ap.add_argument("--subset", type=int, default=0, help="train on the first N images only (smoke tests)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)

    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    x_train, y_train = load_cifar10(args.data_root, train=True)  # (50000, 3, 32, 32), (50000,)
    x_test, y_test = load_cifar10(args.data_root, train=False)  # (10000, 3, 32, 32), (10000,)
    if args.subset:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
    model = ResNet20().to(args.device)
    optimizer = make_optimizer(model)
    start, history = 0, {"train_loss": [], "train_acc": [], "test_acc": []}
    if args.resume:
        start, history = resume(args.resume, model, optimizer)
        model.to(args.device)
    for epoch in range(start, args.epochs):
        set_lr(optimizer, lr_for_epoch(epoch))
        t0, loss_sum, correct = time.time(), 0.0, 0
        for xb, yb in batches(x_train, y_train, BATCH_SIZE, generator=gen, train=True):
            loss, right = train_step(model, optimizer, xb.to(args.device), yb.to(args.device))
            loss_sum += loss * len(yb)
            correct += right
        history["train_loss"].append(loss_sum / len(x_train))
        history["train_acc"].append(100.0 * correct / len(x_train))
        history["test_acc"].append(evaluate(model, x_test, y_test, args.device))
        print(
            f"epoch {epoch}: lr {optimizer.param_groups[0]['lr']:g} loss {history['train_loss'][-1]:.4f} "
            f"train {history['train_acc'][-1]:.2f}% test {history['test_acc'][-1]:.2f}% ({time.time() - t0:.0f} s)",
            flush=True,
        )
        if epoch + 1 in args.save_at:
            save_checkpoint(f"epoch{epoch + 1}.pth", model, epoch + 1, history)
    save_checkpoint(args.out, model, args.epochs, history)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
