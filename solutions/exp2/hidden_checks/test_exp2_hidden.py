"""exp2 hidden checks: the judge measures final.pth's accuracy itself, in the model the student trained.

Accuracy credit (ACCURACY below): 100% of the points at >= 70% test accuracy, 0 at <= 50%, linear in between
(60% earns half). The measurement is deterministic on a given machine (eval mode, no augmentation, fixed batch
order); across CPU thread counts or GPUs, float reductions may move it by about 0.01 points, far inside the
1.5-point tolerance of the trend check.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from exp2_accuracy import TREND_TOLERANCE, measure, state_dict_of
from exp2_judge import (
    REFERENCE_STATE,
    CheckpointRoundtrip,
    Normalization,
    evaluate_problem,
    history_of,
    key_mismatch,
    normalizations_in,
    saved_checkpoint,
)

from grader.judge import (
    CIFAR10_CLASSES,
    CheckFailed,
    ContestantError,
    FileBytes,
    PickledModel,
    WeightsError,
    accuracy_threshold,
    defer,
    fail,
    weights_from_bytes,
)

# The whole test set in a fixed order: no seed. Tolerance: float reductions on another machine or thread
# count move the measurement by about 0.01 points; 0.05 covers that, in the student's favour.
ACCURACY = accuracy_threshold(full=70.0, zero=50.0, seed=None, tolerance=0.05)
EPOCHS = 10


def test_accuracy(submission, data_root, check, contestant):
    try:
        claimed = _claims(submission.weights("final.pth"))[1]
    except WeightsError:  # measure() says what is wrong with the file
        claimed = None
    m = measure(submission.path("final.pth"), data_root, contestant, _pipelines(submission),
                claimed[-1] if claimed else None)  # fmt: skip
    for n in m.notes:
        check.note(n)
    check.confusion(m.confusion, CIFAR10_CLASSES)
    what = "final.pth, measured by the judge on the 10,000 CIFAR-10 test images"
    ACCURACY.grade(m.accuracy, what)


def test_claimed_trend(submission, data_root, check, contestant):
    ckpt = submission.weights("final.pth")
    history, claimed, said = _claims(ckpt)
    for note in said:
        check.note(note)
    if claimed is None:
        if problem := _save_problem(contestant):  # final.pth came from that save_checkpoint: one slip, charged there
            defer("checkpoint_resume", f"final.pth has no history['test_acc'], and {problem}")
        bare = isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values())
        what = ("holds a whole model" if isinstance(ckpt, PickledModel) else "is a bare state_dict") if bare else ""
        fail(f"final.pth {what}, so it carries no history: save it with save_checkpoint(path, model, epoch, "
             "history), which keeps {'net': ..., 'epoch': ..., 'history': {'test_acc': [...], ...}}" if bare
             else "final.pth has no history['test_acc'] (a list of test accuracies, one per epoch): save it with "
             "save_checkpoint(path, model, epoch, history)")  # fmt: skip
    check.plot("test_acc", claimed)
    for extra in ("train_acc", "train_loss"):  # drawn too when present: the accuracy and the loss curve
        if (values := numbers(history.get(extra))) is not None:
            check.plot(extra, values)
    if len(claimed) != EPOCHS:
        if (skipped := _resume_offset(contestant)) and len(claimed) == EPOCHS - skipped:
            # resumed from pretrain_model.pth with a resume() off by `skipped`: one slip, charged there
            check.note(f"not charged here: history['test_acc'] has {len(claimed)} entries, not {EPOCHS}, because "
                       f"resume() returns a start epoch off by {skipped:+d}, so resuming pretrain_model.pth "
                       f"{'skipped' if skipped > 0 else 'repeated'} {abs(skipped)} epoch(s); that mistake is charged "
                       "once, by checkpoint_resume")  # fmt: skip
        elif len(claimed) < EPOCHS and _history_lost(contestant):  # resumed, and resume() dropped the history
            check.note(f"not charged here: history['test_acc'] has {len(claimed)} entries, not {EPOCHS}, because "
                       "resume() does not return the saved history, so a resumed run loses the epochs before it; "
                       "that mistake is charged once, by checkpoint_resume")  # fmt: skip
        else:
            fail(f"history['test_acc'] has {len(claimed)} entries; expected {EPOCHS}, one per epoch")
    acc = measure(submission.path("final.pth"), data_root, contestant, _pipelines(submission), claimed[-1]).accuracy
    gap = abs(claimed[-1] - acc)
    if gap > TREND_TOLERANCE and max(claimed) <= 1 and abs(100 * claimed[-1] - acc) <= TREND_TOLERANCE:
        # the claims are true, as fractions where the handout keeps percent (evaluate()'s own slip, if it returns
        # fractions, is evaluation_loop's to charge)
        check.plot("test_acc", [100 * c for c in claimed])
        check.note(f"history['test_acc'] holds fractions (the last is {claimed[-1]:.4f}), where the handout's "
                   f"checkpoint keeps percent: read as {100 * claimed[-1]:.2f}%, within {TREND_TOLERANCE:g} points of "
                   f"the judge's {acc:.2f}% (this costs nothing; save accuracies in percent next time)")  # fmt: skip
        return
    if not math.isfinite(gap) or gap > TREND_TOLERANCE:
        if problem := evaluate_problem(contestant, data_root):  # the claims came from a wrong evaluate()
            defer("evaluation_loop", f"your claimed accuracies come from evaluate(), and {problem[1]}")
        fail(f"the last claimed test accuracy is {claimed[-1]:.2f}% but the judge measured {acc:.2f}% "
             f"(allowed gap {TREND_TOLERANCE:g} points)")  # fmt: skip


def _pipelines(submission: Any) -> list[tuple[Normalization, str]]:
    """The numbers exp2.py passes to torchvision's Normalize, other than the handout's, each with where it is."""
    try:
        source = submission.text("exp2.py")
    except (OSError, CheckFailed, UnicodeDecodeError):
        return []
    return [(norm, submission.at("exp2.py", line)) for norm, line in normalizations_in(source)]


def _save_problem(contestant: Any) -> str | None:
    """What checkpoint_resume finds wrong with what save_checkpoint writes, or None."""
    try:
        saved_checkpoint(_roundtrip(contestant))
    except CheckFailed as exc:
        return str(exc)
    except ContestantError as exc:
        return f"saving and resuming a checkpoint fails: {exc}"
    return None


def _resume_offset(contestant: Any) -> int:
    """How far resume()'s start epoch is off (+1: it returns epoch + 1), or 0 when it is right or cannot say."""
    try:
        start = _roundtrip(contestant)["start"]
    except ContestantError:
        return 0
    return start - 7 if isinstance(start, int) else 0


