"""lenet graded end to end on the real Fashion-MNIST: the bundled examples and their messages."""

from __future__ import annotations

import pytest

from grader.grading import grade
from grader.selftest import run_example
from tests.conftest import example_names

pytestmark = pytest.mark.slow



def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


@pytest.mark.parametrize("name", example_names("lenet"))
def test_bundled_example_scores(course, data_root, name):
    """Each example scores what examples/lenet/expected.toml says: the same comparison as `grader selftest`."""
    outcome = run_example(course, "lenet", name, data_root)
    assert outcome.diffs == [], "\n".join(outcome.diffs)


def test_messages(course, data_root):
    folder = course.examples_dir("lenet") / "no-padding"
    checks = by_id(grade(course, "lenet", folder, data_root=data_root,
                         only=["layer_shapes", "parameter_count", "test_accuracy"]))  # fmt: skip
    assert checks["layer_shapes"].message == ("build_lenet() on a (1, 1, 28, 28) input: after conv1 (5x5, padding 2) "
                                              "the shape is (1, 6, 24, 24); expected (1, 6, 28, 28)")  # fmt: skip
    assert checks["parameter_count"].status == "passed" and checks["parameter_count"].notes[0].startswith(
        "not charged here: the parameters follow from the layers, and after conv1 (5x5, padding 2) the shape is "
        "(1, 6, 24, 24)")  # fmt: skip
    assert checks["test_accuracy"].message.startswith("lenet.pth in your own LeNet, measured by the judge on the "
                                                      "10,000 test images: accuracy 0.8043")  # fmt: skip
    assert checks["test_accuracy"].notes == ["lenet.pth does not load into the reference d2l LeNet (mis-shaped: "
                                             "7.weight (120, 256) (expected (120, 400))): measured in your own model, "
                                             "exported with those weights (this costs nothing by itself)"]  # fmt: skip
    relu = by_id(grade(course, "lenet", course.examples_dir("lenet") / "relu-maxpool", data_root=data_root,
                       only=["forward_matches_reference"]))  # fmt: skip
    assert "sigmoid activations, average pooling" in relu["forward_matches_reference"].message
    assert "your forward uses relu where d2l has sigmoid and max_pool2d where d2l has avg_pool2d" in relu[
        "forward_matches_reference"].message  # fmt: skip


def test_a_train_epoch_that_never_zeroes_the_gradients_is_caught(course, data_root, example):
    """Without zero_grad the loss still falls on the check's 8 steps (the kept gradients act like momentum), so
    the falling loss alone would pass it: the judge recognises the accumulated steps in the weights. The
    lenet.pth such a loop trains (lr 0.9: it diverges to chance) loses its accuracy points with the cause named."""
    import torch

    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    assert "        optimizer.zero_grad()\n" in src
    (folder / "lenet.py").write_text(src.replace("        optimizer.zero_grad()\n", "        # 梯度清零? \n"))
    sd = torch.load(folder / "lenet.pth", weights_only=True)
    torch.save({k: torch.zeros_like(v) for k, v in sd.items()}, folder / "lenet.pth")  # every class scored alike
    checks = by_id(grade(course, "lenet", folder, data_root=data_root, only=["training_epoch", "test_accuracy"]))
    check = checks["training_epoch"]
    assert check.status == "failed" and check.message.startswith("train_epoch never resets the gradients")
    assert "optimizer.zero_grad() before loss.backward()" in check.message
    assert checks["test_accuracy"].score == 0, checks["test_accuracy"].message
    assert checks["test_accuracy"].notes[-1].startswith("a likely cause: train_epoch never resets the gradients")
    solution = grade(course, "lenet", course.examples_dir("lenet") / "solution", data_root=data_root,
                     only=["training_epoch"])  # fmt: skip
    assert by_id(solution)["training_epoch"].status == "passed"


