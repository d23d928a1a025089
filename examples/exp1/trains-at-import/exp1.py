"""exp1: fit f(x) = x^2 + 2 sin(x) + cos(x - 1) - 5 with a small MLP.

Part 1. Complete the TODOs, then run `python exp1.py`. Vary NUM_TRAIN_EPOCHS (100, 1000, 10000, 50000)
        and LEARNING_RATE (1, 0.1, 0.01, 0.001) and note how the fit changes. Never change NUM_TRAIN_SAMPLES.
Part 2. Define your own function in `custom_f` and tune `build_custom_model` until it fits well too.

Running this file trains both models and writes model.pth = {"default": ..., "custom": ...}, the two
state_dicts. Submit exp1.py and model.pth.
"""

import torch
from torch import nn

NUM_TRAIN_SAMPLES = 1000  # fixed by the assignment: do not change it (the grader checks)
NUM_TRAIN_EPOCHS = 5000  # try 100, 1000, 10000, 50000
LEARNING_RATE = 0.01  # try 1, 0.1, 0.01, 0.001
X_MIN, X_MAX = -5.0, 5.0  # training range; the grader measures the fit on a grid over it
SEED = 0  # fixes the training data and the initial weights, so runs repeat exactly


def f(x: torch.Tensor) -> torch.Tensor:
    """The target, elementwise: f(x) = x^2 + 2 sin(x) + cos(x - 1) - 5. Same shape out as in."""
    return x**2 + 2 * torch.sin(x) + torch.cos(x - 1) - 5


def custom_f(x: torch.Tensor) -> torch.Tensor:
    """Your own target function, elementwise. It must differ from f and be smooth enough to fit."""
    return 3 * torch.sin(2 * x) + 0.5 * x


class MLP(nn.Module):
    """A small fully connected network mapping (N, 1) -> (N, 1)."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(1, hidden),  # (N, 1) -> (N, hidden)
            nn.Tanh(),
            nn.Linear(hidden, hidden),  # (N, hidden) -> (N, hidden)
            nn.Tanh(),
            nn.Linear(hidden, 1),  # (N, hidden) -> (N, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 1)
        return self.net(x)  # (N, 1)


def build_model() -> nn.Module:
    """The model for f. The grader loads model.pth["default"] into what this returns."""
    return MLP(hidden=64)


def build_custom_model() -> nn.Module:
    """The model for custom_f; tune it. The grader loads model.pth["custom"] into what this returns."""
    return MLP(hidden=64)


def make_data(fn, num_samples: int = NUM_TRAIN_SAMPLES, seed: int = SEED):
    """num_samples points drawn uniformly from [X_MIN, X_MAX]: x and fn(x), each (num_samples, 1)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(num_samples, 1, generator=g) * (X_MAX - X_MIN) + X_MIN  # (N, 1)
    return x, fn(x)  # (N, 1), (N, 1)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_epochs: int, lr: float) -> list:
    """Full-batch training on mean squared error with learning rate `lr`; returns each epoch's loss."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(num_epochs):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)  # scalar
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main() -> None:
    torch.manual_seed(SEED)
    trained = {}
    for name, fn, build in (("default", f, build_model), ("custom", custom_f, build_custom_model)):
        x, y = make_data(fn)
        model = build()
        losses = train(model, x, y, NUM_TRAIN_EPOCHS, LEARNING_RATE)
        print(f"{name}: epochs={NUM_TRAIN_EPOCHS} lr={LEARNING_RATE} first loss={losses[0]:.4f} last={losses[-1]:.6f}")
        trained[name] = model.state_dict()
    torch.save(trained, "model.pth")
    print("wrote model.pth")


# ---- my experiments for the report (Part 1) ----
import matplotlib.pyplot as plt

print("training the default and custom models...")
main()

# how does the learning rate change the fit? (plots for my report)
for lr in [1, 0.1, 0.01, 0.001]:
    torch.manual_seed(SEED)
    x, y = make_data(f)
    model = build_model()
    losses = train(model, x, y, 50000, lr)
    print(f"lr={lr}: final loss {losses[-1]:.6f}")
    plt.plot(losses, label=f"lr={lr}")
plt.yscale("log")
plt.legend()
plt.savefig("lr_curves.png")
plt.show()
