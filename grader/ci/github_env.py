"""The GitHub Actions environment of a run: the variables the runner sets, and the event that triggered it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

PR_EVENTS = ("pull_request", "pull_request_target")


class Repo(BaseModel):
    model_config = ConfigDict(extra="ignore")
    full_name: str


class Branch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sha: str
    ref: str = ""
    repo: Repo | None = Field(None, description="null when the fork it came from was deleted")


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    number: int = Field(ge=1)
    head: Branch
    base: Branch

    def is_fork(self, repository: str) -> bool:
        """True when the head branch lives in another repository: the workflow's token is then read-only."""
        head = self.head.repo.full_name if self.head.repo else ""
        return head.lower() != repository.lower()


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    pull_request: PullRequest | None = None


class EnvError(Exception):
    """The environment or the event file is unusable; the message says which variable or file."""


class GitHubEnv(BaseModel):
    """The variables GitHub Actions sets for a step (GITHUB_TOKEN only where the workflow passes it on)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    token: SecretStr | None = Field(None, alias="GITHUB_TOKEN")  # SecretStr: repr() and logs show '**********'
    repository: str = Field("", alias="GITHUB_REPOSITORY", pattern=r"^([\w.-]+/[\w.-]+)?$")
    event_name: str = Field("", alias="GITHUB_EVENT_NAME")
    event_path: Path | None = Field(None, alias="GITHUB_EVENT_PATH")
    sha: str = Field("", alias="GITHUB_SHA")
    api_url: str = Field("https://api.github.com", alias="GITHUB_API_URL", pattern=r"^https?://")
    server_url: str = Field("https://github.com", alias="GITHUB_SERVER_URL")
    run_id: str = Field("", alias="GITHUB_RUN_ID")
    step_summary: Path | None = Field(None, alias="GITHUB_STEP_SUMMARY")
    output: Path | None = Field(None, alias="GITHUB_OUTPUT")
    workspace: Path | None = Field(None, alias="GITHUB_WORKSPACE")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> GitHubEnv:
        env = os.environ if environ is None else environ
        # GH_TOKEN is what the gh CLI reads; accept it too so either spelling in a workflow works.
        fields = {f.alias: env[f.alias] for f in cls.model_fields.values() if f.alias and env.get(f.alias)}
        if "GITHUB_TOKEN" not in fields and env.get("GH_TOKEN"):
            fields["GITHUB_TOKEN"] = env["GH_TOKEN"]
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            # The input could include the token: name the variables only, never echo values.
            names = ", ".join(str(e["loc"][0]) for e in exc.errors())
            raise EnvError(f"invalid GitHub Actions environment variable(s): {names}") from None

    @property
    def token_value(self) -> str:
        return self.token.get_secret_value() if self.token else ""

    def pull_request(self) -> PullRequest | None:
        """The pull request of a pull_request event, from the event file; None for other events."""
        if self.event_name not in PR_EVENTS or self.event_path is None:
            return None
        try:
            event = Event.model_validate(json.loads(self.event_path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # ValidationError is a ValueError
            raise EnvError(f"GITHUB_EVENT_PATH={self.event_path}: not a readable pull_request event ({exc})") from None
        return event.pull_request

    def run_url(self) -> str:
        if not (self.repository and self.run_id):
            return ""
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"
