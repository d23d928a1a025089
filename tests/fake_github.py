"""A local HTTP server that enforces GitHub's REST contract for the endpoints `grader ci github` uses.

Endpoints: list / create issue comments, update an issue comment, create / update a check run. It checks
what GitHub checks, answering with GitHub's status codes and JSON error bodies:
- headers: a User-Agent (403 without), `Accept: application/vnd.github+json` (415), `X-GitHub-Api-Version`
  of a supported version (400; GitHub defaults a missing one, this fake requires it so the client stays pinned),
  `Authorization: Bearer <token>` or `token <token>` (401 "Requires authentication" / "Bad credentials");
- routes: 404 "Not Found" for an unknown repository, issue, comment or check run, and for any other path;
- bodies: JSON objects (400 "Problems parsing JSON"), required fields and types, enum values, GitHub's limits
  (a comment of at most 65536 characters, at most 50 annotations per check-run request, a known head_sha)
  (422 "Validation Failed" / "Invalid request.");
- permissions: a token's permissions per scope, as the Actions token has them; a write without permission is
  403 "Resource not accessible by integration" (a fork's read-only token, or no `checks: write`);
- pagination: `per_page` (default 30, at most 100) and `page`, with a `Link` header (first, prev, next, last)
  whose URLs use the /repositories/{id}/ form, as GitHub's do: a client must follow them, not rebuild them.
Faults can be injected (5xx answers, dropped connections, an error that echoes the Authorization header).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSIONS = {"2022-11-28", "2026-03-10"}
DOCS = "https://docs.github.com/rest"
CHECK_STATUS = {"queued", "in_progress", "completed", "waiting", "requested", "pending"}
CONCLUSIONS = {"action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"}
LEVELS = {"notice", "warning", "failure"}
SHA = re.compile(r"^[0-9a-f]{40}$")
BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
WRITE_ALL = {"issues": "write", "pull_requests": "write", "checks": "write", "contents": "read"}
READ_ONLY = {"issues": "read", "pull_requests": "read", "checks": "read", "contents": "read"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors


@dataclass
class Token:
    permissions: dict[str, str]
    user: dict[str, Any] = field(default_factory=lambda: dict(BOT))


@dataclass
class Repo:
    id: int
    full_name: str
    issues: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # PRs are issues too
    commits: set[str] = field(default_factory=set)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    status: int
    body: Any = None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    """Start with `with FakeGitHub() as gh:`; `gh.url` is the API root to put in $GITHUB_API_URL."""

    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}
        self.requests: list[Recorded] = []
        self.faults: list[str | int] = []  # one per request: an HTTP status, "drop", "echo-auth" or "redirect"
        self.redirect_to = ""  # where a "redirect" fault sends the client (another origin)
        self._ids = iter(range(1_000_001, 10**9))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    # -- setup ------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_token(self, token: str, permissions: dict[str, str] | None = None, user: dict[str, Any] | None = None):
        self.tokens[token] = Token(dict(WRITE_ALL if permissions is None else permissions), dict(user or BOT))

    def add_repo(self, full_name: str, pulls: dict[int, str] | None = None) -> Repo:
        """A repository with pull requests {number: head sha}; each head sha is a known commit."""
        repo = Repo(id=len(self.repos) + 100, full_name=full_name)
        for number, sha in (pulls or {}).items():
            repo.issues[number] = []
            repo.commits.add(sha)
        self.repos[full_name.lower()] = repo
        return repo

    def add_comment(self, full_name: str, number: int, body: str, user: dict[str, Any] | None = None) -> dict:
        repo = self.repos[full_name.lower()]
        return self._new_comment(repo, number, body, user or {"login": "student", "id": 7, "type": "User"})

    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        return self.repos[full_name.lower()].issues[number]

    def check_runs(self, full_name: str) -> list[dict[str, Any]]:
        return list(self.repos[full_name.lower()].check_runs.values())

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PATCH") and r.status < 300]

    # -- the API ----------------------------------------------------------------------------------------

    def _new_comment(self, repo: Repo, number: int, body: str, user: dict[str, Any]) -> dict[str, Any]:
        cid = next(self._ids)
        now = _now()
        comment = {
            "id": cid, "node_id": f"IC_{cid}", "body": body, "user": user, "created_at": now, "updated_at": now,
            "url": f"{self.url}/repos/{repo.full_name}/issues/comments/{cid}",
            "html_url": f"https://github.example/{repo.full_name}/pull/{number}#issuecomment-{cid}",
            "issue_url": f"{self.url}/repos/{repo.full_name}/issues/{number}", "author_association": "NONE",
        }  # fmt: skip
        repo.issues[number].append(comment)
        return comment

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict]:
        """Check the request against the contract and serve it: (status, JSON body, extra headers)."""
        if not headers.get("user-agent"):
            raise ApiError(403, "Request forbidden by administrative rules. Please make sure your request has a "
                                "User-Agent header")  # fmt: skip
        version = headers.get("x-github-api-version")
        if version not in API_VERSIONS:
            raise ApiError(400, f"API version '{version}' is not supported." if version else
                           "X-GitHub-Api-Version is required by this server's contract")  # fmt: skip
        if "application/vnd.github+json" not in headers.get("accept", ""):
            raise ApiError(415, "Unsupported 'Accept' header: expected application/vnd.github+json")
        auth = headers.get("authorization", "")
        m = re.fullmatch(r"(?:Bearer|token) (\S+)", auth)
        if not auth:
            raise ApiError(401, "Requires authentication")
        if not m or m.group(1) not in self.tokens:
            raise ApiError(401, "Bad credentials")
        token = self.tokens[m.group(1)]
        url = urllib.parse.urlsplit(raw_path)
        query = urllib.parse.parse_qs(url.query)
        body = None
        if method in ("POST", "PATCH"):
            try:
                body = json.loads(raw or b"")
            except ValueError:
                raise ApiError(400, "Problems parsing JSON") from None
            if not isinstance(body, dict):
                raise ApiError(400, "Problems parsing JSON")
        return self._route(method, url.path, query, body, token)

    def _repo(self, owner_repo: str | None = None, repo_id: str | None = None) -> Repo:
        for repo in self.repos.values():
            if (owner_repo and repo.full_name.lower() == owner_repo.lower()) or (repo_id and str(repo.id) == repo_id):
                return repo
        raise ApiError(404, "Not Found")

    def _route(self, method: str, path: str, query: dict, body: Any, token: Token) -> tuple[int, Any, dict]:
        m = re.fullmatch(r"/(?:repos/(?P<full>[^/]+/[^/]+)|repositories/(?P<rid>\d+))(?P<rest>/.*)", path)
        if not m:
            raise ApiError(404, "Not Found")
        repo = self._repo(m["full"], m["rid"])
        rest = m["rest"]
        if r := re.fullmatch(r"/issues/(\d+)/comments", rest):
            number = int(r.group(1))
            if number not in repo.issues:
                raise ApiError(404, "Not Found")
            if method == "GET":
                return self._page(repo, rest, repo.issues[number], query)
            if method == "POST":
                self._need(token, "issues", "pull_requests")
                text = self._comment_body(body)
                c = self._new_comment(repo, number, text, token.user)
                return 201, c, {"Location": c["url"]}
        if (r := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            self._need(token, "issues", "pull_requests")
            found = [c for cs in repo.issues.values() for c in cs if c["id"] == int(r.group(1))]
            if not found:
                raise ApiError(404, "Not Found")
            found[0]["body"] = self._comment_body(body)
            found[0]["updated_at"] = _now()
            return 200, found[0], {}
        if rest == "/check-runs" and method == "POST":
            self._need(token, "checks")
            return 201, self._create_run(repo, body), {}
        if (r := re.fullmatch(r"/check-runs/(\d+)", rest)) and method == "PATCH":
            self._need(token, "checks")
            run = repo.check_runs.get(int(r.group(1)))
            if run is None:
                raise ApiError(404, "Not Found")
            return 200, self._update_run(run, body), {}
        raise ApiError(404, "Not Found")

    @staticmethod
    def _need(token: Token, *scopes: str) -> None:
        if not any(token.permissions.get(s) == "write" for s in scopes):
            raise ApiError(403, "Resource not accessible by integration")

    @staticmethod
    def _comment_body(body: dict) -> str:
        if "body" not in body:
            raise ApiError(422, "Invalid request.\n\n\"body\" wasn't supplied.")
        if not isinstance(body["body"], str):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/body', it is not a string.")
        if len(body["body"]) > 65536:
            raise ApiError(422, "Validation Failed", [{"resource": "IssueComment", "code": "custom", "field": "body",
                                                       "message": "body is too long (maximum is 65536 characters)"}])
        return body["body"]

    def _page(self, repo: Repo, rest: str, items: list, query: dict) -> tuple[int, Any, dict]:
        try:
            per_page = min(int(query.get("per_page", ["30"])[0]), 100)
            page = int(query.get("page", ["1"])[0])
        except ValueError:
            raise ApiError(422, "Invalid request.\n\nper_page and page must be integers.") from None
        per_page, page = max(per_page, 1), max(page, 1)
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(p: int, rel: str) -> str:
            return f'<{self.url}/repositories/{repo.id}{rest}?per_page={per_page}&page={p}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        chunk = items[(page - 1) * per_page : page * per_page]
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})

    def _validate_output(self, output: Any, required_title: bool = True) -> list[dict[str, Any]]:
        if not isinstance(output, dict):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/output', it is not an object.")
        for key in ("title", "summary") if required_title else ("summary",):
            if not isinstance(output.get(key), str):
                raise ApiError(422, f"Invalid request.\n\n\"{key}\" wasn't supplied.")
        for key in ("summary", "text"):
            if len(output.get(key) or "") > 65535:
                raise ApiError(422, "Invalid request.\n\nOnly 65535 characters are allowed; "
                                    f"{len(output[key])} were supplied.")  # fmt: skip
        annotations = output.get("annotations", [])
        if not isinstance(annotations, list):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/annotations', it is not an array.")
        if len(annotations) > 50:
            raise ApiError(422, "Invalid request.\n\nOnly 50 annotations are allowed per request; "
                                f"{len(annotations)} were supplied.")  # fmt: skip
        for a in annotations:
            missing = [k for k in ("path", "start_line", "end_line", "annotation_level", "message") if k not in a]
            if missing:
                raise ApiError(422, f"Invalid request.\n\n\"{missing[0]}\" wasn't supplied.")
            if a["annotation_level"] not in LEVELS:
                raise ApiError(422, f"Invalid request.\n\nFor 'properties/annotation_level', "
                                    f"\"{a['annotation_level']}\" is not a valid value.")  # fmt: skip
            if not (isinstance(a["start_line"], int) and isinstance(a["end_line"], int) and 1 <= a["start_line"]
                    <= a["end_line"]):  # fmt: skip
                raise ApiError(422, "Invalid request.\n\nstart_line and end_line must be lines, in order.")
            if ("start_column" in a or "end_column" in a) and a["start_line"] != a["end_line"]:
                raise ApiError(422, "Invalid request.\n\ncolumns are only allowed when start_line equals end_line.")
            if not isinstance(a["path"], str) or not a["path"] or a["path"].startswith("/"):
                raise ApiError(422, "Invalid request.\n\npath must be relative to the repository root.")
        return annotations

    def _status(self, body: dict, run: dict[str, Any]) -> None:
        status, conclusion = body.get("status", run.get("status", "queued")), body.get("conclusion")
        if status not in CHECK_STATUS:
            raise ApiError(422, f"Invalid request.\n\nFor 'properties/status', \"{status}\" is not a valid value.")
        if conclusion is not None and conclusion not in CONCLUSIONS:
            raise ApiError(422, f"Invalid request.\n\nFor 'properties/conclusion', \"{conclusion}\" is not valid.")
        if status == "completed" and conclusion is None and run.get("conclusion") is None:
            raise ApiError(422, "Invalid request.\n\nNo conclusion provided for a completed check run.")
        run["status"] = "completed" if conclusion else status
        if conclusion:
            run["conclusion"] = conclusion

    def _create_run(self, repo: Repo, body: dict) -> dict[str, Any]:
        for key in ("name", "head_sha"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise ApiError(422, f"Invalid request.\n\n\"{key}\" wasn't supplied.")
        if not SHA.match(body["head_sha"]) or body["head_sha"] not in repo.commits:
            raise ApiError(422, "Validation Failed", [{"resource": "CheckRun", "code": "invalid", "field": "head_sha",
                                                       "message": f"No commit found for SHA: {body['head_sha']}"}])
        run: dict[str, Any] = {"id": next(self._ids), "name": body["name"], "head_sha": body["head_sha"],
                               "conclusion": None, "annotations": [], "output": {}}  # fmt: skip
        self._status(body, run)
        if "output" in body:
            run["annotations"] += self._validate_output(body["output"])
            run["output"] = {k: v for k, v in body["output"].items() if k != "annotations"}
        run["html_url"] = f"https://github.example/{repo.full_name}/runs/{run['id']}"
        repo.check_runs[run["id"]] = run
        return self._run_json(repo, run)

    def _update_run(self, run: dict[str, Any], body: dict) -> dict[str, Any]:
        self._status(body, run)
        if "output" in body:
            run["annotations"] += self._validate_output(body["output"])
            run["output"] = {k: v for k, v in body["output"].items() if k != "annotations"}
        return self._run_json(None, run)

    def _run_json(self, repo: Repo | None, run: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in run.items() if k != "annotations"}
        out["output"] = {**run["output"], "annotations_count": len(run["annotations"])}
        return out


def _handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # keep pytest's output clean

        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with gh._lock:
                fault = gh.faults.pop(0) if gh.faults else None
            if fault == "drop":
                gh.requests.append(Recorded(self.command, self.path, 0))
                self.close_connection = True
                self.connection.shutdown(2)  # no answer at all: the client sees a dropped connection
                return
            if fault == "redirect":  # a 307 to another origin: a client must not resend its token there
                gh.requests.append(Recorded(self.command, self.path, 307))
                self.send_response(307)
                self.send_header("Location", gh.redirect_to + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            try:
                if isinstance(fault, int):
                    raise ApiError(fault, "Server Error" if fault >= 500 else "injected")
                if fault == "echo-auth":  # a misbehaving proxy that puts the credentials in its error
                    raise ApiError(502, f"upstream refused {headers.get('authorization', '')}")
                with gh._lock:
                    status, data, extra = gh.handle(self.command, self.path, headers, raw)
            except ApiError as exc:
                status, extra = exc.status, {}
                data = {"message": exc.message, "documentation_url": DOCS, "status": str(exc.status)}
                if exc.errors:
                    data["errors"] = exc.errors
            gh.requests.append(Recorded(self.command, self.path, status, raw.decode("utf-8", "replace") or None))
            payload = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler
