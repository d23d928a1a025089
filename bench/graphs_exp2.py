"""The judge's evaluation of exp2 models: eager PyTorch against onnxruntime, on every bundled example whose
final.pth the judge can measure, in one run; and the export of a student's own model in the sandbox.

    .venv/bin/python bench/graphs_exp2.py [--threads 2]

For each example: the model the judge measures (the reference ResNet20 when the weights fit it, else the
example's own ResNet20), its accuracy and time in eager PyTorch (inference_mode) and through the graph runner,
and how many of the 10,000 predictions differ. Figures go to bench/RESULTS.md with the machine that made them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "solutions/exp2/hidden_checks"), str(ROOT / "assignments/exp2/checks")]

from exp2_accuracy import POLICY, model_spec, state_dict_of, test_set  # noqa: E402

from grader.graphs import runner  # noqa: E402
from grader.graphs.reference import export  # noqa: E402
from grader.judge import load_weights  # noqa: E402
from grader.judge.measured import fits_reference, reference_with  # noqa: E402
from grader.modules import load_module  # noqa: E402


def student_model(folder: Path) -> torch.nn.Module:
    """The example's own ResNet20 (a benchmark may import student code; the judge never does)."""
    return load_module(folder / "exp2.py", f"bench_{folder.name}").ResNet20()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = ROOT / "data"
    x, y = test_set(data, torch.device("cpu"))
    run = runner()
    run.threads = args.threads
    rows = []
    for folder in sorted((ROOT / "examples/exp2").iterdir()):
        try:
            state, _ = state_dict_of(load_weights(folder / "final.pth"), "final.pth")
        except Exception:  # noqa: BLE001 - stub, pickled model: nothing to measure
            continue
        reference = fits_reference(model_spec(), state)
        model = model_spec().build() if reference else student_model(folder)
        try:
            model.load_state_dict(state)
        except RuntimeError:
            continue  # weights that fit no model the example defines: the judge says so
        model.eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            eager = torch.cat([model(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
        eager_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        graph = reference_with(model_spec(), state) if reference else export(model, (x[:1],), ["x"], ["logits"])
        make_s = time.perf_counter() - t0
        run.classify(graph, POLICY, "warm", x[:10].numpy(), 10)  # session and data transfer, not timed
        t0 = time.perf_counter()
        onnx = torch.from_numpy(run.classify(graph, POLICY, "cifar10-test", x.numpy(), 1000)).argmax(1)
        onnx_s = time.perf_counter() - t0
        row = {"example": folder.name, "model": "reference" if reference else "own",
               "eager_acc": round(100 * float((eager == y).float().mean()), 2), "eager_s": round(eager_s, 2),
               "onnx_acc": round(100 * float((onnx == y).float().mean()), 2), "onnx_s": round(onnx_s, 2),
               "ratio": round(eager_s / onnx_s, 2), "graph_s": round(make_s, 3),
               "differing_predictions": int((eager != onnx).sum())}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    export_s = sandbox_export_time()
    print(json.dumps({"sandbox_export_s": export_s, "threads": args.threads, "torch": torch.__version__,
                      "machine": f"{platform.machine()}, {platform.python_version()}"}))  # fmt: skip


def sandbox_export_time() -> float:
    """How long the contestant takes to export a student's own ResNet20 (option-a-shortcuts) in the sandbox."""
    from grader.judge.client import ContestantClient
    from grader.sandbox.base import ContestantJob, LoadPlan
    from grader.sandbox.local import LocalSandbox
    from grader.spec import Course

    folder = ROOT / "examples/exp2/option-a-shortcuts"
    state, _ = state_dict_of(load_weights(folder / "final.pth"), "final.pth")
    spec = Course(root=ROOT).spec("exp2")
    job = ContestantJob(submission=folder, probes=ROOT / "assignments/exp2/probes.py", limits=spec.limits,
                        loading=LoadPlan(modules=("exp2",)))  # fmt: skip
    client = ContestantClient(LocalSandbox(), job)
    try:
        client.budget_s, client.deadline = 300, time.monotonic() + 300
        client.call("export_model", state=state)
        return client.calls[-1]["seconds"]
    finally:
        client.close()


if __name__ == "__main__":
    main()
