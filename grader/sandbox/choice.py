"""Which sandbox runs the contestant: chosen once at the edge (CLI option, else $GRADER_SANDBOX) and passed on
explicitly as this option object, to the grading pipeline and to batch workers alike."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict

from grader.sandbox.base import Sandbox, SandboxError

ENV_VAR = "GRADER_SANDBOX"
SandboxKind = Literal["local", "docker"]


class SandboxChoice(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: SandboxKind = "local"
    pool: int = 1  # docker: containers started ahead for the next contestants ($GRADER_DOCKER_POOL)
    # docker: the grading images, from the driver's $GRADER_IMAGE / $GRADER_GPU_IMAGE, so that a batch's workers
    # (Ray slots on other nodes included) use the image it was started with; None: the default tags
    image: str | None = None
    gpu_image: str | None = None

    @classmethod
    def resolve(cls, option: str | None = None) -> SandboxChoice:
        """The CLI's --sandbox, else $GRADER_SANDBOX, else local."""
        choice = option or os.environ.get(ENV_VAR) or "local"
        if choice not in ("local", "docker"):
            source = "--sandbox" if option else ENV_VAR
            raise SandboxError(f"{source}={choice!r}: expected 'local' or 'docker'")
        try:
            pool = int(os.environ.get("GRADER_DOCKER_POOL", "1"))
        except ValueError:
            raise SandboxError("GRADER_DOCKER_POOL must be a whole number of containers") from None
        return cls.model_validate({"kind": choice, "pool": pool, "image": os.environ.get("GRADER_IMAGE") or None,
                                   "gpu_image": os.environ.get("GRADER_GPU_IMAGE") or None})  # fmt: skip

    def build(self) -> Sandbox:
        """The sandbox itself; docker needs an engine and the grading image."""
        if self.kind == "docker":
            from grader.sandbox.docker import DockerSandbox

            return DockerSandbox(image=self.image, gpu_image=self.gpu_image, pool=self.pool)
        from grader.sandbox.local import LocalSandbox

        return LocalSandbox()
