"""Bundle the sample course into the wheel: `grader init --samples` copies it out of grader/_bundled/.

The repository's own course (assignments/, solutions/, examples/) and the grading image's docker/ folder live
at the top of the checkout, where instructors and tests use them; a wheel build copies them into the package.
An editable install needs nothing: grader.bundled finds them in the checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("assignments", "solutions", "examples", "docker")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


class BuildWithCourse(build_py):
    def run(self) -> None:
        super().run()
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "grader" / "_bundled"
        for name in BUNDLED:
            if (here / name).is_dir():
                shutil.copytree(here / name, target / name, ignore=SKIP, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithCourse})