def _history_lost(contestant: Any) -> bool:
    """Whether resume() returns other test accuracies than the checkpoint saved (charged by checkpoint_resume)."""
    try:
        return _roundtrip(contestant)["history"].get("test_acc") != history_of(7)["test_acc"]
    except ContestantError:
        return False


def _roundtrip(contestant: Any) -> CheckpointRoundtrip:
    """checkpoint_resume's probe: save after 7 epochs, then resume."""
    return contestant.call("checkpoint_roundtrip", epoch=7, history=history_of(7), returns=CheckpointRoundtrip)


def _claims(ckpt: Any) -> tuple[dict[str, Any], list[float] | None, list[str]]:
    """final.pth's history as a dict of lists, its claimed test accuracies (None: none found), and where they were
    found when that is not history['test_acc']."""
    history, said = ckpt.get("history") if isinstance(ckpt, dict) else None, []
    if isinstance(history, list) and history and all(isinstance(h, dict) for h in history):
        # one dict per epoch, [{"epoch": 0, "test_acc": 41.2, ...}, ...]: the same numbers, kept otherwise
        history = {k: [h.get(k) for h in history] for k in history[0]}
        said.append("final.pth's history is a list of per-epoch dicts; the grader read each one's 'test_acc' (the "
                    "handout keeps one dict of lists: {'test_acc': [...], 'train_acc': [...], 'train_loss': [...]})")
    claimed = numbers(history.get("test_acc")) if isinstance(history, dict) else None
    if claimed is None and (found := _named_otherwise(ckpt, history)):
        where, claimed = found
        said.append(f"final.pth keeps the test accuracies as {where}; the grader read them there (the handout's "
                    "main() keeps them in history['test_acc'])")  # fmt: skip
    return (history if isinstance(history, dict) else {}), claimed, said


# How students who write their own loop name the test accuracies: test_accs, val_acc, test_accuracy, acc_list...
_ACC_NAME = re.compile(r"(test|val|valid|validation|eval)?[_ ]?acc(s|uracy|uracies)?([_ ]?(list|history|hist))?",
                       re.IGNORECASE)  # fmt: skip


def _named_otherwise(ckpt: Any, history: Any) -> tuple[str, list[float]] | None:
    """(where, values) for the one list of numbers that final.pth keeps under another name for the test
    accuracies, in its history or beside "net"; None where there is none, or more than one."""
    places = [(f"history[{k!r}]", k, v) for k, v in (history.items() if isinstance(history, dict) else ())]
    places += [(f"final.pth[{k!r}]", k, v) for k, v in (ckpt.items() if isinstance(ckpt, dict) else ())]
    found = [(where, values) for where, k, v in places
             if isinstance(k, str) and _ACC_NAME.fullmatch(k) and (values := numbers(v)) and len(values) > 1]
    return found[0] if len(found) == 1 else None


def numbers(values: Any) -> list[float] | None:
    """A history list as plain numbers, or None. An accuracy kept as a one-element tensor (`correct / total` on
    tensors, no .item()) counts as its value; a numpy scalar was read as its number already. A whole history kept
    as a 1-D tensor or numpy array (read as a tensor), or a tuple, counts as its list."""
    if isinstance(values, torch.Tensor) and values.dim() == 1 and not values.dtype.is_complex:
        values = values.tolist()
    if isinstance(values, tuple):
        values = list(values)
    if not isinstance(values, list):
        return None
    out = []
    for v in values:
        if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.dtype.is_complex:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        out.append(float(v))
    return out


def test_rerun_writes_checkpoint(contestant, data_root):
    """GPU only, and only where assignment.toml enables it: exp2.py itself, one short epoch on a subset."""
    r = contestant.call("rerun", subset=2048, returns=FileBytes)
    state, _ = state_dict_of(weights_from_bytes(r.numpy().tobytes(), "rerun.pth"), "the re-run's checkpoint")
    if problem := key_mismatch({k: list(v.shape) for k, v in state.items()}, REFERENCE_STATE):
        fail(f"the re-run's checkpoint does not match the reference: {problem}")
