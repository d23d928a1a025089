"""Build the grading image for the Docker sandbox: the logic behind `grader image build [--cpu|--cuda]`.

The build context is made fresh in a temporary folder: `docker/Dockerfile` plus a `wheelhouse/` holding the
grader's own wheel (built from this source tree) and any extra wheels to prefer over the index. It is built
through the Docker engine's API (the classic builder, which needs no buildx plugin).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grader.bundled import bundled_root, dockerfile
from grader.sandbox.base import SandboxError

Variant = Literal["cpu", "cuda"]

# Production bases. The CUDA one ships torch, torchvision and the CUDA runtime; the CPU one is plain
# Debian (the same release as the CI's debootstrapped base) and gets torch from the CPU index below.
CUDA_BASE_IMAGE = "pytorch/pytorch:2.11.0-cuda12.8-cudnn9-runtime"
CPU_BASE_IMAGE = "debian:bookworm-slim"
CPU_TORCH_INDEX_URL = "https://download.pytorch.org/whl/cpu"
IMAGE_TAGS: dict[Variant, str] = {"cpu": "torch-grader:cpu", "cuda": "torch-grader:cuda"}


@dataclass(frozen=True)
class BuildPlan:
    """What one build uses; `grader image build` fills it from its options."""

    variant: Variant
    base_image: str
    tag: str
    torch_index_url: str = ""
    extra_wheels: tuple[Path, ...] = ()
    source: Path = field(default_factory=bundled_root)  # a checkout, or the installed package's bundle
    network_mode: str | None = None  # e.g. "host" where the default bridge has no route out
    ca_bundle: Path | None = None  # CA bundle for pip inside the build, where TLS is intercepted
    build_args: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    size_bytes: int
    seconds: float


def plan(
    variant: Variant,
    base_image: str | None = None,
    tag: str | None = None,
    wheels_dir: Path | None = None,
    torch_index_url: str | None = None,
    network_mode: str | None = None,
    ca_bundle: Path | None = None,
) -> BuildPlan:
    """The build for `variant`, with the production defaults unless overridden.

    `wheels_dir`: wheels to install by name ahead of the index, e.g. a local CPU torch wheel where
    download.pytorch.org cannot be reached (CI); a CPU torch wheel there replaces the CPU index."""
    wheels = tuple(sorted(wheels_dir.glob("*.whl"))) if wheels_dir is not None else ()
    if wheels_dir is not None and not wheels:
        raise SandboxError(f"{wheels_dir} holds no .whl files")
    if torch_index_url is None:
        has_torch = any(w.name.startswith("torch-") for w in wheels)
        torch_index_url = CPU_TORCH_INDEX_URL if variant == "cpu" and not has_torch else ""
    return BuildPlan(
        variant=variant,
        base_image=base_image or (CPU_BASE_IMAGE if variant == "cpu" else CUDA_BASE_IMAGE),
        tag=tag or IMAGE_TAGS[variant],
        torch_index_url=torch_index_url,
        extra_wheels=wheels,
        network_mode=network_mode,
        ca_bundle=ca_bundle,
    )


def build_grader_wheel(source: Path, dest: Path) -> Path:
    """`pip wheel --no-deps` of the grader's source tree into `dest`; returns the wheel."""
    if not (source / "pyproject.toml").is_file():
        raise SandboxError(f"{source} is not the grader's source tree (no pyproject.toml): pass the checkout")
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dest), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SandboxError(f"building the grader wheel failed:\n{done.stderr[-2000:]}")
    made = sorted(set(dest.glob("torch_grader-*.whl")) - before) or sorted(dest.glob("torch_grader-*.whl"))
    if not made:
        raise SandboxError(f"pip wheel wrote no torch_grader wheel into {dest}")
    return made[-1]


def installed_requirements() -> list[str]:
    """The installed grader's runtime dependencies (its metadata's Requires-Dist, without extras)."""
    from importlib.metadata import requires

    return [r for r in requires("torch-grader") or [] if "extra ==" not in r]


