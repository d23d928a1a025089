"""`grader gradescope build ID --out autograder.zip`: one assignment as a Gradescope autograder zip.

The zip holds, at its root, `setup.sh` (run once, as root, when Gradescope builds the image) and
`run_autograder` (run for every submission), plus `bundle.json`, the grader's own wheel (`wheels/`), the pinned
requirements taken from the environment that builds the zip (`requirements.lock.txt`, and the version ranges of
pyproject.toml as `requirements.in.txt` for a Python the pins do not fit), the course files of the one
assignment (`course/assignments/ID`, `course/solutions/ID`: checks, hidden checks, reference files) and,
with `--data-root`, the datasets it needs (`data/`; otherwise setup.sh provisions them with `grader data prepare`).
"""

from __future__ import annotations

import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from grader import __version__
from grader.bundled import bundled_root
from grader.data import datasets
from grader.gradescope import INSTALL_ROOT, BundleConfig
from grader.image import CPU_TORCH_INDEX_URL, build_grader_wheel, requirements, wheel_from_installed
from grader.spec import Course

TorchBuild = Literal["cpu", "cuda"]
# Installed by torch's own pins when the CUDA build is chosen; the CPU build needs none of them.
CUDA_ONLY = re.compile(r"^(nvidia-.*|triton|cuda-.*)$")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


class BuildError(Exception):
    """The bundle cannot be built (no such assignment, data missing, no wheel); the message says what to do."""


@dataclass(frozen=True)
class Built:
    zip: Path
    size_bytes: int
    files: list[str]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(root: str = "torch-grader") -> list[str]:
    """`name==version` for every distribution `root` needs at run time, as installed here (extras left out).

    torch's local label (+cpu, +cu128) is dropped: the build option chooses the index instead. CUDA runtime
    packages are left to torch's own pins."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = [r for r in (metadata.requires(root) or []) if "extra ==" not in r]
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _canonical(req.name)
        if name in seen or CUDA_ONLY.match(name):
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # not installed here (e.g. tomli on 3.11): the ranges file still names it
        seen[name] = dist.version.split("+")[0]
        todo += [r for r in (dist.requires or []) if "extra ==" not in r]
    return [f"{n}=={v}" for n, v in sorted(seen.items())]


SETUP_SH = r"""#!/usr/bin/env bash
# torch-grader: Gradescope setup for {assignment} (built by `grader gradescope build`, grader {version}).
# Runs once, as root, when Gradescope builds the autograder image (Ubuntu 22.04 by default).
#   TORCH_INDEX_URL  pip index for torch (default: the CPU build's index; "" = PyPI's build, CUDA on Linux)
#   PIP_FIND_LINKS, PIP_CERT and the other PIP_* variables are honoured (a local wheelhouse, a CA bundle).
set -euo pipefail
SRC=/autograder/source
DEST={dest}
PY_VERSION={python}
TORCH_INDEX_URL=${{TORCH_INDEX_URL-{torch_index}}}
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
umask 022  # what setup.sh installs is readable by every user, except what it locks below
t0=$(date +%s)
step() {{ echo "setup.sh: $1 ($(( $(date +%s) - t0 )) s)"; }}

# 1. Python: the version the pins were taken from, from apt when missing (Ubuntu 22.04 has 3.10 and, in
# universe, 3.11); otherwise the system python3 with pyproject's version ranges.
py=python$PY_VERSION
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$py" "$py-venv" ca-certificates >/dev/null \
        || echo "setup.sh: no $py from apt; falling back to python3 and version ranges"
fi
pins=$SRC/requirements.lock.txt
if ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    py=python3
    pins=$SRC/requirements.in.txt
    "$py" -c 'import venv, ensurepip' >/dev/null 2>&1 || {{
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null; }}
fi

step "python: $py"

# 2. The grader and its pinned dependencies, in a venv every user can read (the contestant runs its Python).
# Rerunnable: a venv already there is kept, and pip installs only what differs from the pins.
mkdir -p "$DEST"
rm -rf "$DEST/course" "$DEST/data"
[ -x "$DEST/venv/bin/python" ] || "$py" -m venv "$DEST/venv"
"$DEST/venv/bin/python" -m pip install -q ${{TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}} \
    -r "$pins" "$SRC"/wheels/torch_grader-*.whl
# The grader itself always from this zip: a rerun with a changed grader of the same version must not keep the old.
"$DEST/venv/bin/python" -m pip install -q --no-deps --force-reinstall "$SRC"/wheels/torch_grader-*.whl

step "packages installed"

# 3. The course files: readable by root only (hidden checks, solutions); the zip's own copy too.
cp -r "$SRC/course" "$DEST/course"
cp "$SRC/bundle.json" "$DEST/bundle.json"
chown -R root:root "$DEST/course"
chmod -R go-rwx "$DEST/course"

# 4. The datasets: bundled in the zip, or provisioned here (the network is there while the image builds).
if [ -d "$SRC/data" ]; then
    cp -r "$SRC/data" "$DEST/data"
else
    for ds in {datasets}; do "$DEST/venv/bin/grader" data prepare "$ds" --root "$DEST/data"; done
fi
# The data was copied just now (cheap to chmod); not the venv: umask made it readable, and when setup.sh runs
# again on an image that has it, a recursive chmod would copy every file into a new layer (gigabytes of torch).
[ -d "$DEST/data" ] && chmod -R a+rX,go-w "$DEST/data"
chmod 755 "$DEST"
chmod 700 "$SRC"

step "course and datasets in place"

