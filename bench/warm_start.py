"""The warm template against fresh interpreters, in one run: contestant start, one-shot grading, a batch.

    .venv/bin/python bench/warm_start.py [--ready-runs 10] [--oneshot-runs 3] [--saves 10] [--batch 100]
        [--fresh-batch 20]

1. contestant ready after the request: ContestantClient start to `ready` (exp1 solution imported), warm
   (LocalSandbox(warm=True), template already up) and fresh (a new interpreter per contestant);
2. one-shot: `grader grade exp1 examples/exp1/solution` wall, GRADER_WARM=1 and 0 alternating, against
   `python -c "import torch"` in the same rounds;
3. `grader check --watch`: from a save (a comment appended to exp1.py) to the next score printed, against a
   one-shot `grader check` of the same folder;
4. `grader batch exp1` over generated variants of the bundled examples, 2 workers, warm (`--batch` of them) and
   fresh (`--fresh-batch`), wall per submission, and the PSS of each worker's process tree (worker, template,
   launchers, contestants, graph runner), sampled every 0.5 s: peak and median, first and second half of the run.
Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from grader.judge.client import ContestantClient
from grader.sandbox.base import ContestantJob, LoadPlan
from grader.sandbox.local import LocalSandbox, process_tree, tree_memory
from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent
GRADER = str(ROOT / ".venv/bin/grader")
EXAMPLES = ("solution", "lr-too-high", "wrong-output-shape", "skipped-custom-task", "stub")


def ready_latency(runs: int, warm: bool) -> list[float]:
    course = Course(root=ROOT)
    spec = course.spec("exp1")
    sub = course.examples_dir("exp1") / "solution"
    job = ContestantJob(submission=sub, probes=course.assignment_dir("exp1") / spec.probes, limits=spec.limits,
                        loading=LoadPlan(modules=tuple(spec.modules)))  # fmt: skip
    sandbox = LocalSandbox(warm=warm)
    out = []
    for i in range(runs + 1):
        client = ContestantClient(sandbox, job)
        t0 = time.perf_counter()
        client._start()
        if i:  # the first warm start waits for the template itself
            out.append(time.perf_counter() - t0)
        client.close()
    return out


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def oneshot(runs: int, out: Path) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"import torch": [], "grade warm": [], "grade fresh": []}
    for _ in range(runs):
        got["import torch"].append(wall([sys.executable, "-c", "import torch"]))
        for name, flag in (("grade warm", "1"), ("grade fresh", "0")):
            got[name].append(wall([GRADER, "grade", "exp1", "examples/exp1/solution", "--out", str(out / name)],
                                  env=dict(os.environ, GRADER_WARM=flag)))  # fmt: skip
    return got


def watched(saves: int, work: Path) -> tuple[list[float], list[float]]:
    """Seconds from each save to its score under `grader check --watch`, and one-shot `grader check` walls."""
    sub, log = work / "watched", work / "watch.log"
    shutil.copytree(ROOT / "examples/exp1/solution", sub)
    oneshot_s = [wall([GRADER, "check", "exp1", str(sub)]) for _ in range(3)]
    with log.open("w") as f:
        proc = subprocess.Popen([GRADER, "check", "exp1", str(sub), "--watch"], cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def scored(count: int) -> None:
        while len(re.findall(r"score: ", log.read_text())) < count:
            if proc.poll() is not None:
                raise SystemExit(f"grader check --watch ended (exit {proc.returncode}):\n{log.read_text()}")
            time.sleep(0.01)

    out = []
    try:
        scored(1)
        for i in range(saves):
            time.sleep(1.0)  # a student's pause between saves
            t0 = time.perf_counter()
            with (sub / "exp1.py").open("a") as code:
                code.write(f"# save {i}\n")
            scored(i + 2)
            out.append(time.perf_counter() - t0)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait()
    return out, oneshot_s


def make_class(folder: Path, n: int) -> None:
    """n submissions: the bundled examples in turn, each made distinct as students' copies are."""
    for i in range(n):
        src = ROOT / "examples/exp1" / EXAMPLES[i % len(EXAMPLES)]
        dest = folder / f"s{i:03d}"
        shutil.copytree(src, dest)
        code = dest / "exp1.py"
        code.write_text(code.read_text() + f"\n# submitted by student {i:03d}\n")


