"""exp2 public checks: students run these with `grader check exp2 DIR --data-root DATA`."""

import math

import torch
from exp2_judge import (
    PARAM_TOLERANCE,
    REFERENCE_STATE,
    SCHEDULE,
    TARGET_PARAMS,
    CheckpointRoundtrip,
    DescribeModel,
    TrainSteps,
    batch_loss,
    cifar_test_images,
    evaluate_problem,
    extra_layers,
    history_of,
    key_mismatch,
    normalize,
    saved_checkpoint,
    schedule_in_place,
    scheduler_per_batch,
    small_cnn_state,
)

from grader.judge import (
    ContestantError,
    PickledModel,
    defer,
    expect_shape,
    fail,
    partial,
    renamed_keys,
)


def test_architecture(contestant, data_root):
    x, _ = cifar_test_images(data_root, 4)
    info = contestant.call("describe_model", x=normalize(x), returns=DescribeModel)
    expect_shape(info["output"], (4, 10), "ResNet20()(x) for x of shape (4, 3, 32, 32)")
    n = info["num_params"]
    if abs(n - TARGET_PARAMS) > PARAM_TOLERANCE * TARGET_PARAMS:
        fail(f"ResNet20 has {n:,} parameters; expected about 0.27M ({TARGET_PARAMS:,} ± {PARAM_TOLERANCE:.0%}): "
             "3 stages of 3 BasicBlocks with 16, 32 and 64 channels")  # fmt: skip
    if problem := key_mismatch(info["state"], REFERENCE_STATE):
        if renamed := renamed_keys(info["state"], REFERENCE_STATE):
            partial(2 / 3, f"ResNet20 has the handout's layers and shapes, under other names ({renamed}): name "
                           "them as the handout does, so that its checkpoints (pretrain_model.pth) load")  # fmt: skip
        if extra := extra_layers(info["state"], REFERENCE_STATE):
            partial(2 / 3, f"ResNet20 has every layer of the handout's, and {extra}; until then the handout's "
                           "checkpoints (pretrain_model.pth) do not load into it")  # fmt: skip
        missing = REFERENCE_STATE.keys() - info["state"].keys()
        if missing and all("shortcut" in k for k in missing) and problem.count(":") == 1:
            problem = ("its shortcuts have no weights (the paper's option A, zero-padding); the handout asks for a "
                       f"1x1 convolution and BatchNorm on the shortcut where the shape changes (option B): {problem}")
        fail(f"ResNet20's state_dict does not match the handout's: {problem}")


def test_gradients_flow(contestant, data_root):
    x, y = cifar_test_images(data_root, 32, seed=1)
    try:
        norms = contestant.call("gradient_norms", x=normalize(x), y=y, returns=dict[str, float | None])
    except ContestantError as exc:
        try:  # does a model that exists fail already going forward? Then the architecture check charges it.
            contestant.call("describe_model", x=normalize(x[:4]), returns=DescribeModel)
        except ContestantError as forward:
            if forward.kind != "not_implemented":
                defer("architecture", f"ResNet20() does not run ({exc.message.splitlines()[0]})")
        raise
    none = [k for k, v in norms.items() if v is None]
    if none and set(none) <= norms.keys() - REFERENCE_STATE.keys() and extra_layers(norms, REFERENCE_STATE):
        defer("architecture", f"{', '.join(none[:5])} get no gradient because the forward pass never uses them; "
                              "they are not layers of the handout's ResNet20")  # fmt: skip
    bad = [k for k, v in norms.items() if v is not None and not math.isfinite(v)]
    zero = [k for k, v in norms.items() if v == 0.0]
    for label, names in (("no gradient", none), ("a NaN or infinite gradient", bad), ("a zero gradient", zero)):
        if names:
            fail(f"after one backward pass {len(names)} parameter(s) have {label}: {', '.join(names[:5])}")


SIGNATURE_CREDIT = 0.75  # a train_step that trains, with parameters other than the handout's


