"""rnn graded end to end on the real timemachine.txt: the bundled examples and their messages."""

from __future__ import annotations

import pytest

from grader.data import read_time_machine
from grader.grading import grade
from grader.selftest import run_example
from tests.conftest import example_names

pytestmark = pytest.mark.slow



def by_id(result) -> dict:
    return {c.id: c for c in result.checks}


@pytest.mark.parametrize("name", example_names("rnn"))
def test_bundled_example_scores(course, data_root, name):
    """Each example scores what examples/rnn/expected.toml says: the same comparison as `grader selftest`."""
    outcome = run_example(course, "rnn", name, data_root)
    assert outcome.diffs == [], "\n".join(outcome.diffs)


def test_messages(course, data_root):
    clip = by_id(grade(course, "rnn", course.examples_dir("rnn") / "per-parameter-clipping", data_root=data_root,
                       only=["grad_clipping", "perplexity"]))  # fmt: skip
    assert clip["grad_clipping"].message.startswith(
        "after grad_clipping(net, theta=1) on gradients of global norm 10 the global norm is 2.157; expected at most 1")
    assert clip["perplexity"].message.endswith(
        "perplexity 8.5549 (full credit at <= 5.5, none at >= 10, log-linear between; within 0.01 of full credit "
        "still earns it, since machines measure slightly differently)")
    relu = by_id(grade(course, "rnn", course.examples_dir("rnn") / "relu-instead-of-tanh", data_root=data_root,
                       only=["rnn_matches_reference", "perplexity"]))  # fmt: skip
    assert relu["rnn_matches_reference"].message.startswith("rnn's outputs differ from the reference")
    assert relu["perplexity"].notes == ["rnn.pth loads into the reference RNN step, but your model computes otherwise: "
                                        "measured in your own model, exported with those weights (this costs "
                                        "nothing by itself)"]
    assert relu["perplexity"].message.startswith("rnn.pth in your own RNN, run by the judge on The Time Machine")


def test_reader_matches_d2l(data_root):
    lines = read_time_machine(data_root)
    assert lines[0] == "the time machine by h g wells"
    assert sum(len(s) for s in lines) == 170_580  # d2l 8.2's corpus length for char tokens


def _student(example, edits: list[tuple[str, str]]):
    folder = example("rnn", "solution")
    src = (folder / "rnn.py").read_text()
    for old, new in edits:
        assert old in src
        src = src.replace(old, new)
    (folder / "rnn.py").write_text(src)
    return folder


def test_a_bare_tensor_state_keeps_half_of_param_shapes(course, data_root, example):
    """init_rnn_state returns H itself and the student's rnn() reads it so: the rest works, the interface the
    given code and d2l unpack does not; half of param_shapes, with what to return."""
    folder = _student(example, [
        ("    return (torch.zeros((batch_size, num_hiddens), device=device),)\n",
         "    return torch.zeros((batch_size, num_hiddens), device=device)  # 直接返回H\n"),
        ("    (H,) = state  # (B, H)\n", "    H = state[0] if isinstance(state, tuple) else state\n"),
    ])  # fmt: skip
    check = by_id(grade(course, "rnn", folder, data_root=data_root, only=["param_shapes"]))["param_shapes"]
    assert check.score == 5, check.message
    assert check.message.startswith("init_rnn_state(4, 64) returns the tensor H itself; the handout's returns a tuple")


