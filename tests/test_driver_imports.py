"""The batch's parent process never measures a model, so it must not pay for importing torch (about 1.3 s here).

Its workers and Ray slots import torch; the driver plans, records and writes the class's outputs. A torch import
that crept into a module it loads after grading (the similarity report's types did) runs after the last
submission, while no core has anything else to do.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# What `grader batch` imports in its own process, with or without --ray: the CLI, planning and recording, the
# Ray driver, and the modules grader.batch.run loads after grading (rubric and late policy, reports, the last
# similarity report, gradebooks, summary.html)
DRIVER = [
    "grader.cli",
    "grader.batch.run",
    "grader.batch.cluster",
    "grader.batch.adjust",
    "grader.batch.rubric",
    "grader.report",
    "grader.batch.similarity",
    "grader.batch.gradebook",
    "grader.report.summary",
]


@pytest.mark.parametrize("module", DRIVER)
def test_the_batch_driver_imports_no_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", f"{module} imports torch"