def test_training_step(contestant, data_root):
    x, y = cifar_test_images(data_root, 64, seed=2)
    x = normalize(x)
    init = small_cnn_state(seed=0)  # the judge's weights: it knows the loss before training
    got = contestant.call("train_steps", x=x, y=y, init_state=init, steps=8, lr=0.05, seed=0, returns=TrainSteps)
    try:
        before, last = batch_loss(init, x, y), batch_loss(got["state"], x, y)  # measured by the judge
    except (RuntimeError, KeyError) as exc:  # weights of another shape: train_step replaced the model's layers
        fail(f"after train_step the small CNN's weights no longer fit it ({str(exc).splitlines()[0][:200]})")
    differs = (f"train_step is {got['signature']}, not the handout's train_step(model, optimizer, x, y); the judge "
               "called it by its parameters' names, with nn.CrossEntropyLoss() for a loss" if got["signature"] else "")
    if not got["stepped"] and math.isfinite(last) and last < before:
        # it trains, but with an optimizer of its own: how well depends on the LR it picked; what is lost is not
        partial(0.5, f"train_step does not step the optimizer it is given (after 8 calls that SGD has no momentum "
                     f"buffers, yet the loss fell from {before:.3f} to {last:.3f}): it builds or keeps an optimizer of "
                     "its own, so the LR that set_lr gives each epoch never reaches training (and one built in "
                     "train_step starts its momentum again at every batch); use the optimizer argument: "
                     "optimizer.zero_grad(), loss.backward(), optimizer.step()" + (f". Also, {differs}" if differs
                                                                                  else ""))  # fmt: skip
    if not math.isfinite(last) or not last < 0.7 * before:
        fail(f"8 train_step calls on one fixed batch of 64 (a small CNN, SGD lr 0.05, momentum 0.9) took the loss from "
             f"{before:.3f} to {last:.3f}, as the judge measures it; expected below {0.7 * before:.3f} (does "
             "train_step call optimizer.zero_grad() before loss.backward(), then optimizer.step()?)"
             + (f". Note: {differs}" if differs else ""))  # fmt: skip
    if differs:  # it trains: what is lost is the interface the handout states
        partial(SIGNATURE_CREDIT, f"{differs}. Keep the handout's signature (compute the loss inside with "
                                  "F.cross_entropy(model(x), y)) so that code written against it runs yours")


def test_lr_schedule(contestant, submission, check):
    try:
        got = contestant.call("schedule", epochs=10, returns=list[float])
    except ContestantError as exc:
        if exc.kind == "not_implemented" and (instead := schedule_in_place(submission.text("exp2.py"))):
            check.note(f"lr_for_epoch is not written; your training follows the schedule with {instead[1]} "
                       f"({submission.at('exp2.py', instead[0])}), stepped once per epoch, which the handout allows "
                       "in its place")  # fmt: skip
            return
        raise
    problems = [f"lr_for_epoch({epoch}) returned {lr:g}; expected {want:g} (LR 0.1 for epochs 0-4, 0.01 for 5-9)"
                for epoch, (lr, want) in enumerate(zip(got, SCHEDULE, strict=False))
                if not math.isclose(lr, want, rel_tol=1e-9)][:1]  # fmt: skip
    if stepped := scheduler_per_batch(submission.text("exp2.py")):  # the schedule the training really followed
        line, scheduler = stepped
        problems.append(f"your training loop steps {scheduler} once per batch ({submission.at('exp2.py', line)}, "
                        "inside the batch loop), so its steps count batches, not epochs: the LR drops after a few "
                        "batches instead of after 5 epochs; call scheduler.step() once per epoch, after the batch "
                        "loop")  # fmt: skip
    if problems:
        fail("; and ".join(problems))


