"""Which graph the judge measures a submission's weights with: the reference's, or the student's own.

The rule: the judge measures every trained model itself, with the model the student actually trained. When the
weights fit the reference architecture and the student's model computes what the reference computes (its
outputs on a few fixed inputs, with those weights, agree), the reference graph with the weights is that model,
and no export is needed. Otherwise the contestant exports the student's own model with the weights, and the
judge checks that graph against the assignment's policy and runs it. Numbers the student's code returns only
choose between the two graphs: whichever is chosen, the judge computes the score from data the contestant
never sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grader.graphs import GraphPolicy
from grader.graphs.reference import reference_graph, with_weights
from grader.judge.client import ContestantClient, ContestantError
from grader.judge.outcome import CheckFailed
from grader.judge.tensors import FileBytes

# Outputs of the student's model and the reference on the same weights and inputs agree when within this.
SAME_RTOL, SAME_ATOL = 1e-3, 1e-4


@dataclass(frozen=True)
class ModelSpec:
    """One assignment's trained model: its reference, how to compare and export the student's, and its policy."""

    name: str  # for messages: "ResNet20", "LeNet"
    reference_source: Path  # the reference model's source file (trusted), the graph cache's key
    build: Callable[[], torch.nn.Module]  # the reference model (trusted code)
    example: tuple[torch.Tensor, ...]  # inputs for export (batch dimension dynamic) and for the comparison
    input_names: list[str]
    output_names: list[str]
    policy: GraphPolicy
    outputs_probe: str  # contestant probe: (state, inputs) -> the student's model's outputs with those weights
    export_probe: str  # contestant probe: (state) -> the student's model, with those weights, as ONNX bytes
    extra: dict[str, Any] = field(default_factory=dict)  # more keyword arguments for both probes


@dataclass(frozen=True)
class Chosen:
    graph: bytes
    own: bool  # the student's own model (exported in the sandbox), not the reference
    note: str

    def refused(self, why: object) -> str:
        """The message when the judge will not run the student's own graph (`why`: the runner's reason)."""
        return f"{self.note.removesuffix(COSTS_NOTHING)}, but the judge will not run it: {why}"


def mismatch(spec: ModelSpec, state: dict[str, torch.Tensor]) -> str | None:
    """None if `state` has the reference's keys and shapes; else the first missing, unexpected and mis-shaped."""
    ref = spec.build().state_dict()
    missing = [k for k in ref if k not in state]
    unexpected = [k for k in state if k not in ref]
    shaped = [f"{k} {tuple(state[k].shape)} (expected {tuple(ref[k].shape)})"
              for k in ref if k in state and tuple(state[k].shape) != tuple(ref[k].shape)]  # fmt: skip
    parts = [f"{label}: {', '.join(items[:3])}" + (f" and {len(items) - 3} more" if len(items) > 3 else "")
             for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)) if items]
    return "; ".join(parts) or None


def fits_reference(spec: ModelSpec, state: dict[str, torch.Tensor]) -> bool:
    return mismatch(spec, state) is None


def reference_outputs(spec: ModelSpec, state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    model = spec.build()
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        out = model(*spec.example)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _unlike_reference(spec: ModelSpec, state: dict[str, torch.Tensor], contestant: ContestantClient) -> str | None:
    """None where the student's model, given `state`, gives the reference's outputs on the example inputs; else
    how it differs, for the message."""
    try:
        theirs = contestant.call(spec.outputs_probe, state=state, inputs=list(spec.example), **spec.extra,
                                 returns=list[torch.Tensor])  # fmt: skip
    except ContestantError as exc:
        # Their model does not take these weights, or does not run: the reference is not theirs. Unless there is
        # no model of theirs to run (the code is missing or does not import) or it asks for the GPU grading lacks:
        # the weights, which fit the reference, are measured there (the code's slip is charged by its checks).
        if exc.kind in ("no_cuda", "missing_file", "syntax_error", "import_error"):
            return None
        return f"your model fails on them ({exc.message.splitlines()[0]})"
    ours = reference_outputs(spec, state)
    same = len(theirs) == len(ours) and all(
        t.shape == o.shape and torch.allclose(t.double(), o.double(), rtol=SAME_RTOL, atol=SAME_ATOL)
        for t, o in zip(theirs, ours, strict=True)
    )
    return None if same else "your model computes otherwise"


def reference_with(spec: ModelSpec, state: dict[str, torch.Tensor]) -> bytes:
    graph = reference_graph(spec.reference_source, spec.build, spec.example, spec.input_names, spec.output_names)
    return with_weights(graph, state)


def choose(spec: ModelSpec, state: dict[str, torch.Tensor], contestant: ContestantClient | None, what: str) -> Chosen:
    """The graph to measure `state` with. `what` names the weights file for messages ("final.pth")."""
    if bad := [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckFailed(f"{what} holds NaN or infinite weights ({', '.join(bad[:3])}{more}): training diverged; "
                          "lower the learning rate, train again and save the new weights")  # fmt: skip
    differs = mismatch(spec, state)
    unlike = None if differs is not None or contestant is None else _unlike_reference(spec, state, contestant)
    if differs is None and unlike is None:
        return Chosen(reference_with(spec, state), False, f"{what} measured in the reference {spec.name}")
    why = (f"does not load into the reference {spec.name} ({differs})" if differs
           else f"loads into the reference {spec.name}, but {unlike}")  # fmt: skip
    if contestant is None:
        raise ContestantError(f"{what} {why}, and no sandbox is there to export the student's own model")
    try:
        data = contestant.call(spec.export_probe, state=state, **spec.extra, returns=FileBytes)
    except ContestantError as exc:
        first = exc.message.splitlines()[0]
        if exc.kind == "no_cuda":  # not measured, so never waved through as the device slip charged elsewhere
            raise CheckFailed(f"{what} {why}, and your own model cannot run here ({first})") from None
        raise ContestantError(f"{what} {why}, and your own model does not take its weights either ({first})",
                              exc.kind, exc.where) from None  # fmt: skip
    return Chosen(data.numpy().tobytes(), True, f"{what} {why}: measured in your own model, exported with those "
                  f"weights{COSTS_NOTHING}")  # fmt: skip


COSTS_NOTHING = " (this costs nothing by itself)"  # said where the choice is a note, not where the graph is refused


def predict(chosen: Chosen, policy: GraphPolicy, data_key: str, x: torch.Tensor, batch: int) -> torch.Tensor:
    """The chosen graph's outputs for every row of `x`, run by the judge's graph runner. A reference graph that
    fails is the course's problem (RuntimeError); the student's own that is refused fails the check."""
    from grader.graphs import GraphRefused, runner

    try:
        return torch.from_numpy(runner().classify(chosen.graph, policy, data_key, x.numpy(), batch))
    except GraphRefused as exc:
        if not chosen.own:
            raise RuntimeError(f"the reference graph failed to run: {exc}") from None
        raise GraphRefused(chosen.refused(exc)) from None