@pytest.mark.parametrize("old, new, score, says", [
    ("    net.eval()\n    correct = 0\n", "    correct = 0  # no dropout in my LeNet anyway\n", 5,
     "the right value once the net arrives in eval mode: does it call net.eval()?"),
    ("(net(xb).argmax(dim=1) == yb)", "(torch.max(net(xb), 1)[0] == yb)", 0,
     "even with the net already in eval mode: count the predicted classes that equal y"),
], ids=["no-eval", "max-values"])  # fmt: skip
def test_evaluate_accuracy_tells_eval_mode_from_counting(course, data_root, example, old, new, score, says):
    """A missing net.eval() only matters for a net with dropout or batch norm (not d2l's LeNet): half the check.
    Counting the max values instead of the classes is wrong for every net, and is not called an eval() slip."""
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    assert old in src
    (folder / "lenet.py").write_text(src.replace(old, new))
    check = by_id(grade(course, "lenet", folder, data_root=data_root, only=["evaluate_accuracy"]))["evaluate_accuracy"]
    assert check.score == score and says in check.message, check.message


@pytest.mark.parametrize("init, says", [
    ("nn.init.kaiming_uniform_(m.weight, nonlinearity='relu')  # He init, better for ReLU",
     "these look like Kaiming/He initialisation"),
    ("nn.init.xavier_normal_(m.weight)", "these look like xavier_normal_, which draws from a normal distribution"),
], ids=["kaiming", "xavier-normal"])  # fmt: skip
def test_another_initialisation_is_named(course, data_root, example, init, says):
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    (folder / "lenet.py").write_text(src.replace("nn.init.xavier_uniform_(m.weight)", init, 1))
    check = by_id(grade(course, "lenet", folder, data_root=data_root, only=["init_weights"]))["init_weights"]
    assert check.status == "failed" and says in check.message, check.message


def test_a_softmax_before_the_loss_is_named(course, data_root, example):
    """The loss barely moves with probabilities handed to CrossEntropyLoss: the message says why."""
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    old = "        loss = loss_fn(net(xb), yb)  # scalar: mean over the batch\n"
    assert old in src
    (folder / "lenet.py").write_text(src.replace(old, "        probs = torch.softmax(net(xb), dim=1)  # 先变成概率\n"
                                                      "        loss = loss_fn(probs, yb)\n"))  # fmt: skip
    check = by_id(grade(course, "lenet", folder, data_root=data_root, only=["training_epoch"]))["training_epoch"]
    assert check.score == 0 and check.message.startswith(
        "train_epoch hands the loss probabilities: a softmax before CrossEntropyLoss"), check.message


def test_an_extra_reshape_in_front_is_named_once(course, data_root, example):
    """Old d2l put a Reshape layer first: every shape is right, every index one later than the handout's."""
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    reshape = ("class Reshape(nn.Module):  # from the old d2l book\n    def forward(self, x):\n"
               "        return x.view(-1, 1, 28, 28)\n\n\ndef build_lenet()")  # fmt: skip
    src = src.replace("def build_lenet()", reshape, 1).replace("    return nn.Sequential(\n",
                                                               "    return nn.Sequential(\n        Reshape(),\n", 1)
    (folder / "lenet.py").write_text(src)
    checks = by_id(grade(course, "lenet", folder, data_root=data_root,
                         only=["layer_shapes", "parameter_count", "forward_matches_reference"]))  # fmt: skip
    assert checks["layer_shapes"].status == "passed" and checks["forward_matches_reference"].status == "passed"
    assert checks["parameter_count"].message.startswith(
        "build_lenet() has d2l's layers at other indices (1.weight for 0.weight, 4.weight for 3.weight, 8.weight for "
        "7.weight and 7 more): a layer in front of them")  # fmt: skip


