"""Helpers for checks that evaluate weights themselves: the device, class names and confusion matrices.

Batch grading keeps one judge process per worker alive across submissions, so whatever a check caches at module
level (a test set moved to the device, a reference model class) is paid for once per worker, not per student.
"""

from __future__ import annotations

import os
from typing import Any

import torch

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                         "ankle boot"]  # fmt: skip


def judge_device() -> torch.device:
    """Where the judge evaluates weights: $GRADER_JUDGE_DEVICE, else the first visible GPU, else the CPU.

    A GPU and the CPU may disagree by about 0.01 accuracy points (float reduction order); thresholds state that
    tolerance. Within one machine the result is deterministic."""
    if choice := os.environ.get("GRADER_JUDGE_DEVICE"):
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def confusion_matrix(predicted: Any, target: Any, classes: int) -> list[list[int]]:
    """Counts of (true, predicted) pairs from two 1-D class-index tensors, as a (classes, classes) nested list."""
    pred = torch.as_tensor(predicted).long().flatten().cpu()
    true = torch.as_tensor(target).long().flatten().cpu()
    return torch.bincount(true * classes + pred, minlength=classes * classes).reshape(classes, classes).tolist()
