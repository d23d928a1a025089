"""Time the similarity step (`grader similarity OUT`) on a class of N exp2 submissions.

    .venv/bin/python bench/similarity_exp2.py [--n 100] [--runs 3] [--data-root data] [--keep DIR]

The class is synthesized from the bundled files, with small seeded perturbations, and graded by nobody: this
times the similarity step itself, not grading.
  - exp2.py: the released stub with each of its ten TODOs filled by one of four authors picked at random (the
    reference solution's regions and the three of tests/similarity/authors.py), then a random half of the local
    names of tests/similarity/plants.py renamed: students share some regions and not others.
  - final.pth: the bundled solution's or lr-off-by-one's weights (both resumed from pretrain_model.pth) plus
    seeded Gaussian noise as large as each tensor's change from pretrain_model.pth, so that students look like
    independent resumers rather than copies of two models.
  - predictions (OUT/.state/predictions/): the judge's 10,000 test-set predictions of those two checkpoints
    (measured once, by exp2's hook), with a random 5-15% of the images given another class per student.
  - OUT/.state, batch.json and summary.html as a finished batch leaves them.
Then `grader similarity OUT` runs as a subprocess (interpreter start and imports included); the in-process
figures per signal come from the report it writes. Peak memory: the subprocess's max RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.batch.state import Graded, StateStore, content_hash  # noqa: E402
from grader.report.summary import summary_html  # noqa: E402
from grader.spec import Course  # noqa: E402
from tests.similarity.authors import AUTHORS, fill  # noqa: E402
from tests.similarity.plants import RENAMES, rename  # noqa: E402

EXP2 = ROOT / "examples" / "exp2"
REGION = re.compile(r"^\s*### BEGIN SOLUTION[^\n]*\n(.*?)^\s*### END SOLUTION\s*\n", re.MULTILINE | re.DOTALL)


def solution_fills() -> list[str]:
    """The reference solution's ten filled regions, in the stub's order (author A)."""
    return [m.group(1) for m in REGION.finditer((EXP2 / "solution" / "exp2.py").read_text())]


def judge_predictions(folder: Path, data_root: Path) -> np.ndarray:
    sys.path[:0] = [str(ROOT / "assignments" / "exp2" / "checks"), str(ROOT / "solutions" / "exp2" / "hidden_checks")]
    from exp2_accuracy import predictions_of

    got = predictions_of(folder, data_root)
    assert got is not None, folder
    return got.numpy().astype(np.int16)


def own_steps(v: torch.Tensor, start: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Seeded noise as large as the tensor's own change from pretrain_model.pth: each synthetic student then
    looks like one who resumed and trained on their own (a weights ratio about 1, not a copy)."""
    scale = (v - start).norm() / max(1, v.numel()) ** 0.5
    return scale * torch.randn(v.shape, generator=g)


def make_class(root: Path, n: int, data_root: Path) -> Path:
    """Submissions under root/class, and a batch output folder root/out as a finished batch leaves it."""
    course = Course(root=ROOT)
    spec = course.spec("exp2")
    stub = (ROOT / "assignments" / "exp2" / "exp2.py").read_text()
    authors = [solution_fills(), *AUTHORS.values()]
    bases = {name: torch.load(EXP2 / name / "final.pth", weights_only=True) for name in ("solution", "lr-off-by-one")}
    pre = torch.load(ROOT / "assignments" / "exp2" / "pretrain_model.pth", weights_only=True)["net"]
    preds = {name: judge_predictions(EXP2 / name, data_root) for name in bases}
    subs, out = root / "class", root / "out"
    store = StateStore(out)
    folders = {}
    for i in range(n):
        sid = f"s{i:03d}"
        rng = random.Random(i)
        sub = subs / sid
        sub.mkdir(parents=True)
        fills = [authors[rng.randrange(len(authors))][k] for k in range(10)]
        names = dict(rng.sample(sorted(RENAMES.items()), len(RENAMES) // 2))
        (sub / "exp2.py").write_text(rename(fill(stub, fills), names))
        base = "solution" if i % 2 else "lr-off-by-one"
        ckpt = bases[base]
        g = torch.Generator().manual_seed(i)
        net = {k: v + own_steps(v, pre[k], g) if v.is_floating_point() and "running" not in k else v
               for k, v in ckpt["net"].items()}  # fmt: skip
        torch.save({**ckpt, "net": net}, sub / "final.pth")
        p = preds[base].copy()
        flip = np.random.default_rng(i).random(p.shape) < rng.uniform(0.05, 0.15)
        p[flip] = (p[flip] + np.random.default_rng(n + i).integers(1, 10, flip.sum())) % 10
        store.save_predictions(sid, p)
        store.save(sid, Graded(student=sid, content_hash=content_hash(sub), grader="bench", status="graded",
                               submission=str(sub)))  # fmt: skip
        folders[sid] = sid
    (out / "batch.json").write_text(json.dumps({"assignment": "exp2", "folders": folders}) + "\n")
    (out / "summary.html").write_text(summary_html(spec, []))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--data-root", type=Path, default=ROOT / "data")
    ap.add_argument("--keep", type=Path, help="build the class here and keep it")
    ap.add_argument("--runs", type=int, default=3, help="times to run the step (the median is reported)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-similarity-"))
    try:
        t0 = time.perf_counter()
        out = make_class(root, args.n, args.data_root.resolve())
        print(f"synthesized {args.n} submissions in {time.perf_counter() - t0:.1f} s", flush=True)
        env = {**os.environ, "GRADER_DATA_ROOT": str(args.data_root.resolve())}
        walls = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "grader.cli", "similarity", str(out)], cwd=ROOT, env=env,
                               capture_output=True, text=True)  # fmt: skip
            walls.append(time.perf_counter() - t0)
            if r.returncode:
                raise SystemExit(r.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        report = json.loads((out / "similarity.json").read_text())
        print(f"grader similarity OUT: median {statistics.median(walls):.1f} s wall of {args.runs} "
              f"({', '.join(f'{w:.1f}' for w in walls)}), peak RSS {peak_mb:.0f} MiB; last run in-process "
              f"{report['duration_s']:.1f} s for {len(report['pairs'])} pairs")  # fmt: skip
        for s in report["signals"]:
            print(f"  {s['signal']:12} {s['seconds']:6.2f} s  {s['compared']} pairs compared")
        print(f"  flagged pairs: {sum(bool(p['flags']) for p in report['pairs'])}")
        cpu = platform.processor() or platform.machine()
        print(f"machine: {os.cpu_count()} cores, {cpu}, torch {torch.__version__}, Python {platform.python_version()}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
