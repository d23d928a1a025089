"""The GPU suite's steps (run by bench/gpu_suite.sh, which sets up the machine first).

    python bench/gpu_suite.py --data-root DATA --out OUT [--tiny]

1. grade the exp2 solution through the local sandbox, the judge on the GPU where there is one;
2. run exp2's GPU re-run check for real (`enabled = true` in a copy of the course; with --tiny on a CPU, also
   `needs_gpu = false`, so that the step runs here);
3. batch-grade N exp2 submissions (bench/batch_exp2.py's class: the solution with seeded noise in its weights),
   the judge on the GPU: the whole batch's wall time, and the judge's marginal cost per submission (its
   batch prefetch, which evaluates every final.pth, timed on two disjoint sets of submissions);
4. time the reference exp2 training (the solution's own script, 10 epochs) and read its test accuracy;
5. print one Markdown table (also OUT/gpu_suite.md) that goes into bench/RESULTS.md as it is.
--tiny runs every step at a tiny size (CIFAR-10 cut to 400 images per training file and 500 test images, 4
submissions, one epoch on 256 images). Every step runs even when one
before it failed; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "grader.cli"]
Row = tuple[str, str, str]  # what, figure, target


def _grader(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True)


def _check(result: dict, cid: str) -> dict:
    return next(c for c in result["checks"] if c["id"] == cid)


def step_grade(data: Path, out: Path, tiny: bool) -> list[Row]:
    t0 = time.perf_counter()
    r = _grader("grade", "exp2", "examples/exp2/solution", "--out", str(out / "grade"), "--data-root", str(data))
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"grader grade exited {r.returncode}:\n{r.stderr[-3000:]}")
    result = json.loads((out / "grade" / "results.json").read_text())
    acc = _check(result, "accuracy")
    return [("`grader grade exp2` solution, one-shot (judge: " + result["environment"]["device"] + ")",
             f"{wall:.1f} s, {result['score']:g}/{result['max_score']:g}; accuracy: {acc['message'][:80]}",
             "100 points")]  # fmt: skip


def course_with_rerun(dest: Path, tiny: bool) -> Path:
    """A copy of the course (assignments and solutions) with exp2's re-run check enabled."""
    for part in ("assignments", "solutions"):
        shutil.copytree(ROOT / part, dest / part)
    toml = dest / "assignments/exp2/assignment.toml"
    text = toml.read_text()
    block = re.search(r'id = "rerun_writes_checkpoint".*?(?=\n\[)', text, re.S)
    assert block is not None, "exp2's assignment.toml has no rerun_writes_checkpoint check"
    new = re.sub(r"enabled = false[^\n]*", "enabled = true", block.group(0))
    text = text.replace(block.group(0), new)
    if tiny and not torch.cuda.is_available():  # so the dry run exercises it on the CPU, its points then counted
        text = text.replace(new, new.replace("needs_gpu = true", "needs_gpu = false"))
        text = re.sub(r"(?m)^total = .*\n", "", text)
    toml.write_text(text)
    return dest


RERUN = """
import sys
from pathlib import Path
from grader.grading import grade
from grader.spec import Course
result = grade(Course(root=Path(sys.argv[1])), "exp2", Path(sys.argv[2]), data_root=Path(sys.argv[3]),
               only=["rerun_writes_checkpoint"])
Path(sys.argv[4]).write_text(result.model_dump_json(indent=1))
"""


def step_rerun(data: Path, out: Path, tiny: bool) -> list[Row]:
    from grader.results import GradeResult

    # In its own process: the checks of the course copy must not stay imported in this one.
    with tempfile.TemporaryDirectory(prefix="gpu-suite-course-") as tmp:
        course = course_with_rerun(Path(tmp), tiny)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", RERUN, str(course), str(ROOT / "examples/exp2/solution"),
                            str(data), str(out / "rerun.json")], cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"grading with the re-run check exited {r.returncode}:\n{r.stderr[-3000:]}")
    result = GradeResult.model_validate_json((out / "rerun.json").read_text())
    if "rerun_writes_checkpoint" in result.skipped:
        raise RuntimeError(f"the re-run check was skipped: {result.skipped['rerun_writes_checkpoint']}")
    c = next(c for c in result.checks if c.id == "rerun_writes_checkpoint")
    if c.status != "passed":
        raise RuntimeError(f"the re-run check {c.status}: {c.message}")
    probe = next((p["seconds"] for p in result.timings.get("probes", []) if p["probe"] == "rerun"), float("nan"))
    where = "GPU" if result.environment.device != "cpu" else "CPU"
    return [(f"exp2 re-run check, enabled ({where} grader)", f"{c.status}, {c.score:g}/{c.max_score:g}; "
             f"one epoch on 2,048 images in the sandbox: {probe:.1f} s; whole grade {wall:.1f} s", "passed")]


