"""What a notebook costs over the same code as a .py file, per submission, in one run.

    .venv/bin/python bench/notebook_cost.py [--runs 3]

Grades exp1's solution twice per run, alternating: as `exp1.py` (examples/exp1/solution) and as the released
solution notebook `exp1.ipynb` after a real Jupyter kernel ran it (nbclient + ipykernel: outputs, execution counts,
an inline plot), with the same model.pth. The same plot is appended to the .py, so both run the same code. The
whole grade is timed (intake reads and converts the notebook as data, stages its cells, the contestant converts
and imports it). Also times the judge-side conversion alone
(grader.notebook.module_source) on the kernel-run notebook. Prints one JSON line per grade and a summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from grader.grading import grade
from grader.notebook import TRAINING_TAG, module_source
from grader.spec import Course

ROOT = Path(__file__).resolve().parent.parent
PLOT = "%matplotlib inline\nimport matplotlib.pyplot as plt\n\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()"


def kernel_run(source: Path, dest: Path) -> Path:
    import nbclient
    import nbformat

    nb = nbformat.read(source, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if TRAINING_TAG in c.metadata.get("tags", []))
    nb.cells.insert(at, nbformat.v4.new_code_cell(PLOT))
    nbclient.NotebookClient(nb, kernel_name="python3", skip_cells_with_tag=TRAINING_TAG,
                            resources={"metadata": {"path": str(dest)}}).execute()  # fmt: skip
    nbformat.write(nb, dest / source.name)
    return dest / source.name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    course = Course(root=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        py, nb = Path(tmp) / "py", Path(tmp) / "ipynb"
        shutil.copytree(course.examples_dir("exp1") / "solution", py)
        (py / "exp1.py").write_text((py / "exp1.py").read_text() + "\n" + PLOT.split("\n", 1)[1] + "\n")
        nb.mkdir()
        shutil.copy(py / "model.pth", nb)
        notebook = kernel_run(course.solution_dir("exp1") / "exp1.ipynb", nb)
        data = notebook.read_bytes()
        t0 = time.perf_counter()
        for _ in range(100):
            module_source(data, "exp1.ipynb")
        convert_ms = (time.perf_counter() - t0) * 10
        grade(course, "exp1", py)  # warm the page cache and pytest's imports
        walls: dict[str, list[float]] = {"py": [], "ipynb": []}
        for _ in range(args.runs):
            for kind, folder in (("py", py), ("ipynb", nb)):
                t0 = time.perf_counter()
                result = grade(course, "exp1", folder)
                wall = time.perf_counter() - t0
                walls[kind].append(wall)
                print(json.dumps({"as": kind, "wall_s": round(wall, 2), "score": result.score,
                                  "contestant_starts": result.timings["contestant_starts"],
                                  "import_s": result.timings.get("imports", {})}))  # fmt: skip
    med = {k: statistics.median(v) for k, v in walls.items()}
    print(json.dumps({
        "runs": args.runs,
        "notebook_bytes": len(data),
        "convert_ms": round(convert_ms, 2),
        "median_wall_s": {k: round(v, 2) for k, v in med.items()},
        "notebook_cost_s": round(med["ipynb"] - med["py"], 2),
        "ratio": round(med["ipynb"] / med["py"], 3),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
