"""The overhead of `grader batch --ray local` against the local pool: same submissions, same workers, one run.

    .venv/bin/python bench/ray_overhead.py [--copies 2] [--workers 2] [--assignment exp1] [--data-root data]
        [--distinct-weights] [--rounds 1]

The class: --copies of each bundled example of the assignment but trains-at-import (every copy edited by one
comment, so none is a cache hit). With --distinct-weights each copy's .pth files also differ (one float of the
first tensor moved by i+1 ulps), as every student's weights do: a judge that caches a measurement by the file's
hash (exp2's accuracy) then measures every copy instead of the ones that fell to it first (a file
`weights_only` cannot read, such as a whole pickled model, stays as it is). Both commands grade it from scratch
into their own OUT folders; the wall time of each whole command is what a user waits for (the Ray run includes
starting and stopping its local cluster). The two gradebooks must agree on every score.

Same workers: both commands get `--threads` cores / workers, the local pool's own default. Without it a Ray slot
declares the assignment's `threads` (exp2: 2), so on 2 cores `--ray local` would run one judge of two threads
against the pool's two judges of one. With --rounds N the two commands alternate, each round starting with the
other, and the ratio is that of the summed walls.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def nudge(path: Path, ulps: int) -> None:
    """Re-save the checkpoint at `path` with one float of its first floating tensor `ulps` steps larger."""
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an example's broken file stays as it is
        return
    todo = [obj]
    while todo:
        item = todo.pop(0)
        values = list(item.values()) if isinstance(item, dict) else []
        for v in values:
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel():
                flat = v.view(-1)
                for _ in range(ulps):
                    flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=v.dtype))
                torch.save(obj, path)
                return
            todo.append(v)


def make_class(dest: Path, assignment: str, copies: int, distinct_weights: bool = False) -> int:
    n = 0
    for example in sorted((ROOT / "examples" / assignment).iterdir()):
        if not example.is_dir() or example.name == "trains-at-import":  # expected.toml; 90 s of import budget
            continue
        for i in range(copies):
            sub = dest / f"{example.name}-{i}"
            shutil.copytree(example, sub)
            main = sub / f"{assignment}.py"
            main.write_text(main.read_text() + f"\n# copy {i}\n")
            if distinct_weights:
                for pth in sub.rglob("*.pth"):
                    nudge(pth, i + 1)
            n += 1
    return n


def scores(out: Path) -> dict[str, str]:
    with (out / "gradebook.csv").open(encoding="utf-8") as f:
        return {row["student_id"]: row["auto_score"] for row in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assignment", default="exp1")
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data-root", type=Path, help="datasets for assignments that need them (exp2: data)")
    ap.add_argument("--distinct-weights", action="store_true", help="every copy's .pth files differ")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two commands this many times")
    args = ap.parse_args()
    data = ["--data-root", str(args.data_root.resolve())] if args.data_root else []
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    modes = [("local pool", []), ("--ray local", ["--ray", "local"])]
    walls: dict[str, list[float]] = {mode: [] for mode, _ in modes}
    books = []
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        klass = Path(tmp) / "class"
        n = make_class(klass, args.assignment, args.copies, args.distinct_weights)
        env = {**os.environ, "GRADER_SANDBOX": "local"}  # the grader turns Ray's usage report off itself
        for i in range(args.rounds):
            for mode, extra in modes if i % 2 == 0 else modes[::-1]:
                out = Path(tmp) / f"{mode.replace(' ', '-')}-{i}"
                cmd = [sys.executable, "-m", "grader.cli", "batch", args.assignment, str(klass), "--out", str(out),
                       "-j", str(args.workers), "--threads", str(threads), "--chunk", "2", *data, *extra]  # fmt: skip
                t0 = time.perf_counter()
                r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
                walls[mode].append(time.perf_counter() - t0)
                if r.returncode != 0:
                    raise SystemExit(f"{mode} failed:\n{r.stderr[-3000:]}")
                books.append(scores(out))
                print(f"round {i + 1}: {mode:12s} {walls[mode][-1]:8.1f} s", flush=True)
    same = all(book == books[0] for book in books)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.assignment}: {n} submissions, {args.workers} workers of {threads} thread(s), chunk 2, "
          f"distinct weights: {args.distinct_weights}, rounds: {args.rounds}")  # fmt: skip
    for mode, ws in walls.items():
        print(f"{mode:12s} {sum(ws):8.1f} s  {sum(ws) / (n * len(ws)):6.2f} s per submission  "
              f"({', '.join(f'{w:.1f}' for w in ws)})")
    ratio = sum(walls["--ray local"]) / sum(walls["local pool"])
    print(f"ratio --ray local / local pool: {ratio:.3f}; scores equal: {same}")
    if not same:
        raise SystemExit("the gradebooks differ")


if __name__ == "__main__":
    main()