def test_a_bare_tensor_state_used_throughout_is_charged_once(course, data_root, example):
    """The state is H itself everywhere in the student's code (their rnn() returns H, their loop detaches H): the
    probes hand their functions H as they expect, so only param_shapes' half is lost, not every check that runs
    their model."""
    folder = _student(example, [
        ("    return (torch.zeros((batch_size, num_hiddens), device=device),)\n",
         "    return torch.zeros((batch_size, num_hiddens), device=device)  # 一个张量就够了\n"),
        ("    (H,) = state  # (B, H)\n", "    H = state  # (B, H)\n"),
        ("    return torch.cat(outputs, dim=0), (H,)  # (T * B, V), ((B, H),)\n",
         "    return torch.cat(outputs, dim=0), H\n"),
        ("            state = tuple(s.detach() for s in state)", "            state = state.detach()"),
    ])  # fmt: skip
    result = grade(course, "rnn", folder, data_root=data_root)
    lost = {c.id: c.max_score - c.score for c in result.checks if c.score < c.max_score}
    assert lost == {"param_shapes": 5} and result.problems == [], {c.id: c.message for c in result.checks}


def test_an_rnn_that_returns_the_state_it_was_given_is_charged_once(course, data_root, example):
    """rnn() updates H in its loop but returns the state it received: rnn_matches_reference says so; the trained
    rnn.pth, whose steps are the reference's, is measured in the reference step (which carries the state), not
    in the student's, where every step would start from zeros."""
    folder = _student(example, [
        ("    (H,) = state  # (B, H)\n", "    H = state[0]  # (B, H)\n"),
        ("    return torch.cat(outputs, dim=0), (H,)  # (T * B, V), ((B, H),)\n",
         "    return torch.cat(outputs, dim=0), state\n"),
    ])  # fmt: skip
    result = grade(course, "rnn", folder, data_root=data_root)
    lost = {c.id: c.max_score - c.score for c in result.checks if c.score < c.max_score}
    assert lost == {"rnn_matches_reference": 10}, {c.id: c.message for c in result.checks}
    assert by_id(result)["rnn_matches_reference"].message.startswith("rnn returns the state it was given")
    perplexity = by_id(result)["perplexity"]
    assert perplexity.message.startswith("rnn.pth in the reference RNN"), perplexity.message
    assert any(n.startswith("not charged here: rnn returns the state it was given") for n in perplexity.notes)


def test_a_predict_one_character_short_is_told_so(course, data_root, example):
    folder = _student(example, [("    for _ in range(num_preds):\n", "    for _ in range(num_preds - 1):  # 预测\n")])
    check = by_id(grade(course, "rnn", folder, data_root=data_root, only=["predict_length"]))["predict_length"]
    assert check.score == 0 and "expected 15 + 1 = 16: one too few; the loop appends one character per " in (
        check.message), check.message


def test_a_squared_norm_and_a_list_state(course, data_root, example):
    """Clipping by theta / norm**2 scales every gradient alike, by the wrong factor: the message says which. A list
    state works wherever the state goes: a note, no points."""
    folder = _student(example, [
        ("    norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))\n",
         "    norm = sum(torch.sum(p.grad**2) for p in params)  # 范数\n"),
        ("    return (torch.zeros((batch_size, num_hiddens), device=device),)\n",
         "    return [torch.zeros((batch_size, num_hiddens), device=device)]\n"),
    ])  # fmt: skip
    checks = by_id(grade(course, "rnn", folder, data_root=data_root, only=["grad_clipping", "param_shapes"]))
    assert checks["grad_clipping"].message == (
        "grad_clipping scaled every gradient by 0.01; expected theta / norm = 0.1, where norm is the square root of "
        "the sum of all squared gradient entries")  # fmt: skip
    assert checks["param_shapes"].status == "passed" and "returns a list [H]" in checks["param_shapes"].notes[0]


