"""Sandboxes run the contestant: the only process that imports student code. See base.py."""

from grader.sandbox.base import ContestantJob, ExitInfo, Sandbox, SandboxError, SandboxProcess

__all__ = ["ContestantJob", "ExitInfo", "Sandbox", "SandboxError", "SandboxProcess"]
