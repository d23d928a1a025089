"""`grader ci github`: the steps of the grading workflow (ci/workflows/grade-pr.yml), run on a GitHub runner.

Importing this module stays cheap (no torch): `grader --help` loads it. Grading is imported inside the command.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from grader.ci.annotations import workflow_command
from grader.ci.github_env import EnvError, GitHubEnv

ci_app = typer.Typer(help="Graded feedback in continuous integration (GitHub Actions).", no_args_is_help=True)

# Variables a step may hold that grant access to something; removed from our own environment before any
# student code runs. The sandboxes already start the contestant with a minimal environment: this is a second
# line, for anything else this process might start.
SECRET_VARIABLES = ("GITHUB_TOKEN", "GH_TOKEN", "ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def _fail(env: GitHubEnv | None, message: str, code: int = 2) -> None:
    """A problem of the setup, not of the submission: say it in the log, the annotations and the summary."""
    token = env.token_value if env else ""
    message = message.replace(token, "***") if token else message
    typer.echo(workflow_command("error", message, title="torch-grader could not grade this push"))
    if env is not None and env.step_summary is not None:
        with env.step_summary.open("a", encoding="utf-8") as f:
            f.write(f"> **torch-grader could not grade this push.** {message}\n")
    raise typer.Exit(code)


@ci_app.command("github")
def github(
    assignment: Annotated[str, typer.Argument(help="assignment id, e.g. exp1")],
    submission: Annotated[
        Path | None, typer.Argument(help="the student's files (default: $GITHUB_WORKSPACE, else the current folder)")
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, envvar="GRADER_THRESHOLD",
                     help="fraction of the public points needed to pass (exit 0); below it the job fails"),
    ] = 1.0,  # fmt: skip
    sandbox: Annotated[
        str, typer.Option("--sandbox", help="docker or local (default: $GRADER_SANDBOX, else local)")
    ] = "",
    data_root: Annotated[Path | None, typer.Option("--data-root", help="dataset root")] = None,
    course: Annotated[Path | None, typer.Option("--course", help="course root (default: as `grader check`)")] = None,
) -> None:
    """Run the public checks on a pull request and report: PR comment (updated per push), check run with
    annotations, job summary, step outputs. Exit 0 at or above --threshold, 1 below it, 2 if grading could not run."""
    try:
        env = GitHubEnv.from_environ()
    except EnvError as exc:
        _fail(None, str(exc))
        raise  # unreachable
    for name in SECRET_VARIABLES:
        os.environ.pop(name, None)
    folder = submission or env.workspace or Path.cwd()
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", assignment):
        _fail(env, f"assignment {assignment!r}: expected an id such as exp1")
    if not folder.is_dir():
        _fail(env, f"submission folder {folder} does not exist")

    from grader.ci.feedback import deliver
    from grader.data import DataError
    from grader.grading import grade  # imports torch
    from grader.sandbox.base import SandboxError
    from grader.sandbox.choice import SandboxChoice
    from grader.spec import Course, SpecError

    try:
        result = grade(Course.locate(course), assignment, folder, mode="check",
                       sandbox=SandboxChoice.resolve(sandbox).build(),
                       data_root=data_root)  # fmt: skip
    except (SpecError, DataError, SandboxError) as exc:
        _fail(env, str(exc))
        raise  # unreachable
    raise typer.Exit(deliver(result, env, folder, threshold, typer.echo))