def test_another_parameter_order_is_charged_once(course, data_root, example):
    """get_params returns [W_xh, W_hh, W_hq, b_h, b_q] and rnn() unpacks that order: param_shapes charges it, the
    other checks hand the tensors over in that order, and rnn.pth, saved by the given main() with the handout's
    names zipped onto that order, is read by shape."""
    import torch

    folder = _student(example, [
        ("    params = [W_xh, W_hh, b_h, W_hq, b_q]\n", "    params = [W_xh, W_hh, W_hq, b_h, b_q]  # 先权重后偏置\n"),
        ("    W_xh, W_hh, b_h, W_hq, b_q = params\n", "    W_xh, W_hh, W_hq, b_h, b_q = params\n"),
    ])  # fmt: skip
    saved = torch.load(folder / "rnn.pth")
    names = ("W_xh", "W_hh", "b_h", "W_hq", "b_q")
    theirs = [saved[n] for n in ("W_xh", "W_hh", "W_hq", "b_h", "b_q")]
    torch.save({**dict(zip(names, theirs, strict=True)), "perplexity": saved["perplexity"]}, folder / "rnn.pth")
    result = grade(course, "rnn", folder, data_root=data_root)
    lost = {c.id: c.message for c in result.checks if c.score < c.max_score}
    assert list(lost) == ["param_shapes"], lost
    assert lost["param_shapes"].startswith("get_params returns its tensors in another order ([W_xh, W_hh, W_hq, b_h, "
                                           "b_q]); the handout's is [W_xh, W_hh, b_h, W_hq, b_q]")  # fmt: skip
    assert by_id(result)["perplexity"].notes == ["rnn.pth's tensors are named by the handout's order but come in "
                                                 "your get_params's, so the judge read each by its shape"]


def test_outputs_stacked_instead_of_concatenated_are_charged_once(course, data_root, example):
    """rnn() returns torch.stack(outputs), (T, B, V), where the handout concatenates to (T * B, V): the given
    train_epoch and predict then fail on that layout. forward_shapes charges it, with the fix; the checks that run
    into it say so and take nothing, and rnn.pth is measured in the reference step, which computes the same."""
    folder = _student(example, [("    return torch.cat(outputs, dim=0), (H,)  # (T * B, V), ((B, H),)\n",
                                 "    return torch.stack(outputs), (H,)  # 每一步的输出\n")])  # fmt: skip
    result = grade(course, "rnn", folder, data_root=data_root)
    lost = {c.id: c.message for c in result.checks if c.score < c.max_score}
    assert list(lost) == ["forward_shapes"], lost
    assert lost["forward_shapes"].endswith("outputs have shape (5, 3, 28); expected (15, 28): rnn() returns its "
                                           "steps' outputs stacked, shape (steps, batch, vocab), where the handout "
                                           "concatenates them along dim 0 to (steps * batch, vocab), the layout the "
                                           "given train_epoch's loss and predict read: return torch.cat(outputs, "
                                           "dim=0), not torch.stack(outputs)"), lost  # fmt: skip
    checks = by_id(result)
    for deferred in ("predict_length", "rnn_matches_reference", "training_lowers_perplexity"):
        assert checks[deferred].notes[-1].startswith("not charged here: ") and checks[deferred].notes[-1].endswith(
            "rnn() returns its outputs stacked, (steps, batch, vocab), not concatenated to (steps * batch, vocab); "
            "that mistake is charged once, by forward_shapes"), (deferred, checks[deferred].notes)  # fmt: skip
    assert "measured in the reference RNN step" in checks["perplexity"].notes[-1]


def test_parameters_without_requires_grad_are_charged_once(course, data_root, example):
    """get_params forgets requires_grad_(True): param_shapes charges it; training, which then fails in backward(),
    says so and takes nothing."""
    folder = _student(example, [("    for param in params:\n        param.requires_grad_(True)\n    return params\n",
                                 "    return params  # 参数\n")])  # fmt: skip
    result = grade(course, "rnn", folder, data_root=data_root)
    lost = {c.id: c.message for c in result.checks if c.score < c.max_score}
    assert lost == {"param_shapes": "get_params: W_xh does not require grad; call requires_grad_(True) on every "
                                    "parameter"}, lost
    assert by_id(result)["training_lowers_perplexity"].notes[-1] == (
        "not charged here: training fails because get_params's W_xh, W_hh, b_h, W_hq, b_q do not require grad; "
        "that mistake is charged once, by param_shapes")


