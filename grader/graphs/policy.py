"""What a model's graph may contain, per assignment (`[graph]` in assignment.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The operators of torch.nn's activations as exported at opset 17: ReLU, ReLU6 and Hardtanh (Clip), LeakyReLU,
# PReLU, ELU, SELU, CELU, GELU (Erf; its tanh form is Mul and Tanh), SiLU (Sigmoid, Mul), Mish (Softplus, Tanh),
# Hardswish, Hardsigmoid, Softsign (Abs, Div), LogSigmoid (Log). A student's choice of activation never costs a
# measurement.
ACTIVATION_OPS = ("Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Erf", "Sigmoid", "Tanh", "Softplus",
                  "HardSwish", "HardSigmoid", "Abs", "Log")  # fmt: skip

# The operators of the usual layers, in their ONNX form; an assignment's `[graph] ops` lists what its models use.
CNN_OPS = ("Conv", "BatchNormalization", "LayerNormalization", "InstanceNormalization", *ACTIVATION_OPS, "Add",
           "Sub", "Mul", "Div", "ReduceMean", "GlobalAveragePool", "GlobalMaxPool", "AveragePool", "MaxPool", "Gemm",
           "MatMul", "Flatten", "Reshape", "Pad", "Identity", "Constant", "Transpose", "Softmax", "LogSoftmax",
           "Dropout", "Slice", "Concat", "Cast")  # fmt: skip

# Operators no course model needs and that could carry a lookup of test answers or hide computation:
# control flow, gathers and scatters keyed on the input, comparisons, and anything outside the standard domain.
NEVER = {"Loop", "If", "Scan", "Gather", "GatherND", "GatherElements", "ScatterND", "ScatterElements", "Scatter",
         "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Where", "NonZero", "Unique", "TopK",
         "ArgMax", "ArgMin", "Hardmax", "OneHot", "Compress", "RandomNormal", "RandomUniform", "Multinomial",
         "RandomNormalLike", "RandomUniformLike", "Bernoulli"}  # fmt: skip


# Operators that may appear on shape arithmetic only (`x.view(x.size(0), -1)` traces to Shape -> Gather ->
# Unsqueeze -> Concat -> Reshape): allowed where every input is a shape, a constant, or derived from those.
SHAPE_ONLY = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "ConstantOfShape", "Equal",
              "Where", "Range", "Mul", "Add", "Sub", "Div", "Reshape", "Expand", "Size"}  # fmt: skip


class GraphRefused(AssertionError):
    """A graph the judge will not run: the message names the operator or the limit, for the student."""


class GraphPolicy(BaseModel):
    """The operators a graph may use, its parameter budget, and the shapes of its inputs and outputs
    (None: any size, e.g. the batch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ops: tuple[str, ...] = Field(description="allowed ONNX operator types (standard domain only)")
    max_params: int = Field(gt=0, description="parameters: initializers and constants, in elements")
    max_bytes: int = Field(256 << 20, gt=0, description="the graph's serialized size")
    after_weights: tuple[str, ...] = Field(
        (), description="operators allowed only on values computed from a layer with weights (a sin activation), "
        "never on the input itself (a forward() that computes the target function)")
    inputs: tuple[tuple[int | None, ...], ...] = ()
    outputs: tuple[tuple[int | None, ...], ...] = ()

    def with_shapes(
        self, inputs: list[tuple[int | None, ...]], outputs: list[tuple[int | None, ...]]
    ) -> GraphPolicy:
        return self.model_copy(update={"inputs": tuple(map(tuple, inputs)), "outputs": tuple(map(tuple, outputs))})
