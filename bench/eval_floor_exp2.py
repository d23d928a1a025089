"""The floor for one exp2 evaluation: final.pth on the 10,000 CIFAR-10 test images, inside a running judge
(what a batch worker pays per submission) against a fresh Python process that must import torch and read the
dataset first (what grading one submission at a time pays on top).

    .venv/bin/python bench/eval_floor_exp2.py [--models 5] [--data-root data]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "assignments" / "exp2" / "checks"), str(ROOT / "solutions" / "exp2" / "hidden_checks")]
from batch_exp2 import make_class  # noqa: E402  (bench/ is sys.path[0] when run as a script)

FRESH = """
import sys, time
t0 = time.perf_counter()
sys.path[:0] = {paths!r}
from exp2_accuracy import measure
from pathlib import Path
m = measure(Path({path!r}), Path({root!r}))
print(time.perf_counter() - t0, m.accuracy)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=5)
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    args = ap.parse_args()
    from exp2_accuracy import judge_device, measure_many, test_set

    root = args.data_root.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        make_class(Path(tmp), args.models + 1)
        folders = sorted(Path(tmp).iterdir())
        t0 = time.perf_counter()
        test_set(root, judge_device())
        load_s = time.perf_counter() - t0
        measure_many(folders[:1], root)  # warm-up: first forward pass, allocator
        t0 = time.perf_counter()
        measure_many(folders[1:], root)
        per_model = (time.perf_counter() - t0) / args.models
        t0 = time.perf_counter()
        code = FRESH.format(paths=sys.path[:2], path=str(folders[0] / "final.pth"), root=str(root))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        fresh_s = time.perf_counter() - t0
    print(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}",
        "device": str(judge_device()), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "test_set_load_s": round(load_s, 2), "in_process_per_model_s": round(per_model, 3),
        "fresh_process_one_model_s": round(fresh_s, 2), "fresh_inner_s": round(float(r.stdout.split()[0]), 2),
        "ratio": round(fresh_s / per_model, 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
