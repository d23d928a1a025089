"""Validation of untrusted ONNX bytes against a GraphPolicy, before onnxruntime ever sees them.

Runs inside the graph runner (a separate, resource-limited process): a malformed protobuf can at worst take
that process down, never the judge. Each refusal names what was wrong, for the student.
"""

from __future__ import annotations

import math
from typing import Any

from grader.graphs.policy import NEVER, SHAPE_ONLY, GraphPolicy, GraphRefused

MAX_TENSOR_ELEMENTS = 64 << 20  # one initializer; a course model's largest is ~1M
ALWAYS = {"Shape", "Size", "Constant"}  # a tensor's dimensions, and constants (counted as parameters)


def _dims(value_info: Any) -> tuple[int | None, ...]:
    shape = value_info.type.tensor_type.shape
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in shape.dim)


def _fits(got: tuple[int | None, ...], want: tuple[int | None, ...]) -> bool:
    return len(got) == len(want) and all(w is None or g is None or g == w for g, w in zip(got, want, strict=True))


def _shape(dims: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in dims) + ")"


def _tensors(model: Any) -> list[Any]:
    """Every tensor stored in the graph: initializers and the values of Constant nodes."""
    from onnx import AttributeProto

    out = list(model.graph.initializer)
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                out.append(attr.t)
            elif attr.type == AttributeProto.TENSORS:
                out.extend(attr.tensors)
    return out


def _shape_tensors(graph: Any) -> set[str]:
    """Names of tensors that are shapes, constants, or computed only from those (never from the input's values)."""
    known = {t.name for t in graph.initializer}
    changed = True
    while changed:  # nodes come in topological order, but one pass per level keeps this obviously right
        changed = False
        for node in graph.node:
            if all(o in known for o in node.output):
                continue
            derived = node.op_type in SHAPE_ONLY and node.input and all(i in known for i in node.input if i)
            if node.op_type in ALWAYS or derived:
                known.update(node.output)
                changed = True
    return known


WEIGHTED = {"Gemm", "MatMul", "Conv", "ConvTranspose"}  # layers whose output depends on the model's weights
# Elementwise ops that are a layer when they spread each input over a tensor of weights (an RBF layer's x - mu, mu
# one centre per unit); with a single number (x - 1) they are a formula, not a layer
SPREAD = {"Add", "Sub", "Mul", "Div"}


def _learned_tensors(graph: Any) -> set[str]:
    """Names of tensors computed from the output of a layer with weights (an initializer among its inputs), or
    from the weights alone (an RBF layer's exp(log_sigma)): none of them is the input itself."""
    sizes = {t.name: math.prod(t.dims) for t in graph.initializer}
    learned: set[str] = set()
    static = set(sizes)  # computed without the input: the weights, constants, and what follows from them only
    for node in graph.node:  # ONNX requires topological order, so one pass sees every producer first
        inputs = [i for i in node.input if i]
        if node.op_type == "Constant" or (inputs and all(i in static for i in inputs)):
            static.update(node.output)
            learned.update(node.output)
        elif ((node.op_type in WEIGHTED and any(i in sizes for i in inputs))
              or (node.op_type in SPREAD and any(sizes.get(i, 0) > 1 for i in inputs))
              or any(i in learned for i in inputs)):  # fmt: skip
            learned.update(node.output)
    return learned


def inspect(data: bytes, policy: GraphPolicy) -> dict[str, Any]:
    """The graph's summary (ops, parameters, input and output names) if it meets the policy; else GraphRefused."""
    import onnx
    from onnx import AttributeProto, TensorProto

    if len(data) > policy.max_bytes:
        raise GraphRefused(f"the model's graph is {len(data) / 2**20:.0f} MiB, over the {policy.max_bytes >> 20} MiB "
                           "limit")  # fmt: skip
    try:
        model = onnx.load_from_string(data)  # never loads external data: that needs a path, refused below
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends: the bytes are not a model
        raise GraphRefused(f"the model's graph is not a readable ONNX model ({type(exc).__name__})") from None
    graph = model.graph
    if model.functions:
        raise GraphRefused(f"the graph defines its own functions ({model.functions[0].name}), which the judge does "
                           "not run")  # fmt: skip
    for imp in model.opset_import:
        if imp.domain not in ("", "ai.onnx"):
            raise GraphRefused(f"the graph uses the operator set {imp.domain!r}; only ONNX's standard one is allowed")
    allowed = set(policy.ops) - NEVER
    shapes = _shape_tensors(graph)
    learned = _learned_tensors(graph) if policy.after_weights else set()
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise GraphRefused(f"the graph uses {node.domain}.{node.op_type}, outside ONNX's standard operators")
        for attr in node.attribute:
            if attr.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                raise GraphRefused(f"the graph uses {node.op_type} with a subgraph (control flow), which the "
                                   "judge does not run")  # fmt: skip
        on_shapes = node.op_type in SHAPE_ONLY and all(i in shapes for i in node.input if i)
        if node.op_type in policy.after_weights and node.op_type not in NEVER:
            if not all(i in learned or i in shapes for i in node.input if i):
                raise GraphRefused(f"the graph applies {node.op_type} to the input itself: it may follow a layer "
                                   "with weights (an activation), but the model must learn the function, not "
                                   "compute it in forward()")  # fmt: skip
            continue
        if node.op_type not in allowed and not on_shapes and node.op_type not in ALWAYS:
            after = f"; after a layer with weights also {', '.join(policy.after_weights)}" if policy.after_weights \
                else ""
            raise GraphRefused(f"the graph uses the operator {node.op_type}, which this assignment's models do not "
                               f"need (allowed: {', '.join(sorted(allowed))}{after})")  # fmt: skip
    params = 0
    for tensor in _tensors(model):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise GraphRefused(f"the graph's tensor {tensor.name!r} refers to external data ({where!r}); a model "
                               "must carry its own weights")  # fmt: skip
        n = math.prod(tensor.dims)
        if n > MAX_TENSOR_ELEMENTS:
            raise GraphRefused(f"the graph's tensor {tensor.name!r} has {n:,} elements, over the "
                               f"{MAX_TENSOR_ELEMENTS:,} limit")  # fmt: skip
        params += n
    if params > policy.max_params:
        raise GraphRefused(f"the model has {params:,} parameters, over this assignment's budget of "
                           f"{policy.max_params:,}")  # fmt: skip
    initialized = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialized]
    for kind, got, want in (("input", inputs, policy.inputs), ("output", list(graph.output), policy.outputs)):
        if want and len(got) != len(want):
            raise GraphRefused(f"the graph has {len(got)} {kind}(s); expected {len(want)}")
        for g, w in zip(got, want, strict=False):
            if not _fits(_dims(g), w):
                raise GraphRefused(f"the graph's {kind} {g.name!r} has shape {_shape(_dims(g))}; expected "
                                   f"{_shape(w)}")  # fmt: skip
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise GraphRefused(f"the graph is malformed: {str(exc).splitlines()[0][:300]}") from None
    return {
        "ops": sorted({n.op_type for n in graph.node}),
        "params": params,
        "inputs": [i.name for i in inputs],
        "outputs": [o.name for o in graph.output],
    }
