"""What ships inside the tool: the sample course and the grading image's Dockerfile.

A wheel carries them under grader/_bundled/ (setup.py copies them in); an editable install or a checkout
reads them where they live, at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def bundled_root() -> Path:
    """The folder holding assignments/, solutions/, examples/ and docker/ of the sample course."""
    packaged = PACKAGE / "_bundled"
    return packaged if packaged.is_dir() else PACKAGE.parent


def dockerfile() -> Path:
    return bundled_root() / "docker" / "Dockerfile"


def sample_ids() -> list[str]:
    base = bundled_root() / "assignments"
    return sorted(p.name for p in base.iterdir() if (p / "assignment.toml").is_file()) if base.is_dir() else []