def test_net_params_saved_as_a_list_are_read_in_order(course, data_root, example):
    """torch.save(net.params, 'rnn.pth'), d2l's list as it is: the five tensors in get_params's order, graded as
    the handout's dict would be, with a note."""
    import torch

    folder = example("rnn", "solution")
    saved = torch.load(folder / "rnn.pth")
    torch.save([saved[n] for n in ("W_xh", "W_hh", "b_h", "W_hq", "b_q")], folder / "rnn.pth")
    check = by_id(grade(course, "rnn", folder, data_root=data_root, only=["perplexity"]))["perplexity"]
    assert check.status == "passed" and check.notes[0].startswith(
        "rnn.pth holds a list of 5 tensors (net.params saved as they are), not the handout's dict: read them as "
        "W_xh, W_hh, b_h, W_hq, b_q, in get_params's order"), check.notes


@pytest.mark.parametrize("old, new, says", [
    ("    for y in prefix[1:]:  # warm-up: only the state matters\n        _, state = net(get_input(), state)\n"
     "        outputs.append(vocab[y])\n",
     "    outputs = [vocab[ch] for ch in prefix]  # 直接接在前缀后面预测\n",
     "with the same model: that is what it gives from the initial state, as if the prefix had never been read"),
    ("    for y in prefix[1:]:  # warm-up: only the state matters\n        _, state = net(get_input(), state)\n"
     "        outputs.append(vocab[y])\n",
     "    for y in prefix:  # 预热: 整个前缀都喂进去\n        _, state = net(torch.tensor([[vocab[y]]]), state)\n"
     "    outputs = [vocab[ch] for ch in prefix]\n",
     "when the prefix's last character goes through the net twice, at the end of the warm-up and again as the "
     "first prediction's input"),
    ("def predict(prefix: str, num_preds: int, net, vocab) -> str:",
     "def predict(prefix: str, num_preds: int, net, vocab, device) -> str:  # d2l 的 predict_ch8",
     "predict requires a device argument (as d2l's predict_ch8 does)"),
    ("        outputs.append(int(y.argmax(dim=1).reshape(1)))\n",
     "        probs = torch.softmax(y, dim=1)  # sample instead of argmax, more interesting text\n"
     "        outputs.append(int(torch.multinomial(probs, 1).reshape(1)))\n",
     "it returns other characters each time it is called with other random seeds, so it draws them at random"),
], ids=["no-warm-up", "last-character-twice", "device-argument", "sampling"])  # fmt: skip
def test_a_predict_that_slips_once_costs_half_of_its_check(course, data_root, example, old, new, says):
    folder = _student(example, [(old, new)])
    check = by_id(grade(course, "rnn", folder, data_root=data_root, only=["predict_length"]))["predict_length"]
    assert check.score == check.max_score / 2 and says in check.message, check.message


def test_weights_drawn_without_the_scale_are_charged_once(course, data_root, example):
    """torch.randn without * 0.01: param_shapes names the std; training from there is not charged again."""
    folder = _student(example, [("        return torch.randn(size=shape, device=device) * 0.01\n",
                                 "        return torch.randn(size=shape, device=device)  # 标准正态初始化\n")])
    checks = by_id(grade(course, "rnn", folder, data_root=data_root,
                         only=["param_shapes", "training_lowers_perplexity"]))  # fmt: skip
    assert checks["param_shapes"].score == 0 and "has std" in checks["param_shapes"].message
    training = checks["training_lowers_perplexity"]
    assert training.score == training.max_score and training.notes[0].startswith("not charged here: get_params:")


