"""From a graded result to the places a student looks: the PR comment, the check run, the job summary, the
annotations, the step outputs and the exit status.

Publishing degrades instead of failing: a fork's read-only token, a missing permission or an unreachable API
leaves the report in the job summary with a note that says why. Only the pass threshold sets the exit status.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from grader import __version__
from grader.ci.annotations import Annotation, failed_checks, workflow_command
from grader.ci.github_api import GitHubClient, GitHubError
from grader.ci.github_env import EnvError, GitHubEnv, PullRequest
from grader.report.markdown import to_markdown
from grader.results import GradeResult

COMMENT_LIMIT = 65536  # GitHub's maximum comment body
CHECK_SUMMARY_LIMIT = 65535  # a check run's output.summary
FORK_MESSAGE = (
    "This pull request comes from a fork, so the workflow's token is read-only: "
    "the report is in the job summary only."
)
READ_ONLY_MESSAGE = (
    "The workflow's token may not write to this pull request (a read-only token, as for a pull request from a "
    "fork, or no `pull-requests: write` / `issues: write` permission): the report is in the job summary only."
)
Echo = Callable[[str], None]


def marker(assignment: str) -> str:
    """The hidden first line that finds our previous comment on the next push."""
    return f"<!-- torch-grader:{assignment} -->"


def redact(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


class Verdict(BaseModel):
    """The public checks' score against the pass threshold (a fraction of the public points)."""

    score: float
    max_score: float
    threshold: float = Field(ge=0, le=1)

    @property
    def needed(self) -> float:
        return round(self.threshold * self.max_score, 4)

    @property
    def passed(self) -> bool:
        return self.score + 1e-9 >= self.needed


def verdict(result: GradeResult, threshold: float) -> Verdict:
    shown = result.visible_to_student()
    return Verdict(score=sum(c.score for c in shown), max_score=sum(c.max_score for c in shown), threshold=threshold)


def report(result: GradeResult, v: Verdict, sha: str, run_url: str) -> str:
    """The student's Markdown report with a footer: the threshold, the commit and the run."""
    state = "passed ✅" if v.passed else "not yet ❌"
    meta = [f"torch-grader {__version__}"]
    if sha:
        meta.append(f"commit `{sha[:7]}`")
    if run_url:
        meta.append(f"[workflow run]({run_url})")
    return (
        to_markdown(result, audience="student").rstrip()
        + f"\n\n---\n\n**Pass threshold: {v.threshold:.0%} of the public points ({v.needed:g} / {v.max_score:g}): "
        f"{state}**\n\nPublic checks only: the final grade also counts checks that run after the deadline.\n\n"
        f"<sub>{' · '.join(meta)} · updated on each push</sub>\n"
    )


def _cap(text: str, limit: int, where: str) -> str:
    if len(text) <= limit:
        return text
    note = f"\n\n*(cut to fit {where}: the full report is in the job summary)*\n"
    return text[: limit - len(note)] + note