def test_checkpoint_resume(contestant):
    # Resume after 7 epochs (mid-phase, so an off-by-one schedule costs only the schedule check), then after 5
    # (pretrain_model.pth's case, where the LR changes): resume() must set the LR of the epoch it returns.
    history = history_of(7)
    r = contestant.call("checkpoint_roundtrip", epoch=7, history=history, returns=CheckpointRoundtrip)
    saved, renamed = saved_checkpoint(r)
    if not isinstance(saved["epoch"], int) or saved["epoch"] != 7:
        fail(f"save_checkpoint(..., epoch=7, ...) stored epoch {saved['epoch']!r}; expected 7")
    net, slips = saved["net"], []  # (fraction of the points it costs, what to say)
    if r["start"] != 7:  # the weights, the history and the LR may still come back: half of what resuming takes
        slips.append((0.5, f"resume() of a checkpoint saved after 7 epochs returned start epoch {r['start']}; "
                      "expected 7: the checkpoint's 'epoch' is the number of epochs completed, which is already the "
                      "index of the next epoch to run (epochs count from 0); return it as it is"))  # fmt: skip
    if r["max_weight_diff"] != 0.0:
        halved = sorted({str(v.dtype).removeprefix("torch.") for v in net.values() if isinstance(v, torch.Tensor)
                         and v.dtype in (torch.float16, torch.bfloat16)}) if isinstance(net, dict) else []  # fmt: skip
        if not halved or r["max_weight_diff"] >= 1e-2:
            fail(f"resume() did not restore the weights (they differ by up to {r['max_weight_diff']:.3g})")
        # the rounding of a half-precision save, not a lost restore
        slips.append((0.2, f"save_checkpoint stores the weights as {' and '.join(halved)}, so resume() restores "
                      f"them rounded (they differ by up to {r['max_weight_diff']:.3g}) and a resumed run does not "
                      "continue the one that was saved: save model.state_dict() as it is, in float32"))  # fmt: skip
    if r["resume_error"]:  # the save is the slip: resume() read the handout's form of the same checkpoint
        slips.append((0.5, "save_checkpoint stores the whole model under 'net' (the module object, pickled), and "
                      f"your own resume() fails on it ({r['resume_error']}): save {{'net': model.state_dict(), ...}}, "
                      "which torch.load(..., weights_only=True) reads and load_state_dict takes (resume() was checked "
                      "on a checkpoint saved that way)"))  # fmt: skip
    elif isinstance(net, PickledModel):
        slips.append((0.2, "save_checkpoint stores the whole model under 'net' (the module object, pickled): the "
                      "handout's checkpoints keep model.state_dict(), which torch.load(..., weights_only=True) reads "
                      "and any copy of the class loads; save {'net': model.state_dict(), ...}"))  # fmt: skip
    if renamed is not None:
        slips.append((0.3, f"save_checkpoint keeps the weights under {renamed!r}, not 'net': your own checkpoints "
                      "resume, but the handout's (pretrain_model.pth among them) keep the weights under 'net'; save "
                      "{'net': model.state_dict(), 'epoch': ..., 'history': ...} and read checkpoint['net'] in "
                      "resume()"))  # fmt: skip
    if (got := r["history"].get("test_acc")) != history["test_acc"]:  # the weights, epoch and LR may come back
        what = f"{len(got)} test accuracies, not the 7 saved" if got else "no test accuracies"
        slips.append((0.5, f"resume() of a checkpoint saved after 7 epochs returned {what}: return the checkpoint's "
                      "'history' with the start epoch, so that a resumed run's curve keeps the epochs before it"))
    lr_slip, schedule_slip, own = None, None, None
    for at in (7, 5):
        lr = r["lr"] if at == 7 else contestant.call("checkpoint_roundtrip", epoch=5, history=history_of(5),
                                                     returns=CheckpointRoundtrip)["lr"]  # fmt: skip
        if math.isclose(lr, SCHEDULE[at], rel_tol=1e-9):
            continue
        own = own or contestant.call("schedule", epochs=10, returns=list[float])
        if len(own) > at and not math.isclose(own[at], SCHEDULE[at], rel_tol=1e-9) and math.isclose(lr, own[at]):
            # resume() set what the student's own lr_for_epoch says: right, given a schedule lr_schedule charges
            schedule_slip = schedule_slip or (f"resume() set the LR your lr_for_epoch({at}) returns ({own[at]:g}); "
                                              f"epoch {at}'s is {SCHEDULE[at]:g}")  # fmt: skip
        else:
            lr_slip = lr_slip or (f"after resume() of a checkpoint saved after {at} epochs the optimizer's LR is "
                                  f"{lr:g}; expected {SCHEDULE[at]:g}, epoch {at}'s")  # fmt: skip
    if lr_slip:  # the weights, the epoch and the history came back: half of what resuming takes
        slips.append((0.5, f"{lr_slip}: set it in resume(), set_lr(optimizer, lr_for_epoch(start)) for the epoch it "
                      "returns"))  # fmt: skip
    if slips:
        partial(max(0.0, 1 - sum(cost for cost, _ in slips)), "; ".join(what for _, what in slips))
    if schedule_slip:
        defer("lr_schedule", schedule_slip)


def test_evaluation_loop(contestant, data_root):
    if problem := evaluate_problem(contestant, data_root):
        partial(*problem)