def test_an_own_module_class_with_functional_layers_is_charged_once(course, data_root, example):
    """LeNet as the student's own nn.Module, sigmoid and pooling called in forward(): every shape is right (the
    trace follows the operations, not only the modules), the names are the student's own, and lenet.pth, saved
    from that class, is measured in it."""
    import torch

    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    own = ("class LeNet(nn.Module):\n    \"\"\"自己写的 LeNet 类\"\"\"\n\n    def __init__(self):\n"
           "        super().__init__()\n        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)\n"
           "        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)\n        self.fc1 = nn.Linear(16 * 5 * 5, 120)\n"
           "        self.fc2 = nn.Linear(120, 84)\n        self.fc3 = nn.Linear(84, 10)\n\n"
           "    def forward(self, x):\n        x = F.avg_pool2d(torch.sigmoid(self.conv1(x)), 2, 2)  # (N, 6, 14, 14)\n"
           "        x = F.avg_pool2d(torch.sigmoid(self.conv2(x)), 2, 2)  # (N, 16, 5, 5)\n"
           "        x = torch.flatten(x, 1)  # (N, 400)\n        x = torch.sigmoid(self.fc1(x))\n"
           "        return self.fc3(torch.sigmoid(self.fc2(x)))\n\n\n"
           "def build_lenet() -> nn.Sequential:\n    return LeNet()\n\n\ndef _handout_lenet()")  # fmt: skip
    functional = "import torch\nimport torch.nn.functional as F\n"
    src = src.replace("def build_lenet()", own, 1).replace("import torch\n", functional, 1)
    (folder / "lenet.py").write_text(src)
    names = dict(zip(["0", "3", "7", "9", "11"], ["conv1", "conv2", "fc1", "fc2", "fc3"], strict=True))
    state = torch.load(folder / "lenet.pth")
    torch.save({f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in state.items()}, folder / "lenet.pth")
    result = grade(course, "lenet", folder, data_root=data_root)
    lost = {c.id: c.message for c in result.checks if c.score < c.max_score}
    assert list(lost) == ["parameter_count"], lost
    assert lost["parameter_count"].startswith("build_lenet() has d2l's layers under names of its own (conv1.weight "
                                              "for 0.weight, conv2.weight for 3.weight, fc1.weight for 7.weight")


def test_a_softmax_layer_after_the_logits_is_named(course, data_root, example):
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    old = "        nn.Linear(84, 10),  # (N, 10)\n"
    assert old in src
    (folder / "lenet.py").write_text(src.replace(old, old + "        nn.Softmax(dim=1),  # 输出概率\n"))
    check = by_id(grade(course, "lenet", folder, data_root=data_root,
                        only=["forward_matches_reference"]))["forward_matches_reference"]  # fmt: skip
    assert check.message.startswith("with fixed weights, your LeNet returns d2l's logits put through softmax (each "
                                    "row sums to 1): remove the final nn.Softmax")  # fmt: skip


def test_a_torchscript_lenet_is_graded_as_the_module_it_scripts(course, data_root, example):
    """build_lenet() returns torch.jit.script(nn.Sequential(...)): the sandbox runs the module as written, so the
    checks that look at its layers and their torch calls see them (a ScriptModule hides both)."""
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    assert src.count("    return nn.Sequential(") == 1
    (folder / "lenet.py").write_text(src.replace("    return nn.Sequential(", "    # TorchScript: 更快\n"
                                                 "    return torch.jit.script(nn.Sequential(").replace(
        "        nn.Linear(84, 10),  # (N, 10)\n    )", "        nn.Linear(84, 10),  # (N, 10)\n    ))"))  # fmt: skip
    checks = by_id(grade(course, "lenet", folder, data_root=data_root, only=["layer_shapes", "init_weights"]))
    assert [(c.id, c.status) for c in checks.values()] == [("layer_shapes", "passed"), ("init_weights", "passed")]


def test_a_checkpoint_dict_around_the_weights_is_graded_with_a_note(course, data_root, example):
    """main() saves the best epoch as {'model': state_dict, 'acc': ..., 'epoch': ...}, not the bare state_dict the
    handout asks for: the weights are there, and the accuracy check measures them."""
    import torch

    folder = example("lenet", "solution")
    sd = torch.load(folder / "lenet.pth", weights_only=True)
    torch.save({"model": sd, "acc": 0.8121, "epoch": 10}, folder / "lenet.pth")
    check = by_id(grade(course, "lenet", folder, data_root=data_root, only=["test_accuracy"]))["test_accuracy"]
    assert check.status == "passed", check.message
    assert check.notes == ["lenet.pth is a checkpoint dict; graded the state_dict it holds under 'model' (the "
                           "assignment saves the state_dict itself)"]  # fmt: skip


def test_weights_without_their_code_are_measured_in_the_reference(course, data_root, example):
    """lenet.py left out of the upload: the accuracy check needs only lenet.pth, which fits d2l's LeNet, so the
    judge measures it there (there is no model of the student's to run it in); the code's checks fail for it."""
    folder = example("lenet", "solution")
    (folder / "lenet.py").unlink()
    check = by_id(grade(course, "lenet", folder, data_root=data_root, only=["test_accuracy"]))["test_accuracy"]
    assert check.status == "passed" and check.message.startswith("lenet.pth in the reference LeNet"), check.message


