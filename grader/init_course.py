"""`grader init COURSE`: create a course folder that says what it is, optionally with bundled samples."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.bundled import bundled_root, sample_ids
from grader.spec import COURSE_FILE, SpecError

CONFIG = '''\
# This folder is a torch-grader course: `grader` commands run inside it find it by this file.
name = "{name}"

# A dataset of the course's own: a reader module (see docs/authoring.md, "Datasets").
# [datasets.my-data]
# reader = "datasets/my_data.py"
'''

README = '''\
# {name}: a torch-grader course

This folder holds a course for torch-grader, the PyTorch autograder. Everything in it is for instructors;
students get only what `grader release` writes into `assignments/<id>/`.

| folder | what | given to students |
| --- | --- | --- |
| `assignments/<id>/` | `assignment.toml`, the released stub, `probes.py`, public checks, handout | yes |
| `solutions/<id>/` | the solution with markers (the single source of the stub), hidden checks | never |
| `examples/<id>/` | example submissions and `expected.toml`, what each should score | never |
| `datasets/` | readers for the course's own datasets (optional) | never |

Next steps:

    grader new linreg                      # scaffold an assignment that grades to full marks at once
    grader validate linreg                 # everything that can be checked without grading
    grader selftest linreg                 # grade every example, compare with expected.toml
    grader grade linreg SUBMISSION --out OUT
    grader batch linreg SUBMISSIONS --out OUT

The authoring guide (docs/authoring.md in the tool's repository) explains every file and field.
'''


def init_course(folder: Path, samples: list[str]) -> list[str]:
    """Create the course at `folder` and copy in the named bundled samples. Returns what was done."""
    if unknown := sorted(set(samples) - set(sample_ids())):
        raise SpecError(f"unknown sample(s) {', '.join(unknown)}; bundled: {', '.join(sample_ids()) or 'none'}")
    if (folder / COURSE_FILE).exists():
        raise SpecError(f"{folder / COURSE_FILE} exists: {folder} is a course already; "
                        "add assignments with `grader new ID`")  # fmt: skip
    if folder.exists() and any(folder.iterdir()):
        raise SpecError(f"{folder} is not empty; pick a new folder for the course")
    folder.mkdir(parents=True, exist_ok=True)
    name = folder.resolve().name
    (folder / COURSE_FILE).write_text(CONFIG.format(name=name), encoding="utf-8")
    (folder / "README.md").write_text(README.format(name=name), encoding="utf-8")
    done = [f"created {folder / COURSE_FILE} and {folder / 'README.md'}"]
    for part in ("assignments", "solutions", "examples"):
        (folder / part).mkdir(exist_ok=True)
    src = bundled_root()
    for sample in samples:
        for part in ("assignments", "solutions", "examples"):
            if (src / part / sample).is_dir():
                shutil.copytree(src / part / sample, folder / part / sample,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        done.append(f"copied sample {sample} (assignment, solution, examples)")
    return done