def test_one_character_too_many_is_explained(course, data_root, example):
    """The loop runs num_preds + 1 times: the length is wrong (the check's point), and the message says why."""
    folder = _student(example, [("    for _ in range(num_preds):\n", "    for _ in range(num_preds + 1):  # 多一个\n")])
    check = by_id(grade(course, "rnn", folder, data_root=data_root, only=["predict_length"]))["predict_length"]
    assert check.score == 0 and check.message.endswith(
        "expected 15 + 1 = 16: one too many; the output after the prefix's last character is already the first of "
        "the num_preds new ones, so num_preds outputs are appended in all"), check.message


def test_parameters_kept_in_a_dict_are_charged_once(course, data_root, example):
    """get_params returns {"W_xh": ..., ...} and every function of the student's reads it so: the interface differs
    from the handout's list, which param_shapes charges; the other checks hand the student's functions a dict."""
    folder = example("rnn", "solution")
    src = (folder / "rnn.py").read_text()
    edits = [
        ("    params = [W_xh, W_hh, b_h, W_hq, b_q]\n    for param in params:\n",
         "    # 用字典存参数, 按名字取更清楚\n"
         "    params = {'W_xh': W_xh, 'W_hh': W_hh, 'b_h': b_h, 'W_hq': W_hq, 'b_q': b_q}\n"
         "    for param in params.values():\n"),
        ("    W_xh, W_hh, b_h, W_hq, b_q = params\n",
         "    W_xh, W_hh, b_h, W_hq, b_q = (params[k] for k in ('W_xh', 'W_hh', 'b_h', 'W_hq', 'b_q'))\n"),
        ("    params = net.params\n    norm", "    params = list(net.params.values())\n    norm"),
        ("        sgd(net.params, lr)\n", "        sgd(list(net.params.values()), lr)\n"),
        ("zip(PARAM_NAMES, net.params, strict=True)", "zip(PARAM_NAMES, net.params.values(), strict=True)"),
    ]  # fmt: skip
    for old, new in edits:
        assert src.count(old) == 1, old
        src = src.replace(old, new)
    (folder / "rnn.py").write_text(src)
    result = grade(course, "rnn", folder, data_root=data_root)
    lost = {c.id: c.max_score - c.score for c in result.checks if c.score < c.max_score}
    assert lost == {"param_shapes": 10} and result.problems == [], {c.id: c.message for c in result.checks}
    assert by_id(result)["param_shapes"].message.startswith("get_params returns a dict; the handout's returns a list")


def test_a_syntax_error_in_the_class_hides_no_other_mistake(course, data_root, example):
    """RNNModelScratch left out for a syntax error in __call__: forward_shapes charges it, and the checks of
    grad_clipping and predict grade those functions with the handout's class standing in, so a per-parameter
    clipping is still charged (it was passed as "charged once, by forward_shapes" before)."""
    folder = _student(example, [
        ("        X = F.one_hot(X.T.long(), self.vocab_size).type(torch.float32)  # (T, B, V)\n",
         "        X = F.one_hot(X.T.long(), self.vocab_size).type(torch.float32)  # (T, B, V)\n"
         "          # 独热编码\n         print(X.shape)\n"),
        ("    norm = torch.sqrt(sum(torch.sum(p.grad**2) for p in params))\n    if norm > theta:\n"
         "        for param in params:\n            param.grad[:] *= theta / norm\n",
         "    for param in params:  # 每个参数单独裁剪\n        norm = torch.norm(param.grad)\n"
         "        if norm > theta:\n            param.grad[:] *= theta / norm\n"),
    ])  # fmt: skip
    checks = by_id(grade(course, "rnn", folder, data_root=data_root,
                         only=["forward_shapes", "grad_clipping", "predict_length", "training_lowers_perplexity"]))
    assert checks["forward_shapes"].status == "failed" and "syntax error" in checks["forward_shapes"].message
    assert checks["grad_clipping"].status == "failed" and "one norm over ALL parameters" in checks[
        "grad_clipping"].message  # fmt: skip
    assert checks["predict_length"].status == "passed" and checks["predict_length"].notes == []
    assert checks["training_lowers_perplexity"].status == "passed"
