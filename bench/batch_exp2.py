"""Batch-grade N exp2 submissions, against grading them one at a time with a fresh process each.

    .venv/bin/python bench/batch_exp2.py [--n 100] [--workers 2] [--fresh 20] [--data-root data]

The class: N copies of the reference submission whose final.pth weights carry small seeded noise, so every file
has its own hash (no cache hit) and its own accuracy. Batch: `grader batch exp2 CLASS -j W`. Fresh: `grader grade
exp2 SUB` per submission, for the first --fresh of them (all when --fresh equals --n); the per-submission time
is compared. Peak memory is the largest PSS of the whole process tree (grader, workers, contestants), sampled
every 0.2 s. Both modes' scores are compared for the submissions graded both ways: they must be equal.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

from grader.sandbox.local import process_tree, tree_memory

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "examples" / "exp2" / "solution"


def make_class(dest: Path, n: int) -> None:
    ckpt = torch.load(SOLUTION / "final.pth", weights_only=True)
    for i in range(n):
        sub = dest / f"s{i:03d}"
        sub.mkdir(parents=True)
        shutil.copy(SOLUTION / "exp2.py", sub / "exp2.py")
        g = torch.Generator().manual_seed(i)
        # Noise of 1% of each float tensor's scale: accuracies spread a little below the reference's.
        net = {k: v + 0.01 * v.abs().mean() * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
               for k, v in ckpt["net"].items()}  # fmt: skip
        torch.save({**ckpt, "net": net}, sub / "final.pth")


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, list[int], subprocess.CompletedProcess]:
    """Wall seconds and peak PSS bytes of the command's whole process tree, for its whole run and for its first
    and second halves (memory that grows with the submissions graded shows as a larger second half)."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while not done.is_set():
            try:
                samples.append((time.perf_counter(), tree_memory(process_tree(proc.pid))))
            except OSError:
                pass
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    t.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    half = t0 + wall / 2
    peaks = [max((m for _, m in samples), default=0), max((m for t, m in samples if t < half), default=0),
             max((m for t, m in samples if t >= half), default=0)]  # fmt: skip
    return wall, peaks, subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--fresh", type=int, default=20, help="submissions graded with a fresh process each")
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    ap.add_argument("--sandbox", default="local")
    args = ap.parse_args()
    grader = str(ROOT / ".venv" / "bin" / "grader")
    env = {**os.environ, "GRADER_SANDBOX": args.sandbox}
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        klass, out = Path(tmp) / "class", Path(tmp) / "out"
        make_class(klass, args.n)
        batch_s, batch_peak, r = run_measured(
            [grader, "batch", "exp2", str(klass), "--out", str(out), "-j", str(args.workers),
             "--data-root", str(args.data_root)], env)  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        with (out / "gradebook.csv").open() as f:
            batch_scores = {row["student_id"]: float(row["auto_score"]) for row in csv.DictReader(f)}
        fresh_s, fresh_peak, fresh_scores = [], 0, {}
        for sub in sorted(klass.iterdir())[: args.fresh]:
            wall, peak, r = run_measured([grader, "grade", "exp2", str(sub), "--out", str(Path(tmp) / "one" / sub.name),
                                          "--data-root", str(args.data_root)], env)  # fmt: skip
            assert r.returncode == 0, r.stderr[-3000:]
            fresh_s.append(wall)
            fresh_peak = max(fresh_peak, peak[0])
            fresh_scores[sub.name] = json.loads((Path(tmp) / "one" / sub.name / "results.json").read_text())["score"]
    mismatched = {k: (v, batch_scores[k]) for k, v in fresh_scores.items() if v != batch_scores[k]}
    per_batch = batch_s / args.n
    per_fresh = sum(fresh_s) / len(fresh_s)
    print(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}",
        "torch": torch.__version__, "submissions": args.n, "workers": args.workers, "sandbox": args.sandbox,
        "batch_wall_s": round(batch_s, 1), "batch_per_submission_s": round(per_batch, 2),
        "batch_peak_pss_mib": round(batch_peak[0] / 2**20),
        "batch_peak_pss_halves_mib": [round(batch_peak[1] / 2**20), round(batch_peak[2] / 2**20)],
        "fresh_graded": len(fresh_s), "fresh_per_submission_s": round(per_fresh, 2),
        "fresh_projected_wall_s": round(per_fresh * args.n, 1), "fresh_peak_pss_mib": round(fresh_peak / 2**20),
        "ratio_fresh_over_batch": round(per_fresh / per_batch, 2),
        "score_mismatches": mismatched, "score_range": [min(batch_scores.values()), max(batch_scores.values())],
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
