"""The judge's graph path: hostile ONNX graphs are refused with a message and harm nothing; honest ones run.

Graphs are built here with onnx.helper, as a student's hostile code could write them, and sent through the real
graph runner (a separate, resource-limited process).
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from grader.graphs import GraphPolicy, GraphRefused, GraphRunner
from grader.graphs.policy import CNN_OPS
from grader.graphs.reference import export

POLICY = GraphPolicy(ops=CNN_OPS, max_params=100_000, inputs=((None, 4),), outputs=((None, 3),))


@pytest.fixture(scope="module")
def runner():
    r = GraphRunner(threads=1, memory_mb=4096)
    yield r
    r.close()


def _model(nodes, initializers=(), inputs=None, outputs=None, opset=17) -> bytes:
    graph = helper.make_graph(
        nodes, "g",
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=list(initializers),
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _declared(name: str, dims: list[int]) -> TensorProto:
    """A tensor that declares its dimensions and holds no data (what a hostile exporter writes by hand)."""
    t = TensorProto()
    t.name, t.data_type = name, TensorProto.FLOAT
    t.dims.extend(dims)
    return t


def _linear() -> bytes:
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    return _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [w])


def test_an_honest_graph_runs(runner):
    out = runner.classify(_linear(), POLICY, "four-ones", np.ones((5, 4), np.float32), batch=2)
    assert out.shape == (5, 3) and np.allclose(out, 4.0)


def test_sin_may_follow_a_layer_with_weights_but_not_the_input(runner):
    """A sin activation (SIREN-style) is an MLP's choice; sin of the input itself computes the target instead."""
    policy = POLICY.model_copy(update={"after_weights": ("Sin",)})
    w = numpy_helper.from_array(np.full((4, 3), 0.5, np.float32), "W")
    activation = _model([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Sin", ["h"], ["y"])], [w])
    out = runner.classify(activation, policy, "sin-activation", np.ones((5, 4), np.float32), batch=2)
    assert np.allclose(out, np.sin(2.0))
    on_input = _model([helper.make_node("Sin", ["x"], ["s"]), helper.make_node("MatMul", ["s", "W"], ["y"])], [w])
    with pytest.raises(GraphRefused, match="applies Sin to the input itself"):
        runner.classify(on_input, policy, "sin-input", np.ones((5, 4), np.float32), batch=2)
    with pytest.raises(GraphRefused, match="the operator Sin"):  # an assignment that does not list it
        runner.classify(activation, POLICY, "sin-unlisted", np.ones((5, 4), np.float32), batch=2)


def test_a_label_lookup_by_gather_is_refused(runner):
    """Answers stored in the graph, looked up by an index computed from the input: a Gather keyed on the input."""
    table = numpy_helper.from_array(np.eye(3, dtype=np.float32)[np.arange(1000) % 3], "answers")  # (1000, 3)
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),  # (N,): a hash of the image
        helper.make_node("Cast", ["s"], ["i"], to=TensorProto.INT64),
        helper.make_node("Gather", ["answers", "i"], ["y"], axis=0),  # (N, 3)
    ]
    with pytest.raises(GraphRefused, match="the graph uses the operator Gather"):
        runner.prepare(_model(nodes, [table]), POLICY.model_copy(update={"ops": (*CNN_OPS, "ReduceSum", "Cast")}))