class Publication(BaseModel):
    """What reached GitHub. `notes` go at the top of the job summary; `warnings` become ::warning:: lines."""

    comment: str = Field("", description="created, updated, or empty when no comment was written")
    comment_url: str = ""
    check_run_url: str = ""
    notes: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def publish(
    client: GitHubClient | None,
    env: GitHubEnv,
    pr: PullRequest | None,
    assignment: str,
    body: str,
    v: Verdict,
    annotations: list[Annotation],
) -> Publication:
    """Post or update the PR comment, then create the check run; never raises for an API failure.

    `body` is the report; the comment gets the hidden marker in front of it."""
    pub = Publication()
    if not env.repository:
        pub.notes.append("Not running in GitHub Actions (no GITHUB_REPOSITORY): nothing was posted.")
        return pub
    if client is None:
        pub.notes.append(
            "No GITHUB_TOKEN was passed to this step, so nothing was posted to the pull request: the report is in "
            "the job summary only (set `GITHUB_TOKEN: ${{ github.token }}` in the step's `env`)."
        )
        return pub
    if pr is not None and pr.is_fork(env.repository):
        pub.notes.append(FORK_MESSAGE)
        return pub
    if pr is not None:
        try:
            text = _cap(f"{marker(assignment)}\n{body}", COMMENT_LIMIT, "a comment")
            pub.comment, comment = client.upsert_comment(env.repository, pr.number, marker(assignment), text)
            pub.comment_url = comment.html_url
        except GitHubError as exc:
            if exc.status == 403:
                pub.notes.append(f"{READ_ONLY_MESSAGE} ({exc.message})")
            else:
                pub.notes.append(f"The report could not be posted as a comment ({exc.message}): it is in the job "
                                 "summary only.")  # fmt: skip
            if exc.status == 403 or exc.retryable:
                return pub  # the same token or network would fail the check run too; do not wait twice
    head_sha = pr.head.sha if pr is not None else env.sha
    if not head_sha:
        return pub
    located = [a.check_run() for a in annotations if a.path and a.line]
    try:
        run = client.publish_check_run(
            env.repository,
            {"name": f"torch-grader / {assignment}", "head_sha": head_sha, "status": "completed",
             "conclusion": "success" if v.passed else "failure"},
            {"title": f"{assignment}: {v.score:g} / {v.max_score:g}", "summary": _cap(body, CHECK_SUMMARY_LIMIT,
             "a check run")},
            located,
        )  # fmt: skip
        pub.check_run_url = run.html_url
    except GitHubError as exc:
        why = ("the workflow's token lacks `checks: write`" if exc.status == 403
               else "GitHub's API did not answer" if exc.retryable else "GitHub refused it")  # fmt: skip
        pub.warnings.append(f"No check run was created ({why}: {exc.message}); the report is still in the "
                            "job summary" + (" and the pull request comment." if pub.comment else "."))  # fmt: skip
    return pub


def write_summary(env: GitHubEnv, notes: list[str], body: str, echo: Echo) -> None:
    """Append the notes and the report to $GITHUB_STEP_SUMMARY (or print them when there is none)."""
    text = "".join(f"> **Note:** {n}\n\n" for n in notes) + body + "\n"
    if env.step_summary is None:
        echo(text)
        return
    with env.step_summary.open("a", encoding="utf-8") as f:
        f.write(text)


def write_outputs(env: GitHubEnv, v: Verdict) -> None:
    """`score`, `max-score`, `passed` and `threshold` for later steps (`steps.<id>.outputs.score`)."""
    if env.output is None:
        return
    with env.output.open("a", encoding="utf-8") as f:
        f.write(f"score={v.score:g}\nmax-score={v.max_score:g}\npassed={str(v.passed).lower()}\n"
                f"threshold={v.threshold:g}\n")  # fmt: skip


def deliver(
    result: GradeResult,
    env: GitHubEnv,
    submission_dir: Path,
    threshold: float,
    echo: Echo,
    client: GitHubClient | None = None,
) -> int:
    """Everything after grading; returns the exit status (0: at or above the threshold, 1: below)."""
    token = env.token_value
    say: Echo = lambda line: echo(redact(line, token))  # noqa: E731 - every line we print passes the redactor
    v = verdict(result, threshold)
    notes: list[str] = []
    try:
        pr = env.pull_request()
    except EnvError as exc:
        pr, notes = None, [str(exc)]
    sha = pr.head.sha if pr is not None else env.sha
    body = redact(report(result, v, sha, env.run_url()), token)
    annotations = failed_checks(result, submission_dir, env.workspace)
    for a in annotations:
        say(a.command())
    if client is None and token:
        client = GitHubClient(env.api_url, token)
    try:
        pub = publish(client, env, pr, result.assignment, body, v, annotations)
    except Exception as exc:  # noqa: BLE001 - a bug here must not hide the grade: degrade to the summary
        pub = Publication(notes=[f"Publishing to GitHub failed ({type(exc).__name__}: {exc}): the report is in "
                                 "the job summary only."])  # fmt: skip
    notes += pub.notes
    for n in notes:
        say(workflow_command("notice", n))
    for w in pub.warnings:
        say(workflow_command("warning", w))
    if pub.comment:
        say(f"pull request comment {pub.comment}: {pub.comment_url}")
    if pub.check_run_url:
        say(f"check run: {pub.check_run_url}")
    write_summary(env, [redact(n, token) for n in notes], body, say)
    write_outputs(env, v)
    say(f"{result.assignment}: {v.score:g} / {v.max_score:g} public points; pass threshold {v.needed:g} "
        f"({v.threshold:.0%}): {'passed' if v.passed else 'below the threshold'}")  # fmt: skip
    return 0 if v.passed else 1