def wheel_from_installed(dest: Path) -> Path:
    """A wheel of the grader as installed here (a pip install without a checkout): its package folder, with
    the bundled course, repackaged under the installed name, version and dependencies."""
    from importlib.metadata import version

    package = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="grader-wheel-src-") as tmp:
        src = Path(tmp)
        shutil.copytree(package, src / "grader", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        deps = ", ".join(json.dumps(r) for r in installed_requirements())  # a JSON string is a TOML basic string
        (src / "pyproject.toml").write_text(
            '[build-system]\nrequires = ["setuptools>=77"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "torch-grader"\nversion = "{version("torch-grader")}"\ndependencies = [{deps}]\n'
            '[project.scripts]\ngrader = "grader.cli:app"\n'
            '[tool.setuptools.packages.find]\ninclude = ["grader*"]\n'
            '[tool.setuptools.package-data]\n"*" = ["**/*"]\n'
        )
        return build_grader_wheel(src, dest)


def requirements(source: Path) -> list[str]:
    """The grader's runtime dependencies, as pyproject.toml declares them (or the installed metadata).

    Written in packaging's one canonical form, so that a checkout and an installed wheel give the same
    requirements.txt: Docker's layer cache then keeps one copy of torch for both (gigabytes of disk)."""
    from packaging.requirements import Requirement

    if not (source / "pyproject.toml").is_file():
        declared = installed_requirements()
    else:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        declared = tomllib.loads((source / "pyproject.toml").read_text())["project"]["dependencies"]
    return [str(Requirement(r)) for r in declared]


def make_context(p: BuildPlan, dest: Path) -> Path:
    """Write the build context into `dest` (see docker/Dockerfile for its layout)."""
    wheelhouse = dest / "wheelhouse"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    (dest / "grader-wheel").mkdir(exist_ok=True)
    shutil.copy(dockerfile(), dest / "Dockerfile")
    # Kept apart from the grader's wheel so that editing the grader does not reinstall torch.
    (dest / "requirements.txt").write_text("\n".join(requirements(p.source)) + "\n")
    if (p.source / "pyproject.toml").is_file():
        build_grader_wheel(p.source, dest / "grader-wheel")
    else:
        wheel_from_installed(dest / "grader-wheel")
    for w in p.extra_wheels:
        shutil.copy(w, wheelhouse / w.name)
    (dest / "ca").mkdir(exist_ok=True)  # COPY needs the folder even when it stays empty
    if p.ca_bundle is not None:
        shutil.copy(p.ca_bundle, dest / "ca" / "ca.crt")
    return dest


def docker_client() -> Any:
    """A client for the local engine, or a SandboxError that says how to get one."""
    try:
        import docker
    except ImportError:
        raise SandboxError("the docker package is missing: pip install 'docker>=7'") from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise SandboxError(
            f"cannot reach the Docker engine ({exc}): start it (`sudo systemctl start docker`, or `dockerd &`), "
            "make sure this user may use /var/run/docker.sock (the docker group), or set DOCKER_HOST"
        ) from None
    return client


def build(p: BuildPlan, log: Callable[[str], None] = print, client: Any = None) -> BuildResult:
    """Build the image of plan `p` and tag it; streams the builder's output to `log`."""
    client = client or docker_client()  # first: it says how to install the docker package when it is missing
    import docker
    t0 = time.monotonic()
    args = {"BASE_IMAGE": p.base_image, "TORCH_INDEX_URL": p.torch_index_url, **p.build_args}
    with tempfile.TemporaryDirectory(prefix="grader-image-") as tmp:
        ctx = make_context(p, Path(tmp))
        wheels = ", ".join(w.name for w in (ctx / "wheelhouse").iterdir()) or "empty"
        log(f"building {p.tag} from {p.base_image} (wheelhouse: {wheels})")
        stream = client.api.build(
            path=str(ctx), tag=p.tag, buildargs=args, rm=True, forcerm=True, pull=False, decode=True,
            network_mode=p.network_mode,
        )  # fmt: skip
        try:
            for chunk in stream:
                if "error" in chunk:
                    raise SandboxError(f"building {p.tag} failed: {chunk['error'].strip()}")
                if text := chunk.get("stream", "").rstrip():
                    log(text)
        except docker.errors.APIError as exc:
            raise SandboxError(f"building {p.tag} failed: {exc}") from None
    image = client.images.get(p.tag)
    return BuildResult(tag=p.tag, image_id=image.id, size_bytes=int(image.attrs["Size"]), seconds=time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    """`python -m grader.image [--cpu|--cuda] ...`: the same as `grader image build` until the CLI has it."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m grader.image", description=__doc__.splitlines()[0])
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--cpu", dest="variant", action="store_const", const="cpu")
    group.add_argument("--cuda", dest="variant", action="store_const", const="cuda")
    ap.add_argument("--base-image", help="FROM image (default: the variant's production base)")
    ap.add_argument("--tag", help="image tag (default: torch-grader:<variant>)")
    ap.add_argument("--wheels", type=Path, help="folder of wheels to install ahead of the index (e.g. CPU torch)")
    ap.add_argument("--torch-index-url", help="extra pip index for torch (default for --cpu: the CPU index)")
    ap.add_argument("--network", help="network mode for the build's RUN steps, e.g. host")
    ap.add_argument("--ca-bundle", type=Path, help="CA bundle for pip in the build (networks that intercept TLS)")
    a = ap.parse_args(argv)
    try:
        p = plan(a.variant or "cuda", a.base_image, a.tag, a.wheels, a.torch_index_url, a.network, a.ca_bundle)
        r = build(p)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built {r.tag} ({r.image_id[:19]}): {r.size_bytes / 1e9:.2f} GB in {r.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