def test_shape_arithmetic_gathers_are_allowed(runner):
    """`x.view(x.size(0), -1)` traces to Shape -> Gather -> Unsqueeze -> Concat -> Reshape: allowed."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x.view(x.size(0), -1))

    graph = export(Net(), (torch.zeros(2, 4),), ["x"], ["y"])
    assert "Gather" in {n.op_type for n in onnx.load_from_string(graph).graph.node}
    assert 15 <= runner.prepare(graph, POLICY)["params"] < 40  # the layer's 15, and the shape constants


def test_control_flow_is_refused(runner):
    body = helper.make_graph([], "body", [], [])
    loop = helper.make_node("Loop", ["", ""], [], body=body)
    with pytest.raises(GraphRefused, match="Loop with a subgraph \\(control flow\\)"):
        runner.prepare(_model([loop, helper.make_node("Identity", ["x"], ["y"])]), POLICY)


def test_a_giant_initializer_is_refused_before_it_is_allocated(runner):
    big = _declared("W", [1 << 20, 128])  # declares 512 MiB, carries nothing
    with pytest.raises(GraphRefused, match=r"tensor 'W' has 134,217,728 elements, over the 67,108,864 limit"):
        runner.prepare(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [big]), POLICY)
    w = numpy_helper.from_array(np.zeros((4, 30_000), np.float32), "W")  # real, but over this assignment's budget
    with pytest.raises(GraphRefused, match=r"120,000 parameters, over this assignment's budget of 100,000"):
        runner.prepare(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [w]), POLICY)


def test_external_data_pointing_at_the_host_is_refused(runner, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones((4, 3), np.float32).tobytes())
    w = _declared("W", [4, 3])
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", str(secret)
    with pytest.raises(GraphRefused, match=r"refers to external data .*secret\.bin.*must carry its own weights"):
        runner.prepare(_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [w]), POLICY)


@pytest.mark.parametrize("data", [b"", b"\x08\x07\x12garbage", None], ids=["empty", "garbage", "truncated"])
def test_malformed_bytes_are_refused_and_the_runner_survives(runner, data):
    if data is None:
        data = _linear()[:-20]
    with pytest.raises(GraphRefused, match="not a readable ONNX model|malformed|has 0 input"):
        runner.prepare(data, POLICY)
    assert runner.prepare(_linear(), POLICY)["ops"] == ["MatMul"]  # the same runner goes on


def test_custom_domains_shapes_and_functions_are_refused(runner):
    custom = helper.make_node("Evil", ["x"], ["y"], domain="com.example")
    with pytest.raises(GraphRefused, match="operator set 'com.example'|com.example.Evil"):
        graph = helper.make_graph([custom], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                        helper.make_opsetid("com.example", 1)])  # fmt: skip
        runner.prepare(model.SerializeToString(), POLICY)
    wrong = _model([helper.make_node("Identity", ["x"], ["y"])],
                   outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])  # fmt: skip
    with pytest.raises(GraphRefused, match=r"output 'y' has shape \(N, 4\); expected \(N, 3\)"):
        runner.prepare(wrong, POLICY)


def test_a_graph_that_kills_the_runner_costs_only_itself(runner):
    """Running needs more memory than the runner may have: the runner dies, the graph is refused, the next
    graph gets a fresh runner."""
    small = GraphRunner(threads=1, memory_mb=1024)
    try:
        w = numpy_helper.from_array(np.ones((4, 40_000), np.float32), "W")
        policy = POLICY.model_copy(update={"max_params": 1_000_000, "outputs": ((None, 40_000),)})
        graph = _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [w],
                       outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40_000])])  # fmt: skip
        with pytest.raises(GraphRefused):
            small.classify(graph, policy, "rows", np.ones((20_000, 4), np.float32), batch=20_000)  # 3.2 GB out
        assert small.prepare(_linear(), POLICY)["ops"] == ["MatMul"]
    finally:
        small.close()


def test_a_runner_started_ahead_serves_its_first_request():
    """grade() starts the runner while the contestant starts; the first request waits for it to be ready."""
    r = GraphRunner(threads=1, memory_mb=4096)
    try:
        r.start_ahead()
        first = r._proc
        assert first is not None and first.poll() is None
        r.start_ahead()  # already started: the same process
        assert r._proc is first
        out = r.classify(_linear(), POLICY, "ones", np.ones((3, 4), np.float32), batch=3)
        assert out.shape == (3, 3) and r._proc is first
    finally:
        r.close()


def test_grading_starts_the_runner_ahead_only_for_checks_that_measure_graphs(tmp_path):
    from grader.grading import check_folders, uses_graphs
    from grader.spec import Course

    course = Course.locate(None)
    for aid in course.assignment_ids():  # every bundled assignment measures a model in its graded checks
        assert uses_graphs(check_folders(course, course.spec(aid), "grade")), aid
    (tmp_path / "test_shapes.py").write_text("import torch\n\ndef test_shape(contestant):\n    assert True\n")
    assert not uses_graphs([tmp_path])
    (tmp_path / "judge_helpers.py").write_text("from grader.judge.measured import choose, predict\n")
    assert uses_graphs([tmp_path])


class _StepLoop(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (T, B)
        return torch.stack([step * 2 for step in x])  # iterating a tensor: the tracer warns, quoting this line


def test_export_is_silent(recwarn):
    """The tracer's warnings quote a line of the model's source: from the reference solution's model, that
    line would reach a student's `grader check` output."""
    with pytest.warns(torch.jit.TracerWarning):  # what export must keep to itself
        torch.onnx.export(_StepLoop(), (torch.ones(3, 2),), io.BytesIO(), dynamo=False)
    recwarn.clear()
    assert export(_StepLoop(), (torch.ones(3, 2),), ["x"], ["y"], dynamic_batch=False)
    assert [str(w.message) for w in recwarn] == []


