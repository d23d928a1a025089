"""lenet public checks: students run these with `grader check lenet DIR --data-root DATA`."""

import math

import torch
from lenet_judge import (
    LAYER_NAMES,
    LAYER_SHAPES,
    NUM_PARAMS,
    STATE_SHAPES,
    TRAIN_BATCH,
    TRAIN_IMAGES,
    TRAIN_LR,
    Describe,
    EvaluateKnown,
    ignored_lr,
    images,
    key_mismatch,
    one_epoch,
    shape_trace,
    shapes_differ,
    small_model_loss,
    training_slip,
)

from grader.judge import defer, expect_curve, expect_shape_trace, fail, partial, renamed_keys

TRAIN_RATIO = 0.8  # the reference's 8 steps take the fixed model from 2.33 to 1.48 (ratio 0.63)
XAVIER_STD_TOLERANCE = 0.15  # a layer's sample std within 15% of a / sqrt(3); the smallest layer has 150 weights


def test_layer_shapes(contestant):
    expect_shape_trace(shape_trace(contestant), LAYER_SHAPES, LAYER_NAMES, "build_lenet() on a (1, 1, 28, 28) input")


def test_parameter_count(contestant):
    info = contestant.call("describe", returns=Describe)
    if (info["num_params"] != NUM_PARAMS or key_mismatch(info["state"], STATE_SHAPES)) and (
            problem := shapes_differ(contestant)):  # fmt: skip
        defer("layer_shapes", f"the parameters follow from the layers, and {problem}")
    if info["num_params"] != NUM_PARAMS:
        fail(f"build_lenet() has {info['num_params']:,} parameters; expected {NUM_PARAMS:,} (d2l's LeNet)")
    if problem := key_mismatch(info["state"], STATE_SHAPES):
        if shifted := renamed_keys(info["state"], STATE_SHAPES):
            if not all(k.split(".", 1)[0].isdigit() for k in info["state"]):
                fail(f"build_lenet() has d2l's layers under names of its own ({shifted}): the handout asks for one "
                     "nn.Sequential of the 12 layers, whose indices (0, 3, 7, 9, 11) lenet.pth is read by; pass "
                     "the layers to nn.Sequential(...) in order, activations and pooling as layers too, without an "
                     "OrderedDict of names or a module of your own")  # fmt: skip
            fail(f"build_lenet() has d2l's layers at other indices ({shifted}): a layer in front of them (such "
                 "as old d2l's Reshape) moves every index; remove it: lenet.pth is read by d2l's indices")  # fmt: skip
        fail(f"build_lenet()'s state_dict does not match d2l's nn.Sequential: {problem}")


def test_init_weights(contestant):
    weights = contestant.call("initialised_weights", returns=dict[str, torch.Tensor])
    if not weights:
        fail("build_lenet() has no Conv2d or Linear layers")
    for name, w in weights.items():
        if w.dim() < 2 or w.numel() < 2:
            fail(f"layer {name}'s weight has shape {tuple(w.shape)}; expected a Conv2d or Linear weight")
        fan_out, fan_in = w.shape[0] * w[0, 0].numel(), w.shape[1] * w[0, 0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Xavier-uniform draws from U(-bound, bound)
        top, std = float(w.double().abs().max()), float(w.double().std())
        if top > bound * (1 + 1e-6) or abs(std - bound / math.sqrt(3)) > XAVIER_STD_TOLERANCE * bound / math.sqrt(3):
            fail(f"layer {name}'s weights after net.apply(init_weights) have max |w| {top:.4f} and std {std:.4f}; "
                 f"Xavier-uniform gives max <= {bound:.4f} and std {bound / math.sqrt(3):.4f} "
                 f"(fan_in {fan_in}, fan_out {fan_out}){_looks_like(std, fan_in, fan_out)}")  # fmt: skip


def _looks_like(std: float, fan_in: int, fan_out: int) -> str:
    """What another common initialisation with this std is, for the message; "" when none matches."""
    known = (
        (math.sqrt(2 / (fan_in + fan_out)), "xavier_normal_, which draws from a normal distribution; the handout "
         "asks for nn.init.xavier_uniform_"),
        (math.sqrt(2 / fan_in), "Kaiming/He initialisation (kaiming_uniform_ or kaiming_normal_); the handout asks "
         "for nn.init.xavier_uniform_"),
        (1 / math.sqrt(3 * fan_in), "PyTorch's default initialisation, as if init_weights never reached this layer: "
         "apply it with net.apply(init_weights), and test type(m) == nn.Linear or type(m) == nn.Conv2d"),
        (0.01, "normal(0, 0.01); the handout asks for nn.init.xavier_uniform_"),
    )  # fmt: skip
    for want, what in known:
        if abs(std - want) <= XAVIER_STD_TOLERANCE * want:
            return f": these look like {what}"
    return ""


def test_evaluate_accuracy(contestant, data_root):
    x, _ = images(data_root, 400, train=False, seed=1)
    for flip in (0.0, 0.25):
        r = contestant.call("evaluate_known", x=x, flip_fraction=flip, returns=EvaluateKnown)
        if not math.isclose(r["student"], r["expected"], abs_tol=1e-9):
            said = f"evaluate_accuracy returned {r['student']:.4g} on 400 images whose accuracy is {r['expected']:.4g}"
            for scale, what in ((len(x), "the number of correct predictions; divide it by the number of images"),
                                (100, "a percentage; the handout asks for a fraction from 0 to 1")):  # fmt: skip
                if math.isclose(r["student"], scale * r["expected"], abs_tol=1e-6):
                    fail(f"{said}: {what}")
            evaluated = contestant.call("evaluate_known", x=x, flip_fraction=flip, train_mode=False,
                                        returns=EvaluateKnown)  # fmt: skip
            if math.isclose(evaluated["student"], evaluated["expected"], abs_tol=1e-9):
                # the counting is right; only a net with dropout or batch norm (not d2l's LeNet) is measured wrong
                partial(0.5, f"{said} in eval mode, and the right value once the net arrives in eval mode: does it "
                        "call net.eval()? The grader's model has dropout and arrives in train mode, as a net does "
                        "between training epochs; d2l's evaluate_accuracy switches it to eval mode first")  # fmt: skip
            fail(f"{said}, even with the net already in eval mode: count the predicted classes that equal y, "
                 "(net(X).argmax(dim=1) == y).sum(), and divide by the number of images (torch.max(out, 1) gives "
                 "(values, indices): the class is [1], not [0])")  # fmt: skip


def test_training_epoch(contestant, data_root):
    x, y, r = one_epoch(contestant, data_root)
    before, after = small_model_loss(r["before"], x, y), small_model_loss(r["after"], x, y)
    if slip := training_slip(x, y, r):
        fail(f"{slip} (the mean loss went from {before:.4f} to {after:.4f} on {TRAIN_IMAGES} images)")
    if slip := ignored_lr(contestant, data_root, r):  # charged once, whatever its own rate then does to the loss
        partial(0.5, f"{slip}: the handout's --lr, and the grader's calls, need train_epoch to obey it")
    expect_curve([before, after], f"one epoch of train_epoch on {TRAIN_IMAGES} images (lr {TRAIN_LR}, batch "
                 f"{TRAIN_BATCH}, a fixed linear model) took the mean loss from {before:.4f} to {after:.4f}",
                 max_ratio=TRAIN_RATIO)  # fmt: skip