def test_a_train_epoch_that_reinitialises_the_net_is_named_where_accuracy_is_lost(course, data_root, example):
    """d2l's train_ch6 applies init_weights before its loop; left inside train_epoch it restarts every epoch. The
    one-epoch check cannot see it; the accuracy check, which measures the poor lenet.pth, names it in a note."""
    import torch

    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    old = "    net.train()\n    optimizer = torch.optim.SGD(net.parameters(), lr=lr)\n"
    assert old in src
    (folder / "lenet.py").write_text(src.replace(old, (
        "    def init_weights(m):  # 和 d2l 的 train_ch6 一样\n"
        "        if type(m) == nn.Linear or type(m) == nn.Conv2d:\n"
        "            nn.init.xavier_uniform_(m.weight)\n"
        "    net.apply(init_weights)\n" + old)))
    sd = torch.load(folder / "lenet.pth", weights_only=True)
    torch.save({k: v * 0.3 for k, v in sd.items()}, folder / "lenet.pth")  # what one epoch from scratch leaves
    checks = by_id(grade(course, "lenet", folder, data_root=data_root, only=["training_epoch", "test_accuracy"]))
    assert checks["training_epoch"].status == "passed"
    accuracy = checks["test_accuracy"]
    assert accuracy.score < accuracy.max_score, accuracy.message
    assert any(n.startswith("a likely cause: train_epoch changed the weights of a model even with lr 0")
               for n in accuracy.notes), accuracy.notes
    solution = grade(course, "lenet", course.examples_dir("lenet") / "solution", data_root=data_root,
                     only=["test_accuracy"])  # fmt: skip
    assert not any("likely cause" in n for n in by_id(solution)["test_accuracy"].notes)


def test_the_current_d2l_lenet_with_lazy_layers_is_graded_as_the_same_network(course, data_root, example):
    """d2l.ai's LeNet today: nn.LazyConv2d / nn.LazyLinear, whose shapes one forward pass fixes (d2l's apply_init).
    The probes give them that pass before they count, trace or initialize: the same network, full marks."""
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    for old, new in (("nn.Conv2d(1, 6, kernel_size=5, padding=2)", "nn.LazyConv2d(6, kernel_size=5, padding=2)"),
                     ("nn.Conv2d(6, 16, kernel_size=5)", "nn.LazyConv2d(16, kernel_size=5)"),
                     ("nn.Linear(16 * 5 * 5, 120)", "nn.LazyLinear(120)"), ("nn.Linear(120, 84)", "nn.LazyLinear(84)"),
                     ("nn.Linear(84, 10)", "nn.LazyLinear(10)")):  # fmt: skip
        assert old in src
        src = src.replace(old, new)
    (folder / "lenet.py").write_text(src.replace("    net.apply(init_weights)",
                                                 "    net(torch.zeros(1, 1, 28, 28))  # 先跑一次, 让懒加载层确定形状\n"
                                                 "    net.apply(init_weights)"))  # fmt: skip
    result = grade(course, "lenet", folder, data_root=data_root,
                   only=["layer_shapes", "parameter_count", "init_weights", "forward_matches_reference"])
    assert all(c.status == "passed" for c in result.checks), [(c.id, c.message) for c in result.checks]


def test_a_train_epoch_that_ignores_its_lr_is_named_and_charged_half(course, data_root, example):
    """The optimizer made with the module's LR (0.9) instead of the lr argument: the check's lr-0.1 epoch then
    diverges on its linear model, which alone would read as a training bug. The judge sees that another lr leaves
    the same weights and names the slip; the weights it trained (at the handout's 0.9) keep their points."""
    folder = example("lenet", "solution")
    src = (folder / "lenet.py").read_text()
    old = "    optimizer = torch.optim.SGD(net.parameters(), lr=lr)\n"
    assert old in src
    (folder / "lenet.py").write_text(src.replace(old, "    optimizer = torch.optim.SGD(net.parameters(), lr=LR)\n"))
    result = grade(course, "lenet", folder, data_root=data_root)
    lost = {c.id: (c.score, c.message) for c in result.checks if c.score < c.max_score}
    assert lost == {"training_epoch": (5, "train_epoch ignores its lr argument: one epoch at lr 0.1 and one at lr 0.01 "
                                          "left exactly the same weights, so it trains at a learning rate of its own "
                                          "(the module's LR?); create the optimizer with lr=lr: the handout's --lr, "
                                          "and the grader's calls, need train_epoch to obey it")}, lost
