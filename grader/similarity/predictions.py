"""Prediction agreement: the share of the test images on which two models predict the same class.

The predictions are the judge's (for exp2, final.pth in the reference ResNet20 on the 10,000 CIFAR-10 test
images, measured while grading and kept in OUT/.state/predictions/). Agreement looks only at what a model
does, so it is blind to how its weights are arranged: permuting a network's hidden units, or any other
reparametrization, changes the weights completely and the predictions not at all.

Independently trained models of a class disagree on a share of the images that depends on the class: on exp2,
students resumed from one pretrain_model.pth disagree on 10-20% of the images, weak models on 70-85%, and in a
class of 99%-accurate models everyone agrees on 97%. So the threshold is the class's own, on a log scale of
disagreement, where "ten times fewer disagreements than usual" means the same in each of those classes:

    alikeness = -ln(disagreement + 1/N)      (N test images; 1/N keeps a perfect match finite)

A pair is flagged when its agreement is at least FLOOR and its alikeness has a modified z-score of at least 3.5
against all of the class's pairs (grader.similarity.stats). A copy whose weights were only disguised agrees on
99-100% of the images.
"""

from __future__ import annotations

import math

import numpy as np

# At least this share: on exp2, independent students agree on 80-90% and a copy fine-tuned for 50 steps on
# 80-92% (the weights find that one); a copy with permuted hidden units agrees on 99-100%.
FLOOR = 0.95


def alikeness(agreement: float, images: int) -> float:
    """-ln(disagreement + 1/images): the log scale on which the class's threshold is set."""
    return -math.log(max(0.0, 1.0 - agreement) + 1.0 / images)


def agreement_at(alike: float, images: int) -> float:
    """The agreement whose alikeness is `alike` (to state a threshold as an agreement)."""
    return min(1.0, 1.0 + 1.0 / images - math.exp(-alike))


def agreement_matrix(predictions: list[np.ndarray]) -> np.ndarray:
    """(n, n) share of positions where rows i and j hold the same class; NaN where the lengths differ."""
    n = len(predictions)
    out = np.full((n, n), np.nan)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(predictions):
        by_length.setdefault(len(p), []).append(i)
    for length, idx in by_length.items():
        if length == 0:
            continue
        stack = np.stack([predictions[i] for i in idx])  # (m, length)
        for a, i in enumerate(idx):
            same = (stack[a + 1 :] == stack[a]).mean(axis=1)  # (m - a - 1,)
            for b, s in enumerate(same, start=a + 1):
                out[i, idx[b]] = out[idx[b], i] = s
    return out
