"""bench/gpu_suite.sh --cpu-dry-run: every step of the GPU suite at a tiny size on the CPU, so that the script
works the first time a GPU is lent (grading exp2, the re-run check enabled, a batch with the judge's marginal
cost, the reference training, the table)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_suite_dry_run(tmp_path, data_root):
    env = {**os.environ, "OUT": str(tmp_path), "GRADER_DATA_ROOT": str(data_root), "PYTHON": sys.executable}
    r = subprocess.run(["bash", "bench/gpu_suite.sh", "--cpu-dry-run"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=1800)  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    table = (tmp_path / "gpu_suite.md").read_text()
    for what in ("`grader grade exp2`", "re-run check, enabled (CPU grader) | passed", "marginal cost",
                 "`grader batch exp2`, 4 submissions", "reference exp2 training"):  # fmt: skip
        assert what in table, table
    assert "FAILED" not in table and table.count("| ok |") == 5, table
