"""Experiment loggers in student code: stood in for in the contestant, noted by the judge (grader.loggers)."""

from __future__ import annotations

import os
import subprocess
import sys

from grader.loggers import logger_note

STUDENT = '''
import argparse
import torch
from torch.utils import tensorboard
import swanlab

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
args = parser.parse_args([])
swanlab.init(project="lenet", config=args)


class Writer(tensorboard.SummaryWriter):
    """Logs train and test together."""

    def log_both(self, train, test, step):
        self.add_scalars("acc", {"train": train, "test": test}, step)
        return "logged"


writer = Writer()
assert writer.log_both(0.9, 0.8, 1) == "logged"
with writer:
    writer.add_scalars("acc", {"train": 0.9, "test": 0.8}, 1)
writer.flush()
swanlab.config.update({"batch_size": 256}, allow_val_change=True)
swanlab.log({"acc": 0.8})
for _ in swanlab.Settings():
    raise SystemExit("iterating a stand-in yields nothing")
from IPython import display  # d2l's Animator
import matplotlib.pyplot as plt  # matplotlib asks IPython's stand-in about its shell at each figure
plt.figure(figsize=(5, 3))
plt.plot([1.0, 0.5], label="loss")
display.display(plt.gcf())
display.clear_output(wait=True)
print(swanlab.config.lr, swanlab.config["batch_size"], str(swanlab.run.name)[:1] == "<")
'''


def test_the_stand_ins_take_every_call_and_keep_the_settings(tmp_path):
    """Run as the contestant runs student code: the stand-ins ahead of everything, neither package installed."""
    (tmp_path / "student.py").write_text(STUDENT)
    code = "import grader.loggers as g, runpy; g.install(); runpy.run_path('student.py')"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "MPLBACKEND": "Agg"})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0.05", "256", "True"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.py"]  # no runs/ or swanlog/ written


def test_the_note_names_each_logger_once_at_its_first_import():
    assert logger_note("lenet.py", STUDENT) == (
        "lenet.py uses TensorBoard (line 4), SwanLab (line 5) and IPython's display (line 30): grading ran them as "
        "stand-ins that do nothing "
        "(what they show or log is not graded); this costs nothing")
    assert logger_note("lenet.py", "import torch\nfrom torch.utils.data import DataLoader\n") is None
    assert logger_note("lenet.py", "import wandb\nimport wandb.sdk\ndef f(:\n") is None  # the syntax error is said