def _batch_module():  # noqa: ANN202 - bench/batch_exp2.py, which is not a package
    spec = importlib.util.spec_from_file_location("batch_exp2", ROOT / "bench/batch_exp2.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def step_batch(data: Path, out: Path, tiny: bool) -> list[Row]:
    from grader.batch.worker import load_prefetch
    from grader.spec import Course

    n, k = (4, 1) if tiny else (100, 10)  # k, then n - 1 - k submissions, after one to warm up
    workers = 2 if tiny else max(2, min(8, (os.cpu_count() or 2) // 2))
    gpus = ["--gpus", "0"] if torch.cuda.is_available() else []
    with tempfile.TemporaryDirectory(prefix="gpu-suite-batch-") as tmp:
        klass = Path(tmp) / "class"
        _batch_module().make_class(klass, n)
        folders = sorted(klass.iterdir())
        # The judge's marginal cost: its prefetch on k, then on n - 2k other submissions (first a warm-up).
        course = Course(root=ROOT)
        prefetch = load_prefetch(course, course.spec("exp2"), "grade")
        prefetch(folders[-1:], data)
        t0 = time.perf_counter()
        prefetch(folders[:k], data)
        t_k = time.perf_counter() - t0
        t0 = time.perf_counter()
        prefetch(folders[k:-1], data)
        t_rest = time.perf_counter() - t0
        marginal = (t_rest - t_k) / max(1, (n - 1 - k) - k)
        t0 = time.perf_counter()
        r = _grader("batch", "exp2", str(klass), "--out", str(Path(tmp) / "out"), "--workers", str(workers),
                    "--data-root", str(data), *gpus)  # fmt: skip
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"grader batch exited {r.returncode}:\n{r.stderr[-3000:]}")
        summary = json.loads((Path(tmp) / "out" / "batch.json").read_text())
        (out / "batch.json").write_text(json.dumps(summary, indent=1))
    return [
        (f"judge's marginal cost per exp2 submission (batch prefetch, {n - 1 - k} vs {k})", f"{marginal:.3f} s",
         "<= 0.1 s"),
        (f"`grader batch exp2`, {n} submissions, {workers} workers{', --gpus 0' if gpus else ''}",
         f"{wall:.1f} s ({wall / n:.2f} s per submission)", "<= 120 s for 100"),
    ]  # fmt: skip


def step_train(data: Path, out: Path, tiny: bool) -> list[Row]:
    args = ["--epochs", "1", "--subset", "256"] if tiny else ["--epochs", "10"]
    with tempfile.TemporaryDirectory(prefix="gpu-suite-train-") as tmp:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, str(ROOT / "examples/exp2/solution/exp2.py"), "--data-root", str(data),
                            "--out", "final.pth", *args], cwd=tmp, capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"training exited {r.returncode}:\n{r.stderr[-3000:]}")
        ckpt = torch.load(Path(tmp) / "final.pth", weights_only=True)
    accs = ckpt["history"]["test_acc"]
    (out / "train_log.txt").write_text(r.stdout[-20000:])
    return [(f"reference exp2 training ({' '.join(args)})", f"{wall:.1f} s; test accuracy {accs[-1]:.2f}% "
             f"(per epoch: {', '.join(f'{a:.1f}' for a in accs)})", ">= 70%")]


def tiny_cifar(src: Path, dest: Path, train: int = 400, test: int = 500) -> Path:
    """A data root with the first images of each CIFAR-10 file only (the dry run's tiny size)."""
    import pickle

    folder = dest / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "cifar-10-batches-py" / "batches.meta", folder / "batches.meta")
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(src / "cifar-10-batches-py" / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # the course's own copy of the dataset: trusted
        n = test if name == "test_batch" else train
        small = {k: (v[:n] if k in ("data", "labels", "filenames", b"data", b"labels", b"filenames") else v)
                 for k, v in batch.items()}
        with open(folder / name, "wb") as f:
            pickle.dump(small, f, protocol=2)
    return dest


STEPS: list[tuple[str, Callable[[Path, Path, bool], list[Row]]]] = [
    ("grade", step_grade), ("rerun", step_rerun), ("batch", step_batch), ("train", step_train),
]  # fmt: skip


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tiny", action="store_true", help="every step at a tiny size (the CPU dry run)")
    ap.add_argument("--steps", default=",".join(name for name, _ in STEPS))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    data = args.data_root.resolve()
    if args.tiny:
        data = tiny_cifar(data, args.out.resolve() / "tiny-data")
    failed = False
    t_all = time.perf_counter()
    for name, step in STEPS:
        if name not in args.steps.split(","):
            continue
        t0 = time.perf_counter()
        try:
            rows += [(*row, "ok") for row in step(data, args.out.resolve(), args.tiny)]
        except Exception as exc:  # noqa: BLE001 - the table says which step failed and why; the others still run
            failed = True
            (args.out / f"{name}.error.txt").write_text(traceback.format_exc())
            rows.append((name, f"FAILED after {time.perf_counter() - t0:.0f} s: {str(exc)[:300]}", "", "FAILED"))
        print(f"step {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    table = [f"Machine: {machine()}. Command: `bench/gpu_suite.sh{' --cpu-dry-run' if args.tiny else ''}` "
             f"({time.perf_counter() - t_all:.0f} s in all).", "",
             "| what | figure | target | status |", "| --- | --- | --- | --- |"]  # fmt: skip
    table += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    text = "\n".join(table) + "\n"
    (args.out / "gpu_suite.md").write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