# 5. Fail the image build, not the first submission, when something is missing.
"$DEST/venv/bin/python" -c "import torch, torchvision, onnxruntime, grader.grading; print('torch', torch.__version__)"
"$DEST/venv/bin/grader" validate --course "$DEST/course"
echo "setup.sh: {assignment} ready in $(( $(date +%s) - t0 )) s"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# torch-grader: grade /autograder/submission into /autograder/results/results.json ({assignment}).
# The judge runs as root; student code runs in the local sandbox as `nobody`. results.json is always valid
# JSON: if the grader itself cannot start, a minimal one says so.
R=/autograder/results
mkdir -p "$R"
# Nothing under /autograder is for student code: the course copy, the results, the metadata (names, emails).
chmod 711 /autograder 2>/dev/null
chmod 700 /autograder/source "$R" /autograder/submission 2>/dev/null
chmod 600 /autograder/submission_metadata.json 2>/dev/null
PY={dest}/venv/bin/python
# One submission per container: a warm contestant template would only hold a second torch in Gradescope's memory.
export GRADER_WARM=0
cd /autograder && "$PY" -m grader.gradescope.run --bundle {dest}/bundle.json
rc=$?
if ! "$PY" -c 'import json, sys; json.load(open(sys.argv[1]))' "$R/results.json" 2>/dev/null \
   && ! python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$R/results.json" 2>/dev/null; then
    why="The autograder could not run (exit code $rc), so this submission was not graded. Your instructor can see"
    why="$why why in the autograder output; please tell them."
    printf '{{"score": 0, "output": "%s", "stdout_visibility": "hidden", "tests": []}}\n' "$why" > "$R/results.json"
fi
exit 0
"""


def _write(zf: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed: the same inputs give the same zip
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def _add_tree(zf: zipfile.ZipFile, folder: Path, arcname: str, compress: bool = True) -> list[str]:
    names = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise BuildError(f"{path}: a link; the bundle carries regular files only")
        if path.is_file():
            name = f"{arcname}/{path.relative_to(folder).as_posix()}"
            zf.write(path, name, compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
            names.append(name)
    return names


def _staged_course(course: Course, aid: str, tmp: Path) -> Path:
    """The one assignment's public and private folders, without caches."""
    dest = tmp / "course"
    shutil.copytree(course.assignment_dir(aid), dest / "assignments" / aid, ignore=IGNORED)
    if course.solution_dir(aid).is_dir():
        shutil.copytree(course.solution_dir(aid), dest / "solutions" / aid, ignore=IGNORED)
    else:
        (dest / "solutions" / aid).mkdir(parents=True)  # Course.locate looks for both folders
    return dest


def build_bundle(
    course: Course,
    assignment: str,
    out: Path,
    torch: TorchBuild = "cpu",
    data_root: Path | None = None,
    pins: Path | None = None,
    wheel: Path | None = None,
    leaderboard: bool = True,
    source: Path | None = None,
) -> Built:
    """Write the autograder zip for `assignment` to `out`.

    `pins`: a requirements file to use instead of this environment's versions (e.g. for another Python).
    `wheel`: the grader's wheel; by default built from `source` (the checkout this package runs from)."""
    spec = course.spec(assignment)  # SpecError for an unknown or invalid assignment
    if data_root is not None:
        known = datasets(course.root)
        for ds in spec.datasets:
            layout = known[ds].layout if ds in known else ds
            if not (data_root / layout).exists():
                raise BuildError(f"{data_root} has no {layout}: run `grader data prepare {ds} --root {data_root}`")
    source = source or bundled_root()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    config = BundleConfig(
        assignment=assignment, grader_version=__version__, python=python, torch=torch, leaderboard=leaderboard,
        data_root=INSTALL_ROOT / "data" if spec.datasets else None,
    )  # fmt: skip
    fill = {
        "assignment": assignment, "version": __version__, "dest": INSTALL_ROOT, "python": python,
        "torch_index": CPU_TORCH_INDEX_URL if torch == "cpu" else "", "datasets": " ".join(spec.datasets),
    }  # fmt: skip
    lock = pins.read_text(encoding="utf-8") if pins else "\n".join(pinned_requirements()) + "\n"
    with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp_name:
        tmp = Path(tmp_name)
        if wheel is None:  # from the checkout, or repackaged from this installed grader (no clone needed)
            has_source = (source / "pyproject.toml").is_file()
            wheel = build_grader_wheel(source, tmp / "wheels") if has_source else wheel_from_installed(tmp / "wheels")
        staged = _staged_course(course, assignment, tmp)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with zipfile.ZipFile(partial, "w") as zf:
            _write(zf, "setup.sh", SETUP_SH.format(**fill).encode(), 0o755)
            _write(zf, "run_autograder", RUN_AUTOGRADER.format(**fill).encode(), 0o755)
            _write(zf, "bundle.json", config.model_dump_json(indent=2).encode() + b"\n")
            _write(zf, "requirements.lock.txt", lock.encode())
            ranges = "\n".join(requirements(source)) if (source / "pyproject.toml").is_file() else lock
            _write(zf, "requirements.in.txt", ranges.encode() + b"\n")
            zf.write(wheel, f"wheels/{wheel.name}")
            _add_tree(zf, staged, "course")
            if data_root is not None:
                for ds in spec.datasets:
                    top = datasets(course.root)[ds].layout.split("/")[0]  # the folder (or file) it keeps
                    path = data_root / top
                    if path.is_dir():  # already compressed or random-looking: stored, which is much faster
                        _add_tree(zf, path, f"data/{top}", compress=False)
                    else:
                        zf.write(path, f"data/{top}")
        partial.replace(out)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    return Built(zip=out, size_bytes=out.stat().st_size, files=names)


def summary(built: Built) -> Iterable[str]:
    top = sorted({n.split("/")[0] for n in built.files})
    yield f"wrote {built.zip} ({built.size_bytes / 1e6:.1f} MB, {len(built.files)} files): {', '.join(top)}"
