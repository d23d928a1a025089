"""Gradescope autograder bundles: `grader gradescope build` (build.py) and what runs inside them (run.py).

Layout on Gradescope (Ubuntu image, everything as root):
    /autograder/source        the zip, unpacked: setup.sh, run_autograder, bundle.json, the grader's wheel,
                              requirements, the course files of one assignment, optionally its datasets
    /opt/torch-grader/        what setup.sh installs: venv/ (world-readable: the contestant runs its Python),
                              course/ (0700: checks, hidden checks, solutions), data/ (world-readable),
                              bundle.json
    /autograder/submission    the student's files: read by the judge, staged for the contestant
    /autograder/results       results.json, written by the judge only (0700)
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

INSTALL_ROOT = Path("/opt/torch-grader")


class BundleConfig(BaseModel):
    """bundle.json: what run_autograder needs to know about the bundle it belongs to."""

    assignment: str
    grader_version: str
    python: str = Field(description="the Python minor version the pins were taken from, e.g. 3.11")
    torch: str = Field(description="cpu or cuda")
    course: Path = INSTALL_ROOT / "course"
    data_root: Path | None = Field(None, description="None when the assignment needs no dataset")
    leaderboard: bool = True