class _StateAsTuple(torch.nn.Module):
    """A student's step that multiplies the state it was handed as a tuple: fails on any input."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2, 2))

    def forward(self, x, h):
        return torch.mm((h,), self.w), h  # type: ignore[call-overload]


def test_a_model_that_fails_reports_its_own_error_not_the_exporters():
    """torch.export wraps the model's own exception in "Failed to export the model with torch.export. This is
    step 1/3 ...", whose first line (what a message quotes) tells a student nothing: export raises the cause."""
    with pytest.raises(TypeError, match=r"mm\(\): argument 'input' \(position 1\) must be Tensor, not tuple"):
        export(_StateAsTuple(), (torch.zeros(3, 2), torch.zeros(3, 2)), ["x", "h"], ["y", "h_next"])


def _one_input(nodes, initializers) -> bytes:
    return _model(nodes, initializers, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])])  # fmt: skip


EXP1_LIKE = GraphPolicy(ops=("Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Constant"), max_params=10_000,
                        after_weights=("Sin", "Cos", "Exp", "Pow"), inputs=((None, 1),),
                        outputs=((None, 1),))  # fmt: skip


def test_gaussian_and_rbf_layers_are_layers_and_a_formula_of_the_input_is_not():
    """exp(-h^2) after a linear layer, and an RBF layer exp(-(x - mu)^2 / exp(log_sigma)) with one centre per unit,
    learn their function; sin(x - 1) computes it."""
    from grader.graphs.inspect import inspect

    w1 = numpy_helper.from_array(np.ones((1, 8), np.float32), "W1")
    w2 = numpy_helper.from_array(np.ones((8, 1), np.float32), "W2")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    gaussian = _one_input([helper.make_node("MatMul", ["x", "W1"], ["h"]), helper.make_node("Pow", ["h", "two"], ["s"]),
                           helper.make_node("Neg", ["s"], ["n"]), helper.make_node("Exp", ["n"], ["g"]),
                           helper.make_node("MatMul", ["g", "W2"], ["y"])], [w1, w2, two])  # fmt: skip
    assert "Neg" in inspect(gaussian, EXP1_LIKE)["ops"]
    mu = numpy_helper.from_array(np.linspace(-3, 3, 8, dtype=np.float32).reshape(1, 8), "mu")
    log_sigma = numpy_helper.from_array(np.zeros((1, 8), np.float32), "log_sigma")
    rbf = _one_input([helper.make_node("Sub", ["x", "mu"], ["d"]), helper.make_node("Pow", ["d", "two"], ["d2"]),
                      helper.make_node("Exp", ["log_sigma"], ["sigma"]),
                      helper.make_node("Div", ["d2", "sigma"], ["r"]),
                      helper.make_node("Neg", ["r"], ["n"]), helper.make_node("Exp", ["n"], ["phi"]),
                      helper.make_node("MatMul", ["phi", "W2"], ["y"])], [mu, log_sigma, w2, two])  # fmt: skip
    inspect(rbf, EXP1_LIKE)
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    formula = _one_input([helper.make_node("Sub", ["x", "one"], ["d"]), helper.make_node("Cos", ["d"], ["y"])], [one])
    with pytest.raises(GraphRefused, match="applies Cos to the input itself"):
        inspect(formula, EXP1_LIKE)
    floor = _one_input([helper.make_node("Floor", ["x"], ["y"])], [])
    with pytest.raises(GraphRefused, match=r"Floor, .*allowed: .*Sub; after a layer with weights also Sin, Cos, Exp, "
                                           r"Pow\)"):  # fmt: skip
        inspect(floor, EXP1_LIKE)