class PssWatch:
    """Peak PSS of each child tree of `pid` (the batch workers), per half of the run."""

    def __init__(self, pid: int) -> None:
        self.pid, self.done = pid, False
        self.samples: list[tuple[float, int]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done:
            tree = process_tree(self.pid)
            workers = [p for p in tree if p != self.pid and _ppid(p) == self.pid]
            per = [tree_memory(process_tree(w)) for w in workers]
            self.samples.append((time.monotonic(), max(per, default=0)))
            time.sleep(0.5)

    def halves(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(peak, median) of the first half's samples and of the second's, in GiB. A peak is whichever sample
        caught the most contestants alive; the median is what a worker holds while it grades, so growth (a leak
        in the worker or the template) shows as the second half's median above the first's."""
        self.done = True
        self.thread.join()
        gib = float(1 << 30)
        sizes = [s / gib for _, s in self.samples if s]
        half = len(sizes) // 2
        first, second = sizes[:half] or [0.0], sizes[half:] or [0.0]
        return (max(first), statistics.median(first)), (max(second), statistics.median(second))


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def batch(n: int, warm: bool, work: Path) -> tuple[float, tuple[float, float], tuple[float, float]]:
    subs, out = work / f"class-{n}-{int(warm)}", work / f"out-{n}-{int(warm)}"
    make_class(subs, n)
    t0 = time.perf_counter()
    env = dict(os.environ, GRADER_WARM="1" if warm else "0")
    proc = subprocess.Popen([GRADER, "batch", "exp1", str(subs), "--out", str(out), "--workers", "2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
    watch = PssWatch(proc.pid)
    if proc.wait() != 0:
        raise SystemExit(f"grader batch failed (exit {proc.returncode})")
    seconds = time.perf_counter() - t0
    first, second = watch.halves()
    return seconds / n, first, second


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-runs", type=int, default=10)
    ap.add_argument("--oneshot-runs", type=int, default=3)
    ap.add_argument("--saves", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--fresh-batch", type=int, default=20)
    args = ap.parse_args()
    # Started in the background (`nohup ... &`), this process and its children would ignore SIGINT, and the
    # watched `grader check` would outlive its Ctrl-C: deliver it as a terminal would.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    med = statistics.median
    rows = []
    warm_ready, fresh_ready = ready_latency(args.ready_runs, True), ready_latency(max(3, args.ready_runs // 3), False)
    rows.append(("contestant ready after the request (exp1 solution imported)", f"{med(fresh_ready):.2f} s",
                 f"{med(warm_ready):.3f} s (max {max(warm_ready):.3f})", f"{med(fresh_ready) / med(warm_ready):.1f}x"))
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        work = Path(tmp)
        one = oneshot(args.oneshot_runs, work)
        torch_s = med(one["import torch"])
        rows.append(('`python -c "import torch"`', f"{torch_s:.2f} s", f"{torch_s:.2f} s", "1.0x"))
        g_fresh, g_warm = med(one["grade fresh"]), med(one["grade warm"])
        rows.append(("`grader grade exp1` solution, one-shot: wall / import torch",
                     f"{g_fresh:.2f} s = {g_fresh / torch_s:.2f}x", f"{g_warm:.2f} s = {g_warm / torch_s:.2f}x",
                     f"{g_fresh / g_warm:.2f}x"))  # fmt: skip
        saves, check_s = watched(args.saves, work)
        fresh_per, f1, f2 = batch(args.fresh_batch, False, work)
        warm_per, w1, w2 = batch(args.batch, True, work)
        rows.append((f"`grader batch exp1`, 2 workers, per submission (fresh: {args.fresh_batch}, warm: {args.batch})",
                     f"{fresh_per:.2f} s", f"{warm_per:.2f} s", f"{fresh_per / warm_per:.1f}x"))  # fmt: skip
        rows.append(("PSS of a worker tree, first half / second half of the batch: peak",
                     f"{f1[0]:.2f} / {f2[0]:.2f} GiB", f"{w1[0]:.2f} / {w2[0]:.2f} GiB", ""))  # fmt: skip
        rows.append(("PSS of a worker tree, first half / second half of the batch: median",
                     f"{f1[1]:.2f} / {f2[1]:.2f} GiB", f"{w1[1]:.2f} / {w2[1]:.2f} GiB", ""))  # fmt: skip
    print("| what | fresh interpreter | warm template | ratio |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n`grader check exp1` solution: one-shot {med(check_s):.2f} s (median of 3); under --watch, save to score "
          f"{med(saves):.2f} s (median of {len(saves)}, max {max(saves):.2f}): {med(check_s) / med(saves):.1f}x")
    print(f"\nraw: ready warm {[round(x, 3) for x in warm_ready]}, fresh {[round(x, 2) for x in fresh_ready]}; "
          f"one-shot {({k: [round(x, 2) for x in v] for k, v in one.items()})}; "
          f"check {[round(x, 2) for x in check_s]}; saves {[round(x, 2) for x in saves]}")  # fmt: skip


if __name__ == "__main__":
    main()
