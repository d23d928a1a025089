"""The tool as an instructor installs it: the wheel into a fresh venv outside the checkout, then a course of
their own from the bundled samples, with no clone on the path (issue: a course of one's own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def sh(args: list[str], cwd: Path, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def shared_dependencies(venv: Path) -> None:
    """Give `venv` this venv's installed packages, except the grader itself (an editable install of this
    checkout), as hard links in a folder on its path. pip then finds every dependency of the wheel already
    there, so the test checks the wheel without a second copy of torch (5 GB of CI's disk). Links, not
    symbolic links: the sandbox's private root mounts the venv, not what a symbolic link points to."""
    here = Path(sysconfig.get_paths()["purelib"])
    deps = venv / "shared-deps"
    deps.mkdir()
    for entry in here.iterdir():
        if entry.name.startswith(("torch_grader", "__editable__", "grader")) or entry.suffix == ".pth":
            continue
        if entry.is_dir():
            shutil.copytree(entry, deps / entry.name, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(str(entry), str(deps / entry.name))
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "shared-deps.pth").write_text(f"{deps}\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The wheel built from this checkout, installed with its docker extra into a new venv under /tmp."""
    base = tmp_path_factory.mktemp("wheel")
    sh([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(base / "dist"), str(ROOT)], cwd=base)
    wheel = next((base / "dist").glob("torch_grader-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "grader/_bundled/docker/Dockerfile" in names and "grader/_bundled/examples/exp1/solution/model.pth" in names
    sh([sys.executable, "-m", "venv", str(base / "venv")], cwd=base)
    shared_dependencies(base / "venv")
    sh([str(base / "venv/bin/python"), "-m", "pip", "install", "-q", f"{wheel}[docker]"], cwd=base, timeout=1800)
    env = {"PATH": f"{base / 'venv/bin'}:/usr/bin:/bin", "HOME": str(base), "COLUMNS": "300",
           "TMPDIR": os.environ.get("TMPDIR", "/tmp")}  # fmt: skip
    return base, env


def test_a_course_from_the_wheel(installed):
    base, env = installed
    where = sh(["python", "-c", "import grader; print(grader.__file__)"], cwd=base, env=env)
    assert where.startswith(str(base / "venv")), where  # not this checkout
    sh(["grader", "init", "course", "--samples", "exp1,softmax"], cwd=base, env=env)
    course = base / "course"
    assert (course / "examples/exp1/expected.toml").is_file() and (course / "solutions/softmax").is_dir()
    sh(["grader", "new", "linreg"], cwd=course, env=env)
    out = sh(["grader", "validate", "linreg"], cwd=course, env=env)
    assert "ok linreg: 3 checks, 100 points" in out
    out = sh(["grader", "validate", "exp1", "--no-sandbox"], cwd=course, env=env)
    assert "ok exp1" in out
    out = sh(["grader", "selftest", "linreg"], cwd=course, env=env)
    assert "ok linreg/solution: 100" in out and "ok linreg/stub: 0" in out
    sh(["grader", "grade", "exp1", "examples/exp1/solution", "--out", str(base / "out")], cwd=course, env=env)
    results = (base / "out" / "results.json").read_text()
    assert '"score": 100.0' in results


def test_image_builds_from_the_wheel(installed):
    """`grader image build` needs no clone: the Dockerfile is package data, the grader wheel is rebuilt from the
    installed package. Uses the locally built base image (scripts/ci-docker.sh) and torch from the index."""
    docker = pytest.importorskip("docker")
    from tests.test_sandbox_docker import SKIP

    if SKIP is not None:
        pytest.skip(SKIP)
    client = docker.from_env()
    base_image = os.environ.get("BASE_IMAGE", "grader-base:bookworm")
    if not client.images.list(name=base_image):
        pytest.skip(f"no base image {base_image}: run scripts/ci-docker.sh")
    base, env = installed
    tag = "torch-grader:wheel-test"
    args = ["grader", "image", "build", "--cpu", "--base-image", base_image, "--tag", tag, "--torch-index-url", ""]
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        args += ["--ca-bundle", "/etc/ssl/certs/ca-certificates.crt"]
    try:
        sh(args, cwd=base, env={**env, "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")},
           timeout=1800)  # fmt: skip
        out = client.containers.run(tag, ["python", "-c", "import grader.contestant, torch; print('ok')"], remove=True)
        assert out.strip() == b"ok"
    finally:
        if client.images.list(name=tag):
            client.images.remove(tag, force=True)


def test_checkout_and_wheel_ask_for_the_same_dependencies():
    """The image built from a checkout and the one built from the wheel share Docker's cached torch layer only
    when their requirements.txt is byte for byte the same."""
    from grader.image import installed_requirements, requirements

    assert requirements(ROOT) == requirements(ROOT / "no-checkout-here")
    assert len(requirements(ROOT)) == len(installed_requirements())
