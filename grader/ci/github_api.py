"""A small GitHub REST client on urllib: issue comments and check runs, with pagination, retries, and a token
that never reaches a log.

Every error message that leaves this module goes through `redact`, which replaces the token (wherever a
server or a proxy might echo it) with `***`. Requests never follow redirects, so the Authorization header is
never replayed to another host, and pagination follows only `Link` URLs on the API's own origin.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from grader import __version__

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
PER_PAGE = 100  # GitHub's maximum
MAX_ANNOTATIONS = 50  # per check-run request: the API's limit; more go in follow-up updates
LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class GitHubError(Exception):
    """A request failed. `status` is the HTTP status, or None when no response came (network error)."""

    def __init__(self, status: int | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # seconds, from a Retry-After header

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


class User(BaseModel):
    model_config = ConfigDict(extra="ignore")
    login: str = ""
    type: str = ""


class IssueComment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    body: str = ""
    user: User | None = None
    html_url: str = ""


class CheckRun(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    html_url: str = ""


@dataclass
class Response:
    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn a redirect into an error instead of resending the Authorization header to its target."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None


class GitHubClient:
    """`api_url` is $GITHUB_API_URL (https://api.github.com, or a GitHub Enterprise Server's /api/v3)."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        attempts: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"GitHubClient({self.api_url!r}, token=***)"

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    # -- transport ---------------------------------------------------------------------------------------

    def _url(self, path_or_url: str, params: dict[str, Any] | None) -> str:
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.api_url + path_or_url
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _once(self, method: str, url: str, body: bytes | None) -> Response:
        headers = {
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": f"torch-grader/{__version__}",  # GitHub refuses requests without one
            "Authorization": f"Bearer {self._token}",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        where = f"{method} {urllib.parse.urlsplit(url).path}"
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
                return Response(resp.status, json.loads(raw) if raw else None, dict(resp.headers.items()))
        except urllib.error.HTTPError as exc:
            raw = exc.read() or b""
            try:
                payload = json.loads(raw)
                detail = str(payload.get("message", "")) if isinstance(payload, dict) else ""
            except ValueError:
                detail = raw[:200].decode("utf-8", "replace")
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise GitHubError(exc.code, self.redact(f"{where}: HTTP {exc.code} {detail}".strip()), wait) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            why = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            raise GitHubError(None, self.redact(f"{where}: no usable answer ({why})")) from None

    def request(
        self, method: str, path_or_url: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Response:
        """One API call, retried with exponential backoff on network errors, 5xx and 429."""
        url = self._url(path_or_url, params)
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(self.attempts):
            try:
                return self._once(method, url, data)
            except GitHubError as exc:
                if not exc.retryable or attempt == self.attempts - 1:
                    raise
                wait = exc.retry_after or self.backoff_s * 2**attempt
                self._sleep(min(wait, 30.0))
        raise AssertionError("unreachable")

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following the `Link: <...>; rel="next"` header page by page."""
        url: str | None = self._url(path, {"per_page": PER_PAGE, **(params or {})})
        origin = urllib.parse.urlsplit(self.api_url)[:2]
        while url:
            resp = self.request("GET", url)
            if not isinstance(resp.data, list):
                raise GitHubError(resp.status, f"GET {path}: expected a JSON list")
            yield from resp.data
            nxt = {rel: link for link, rel in LINK.findall(resp.headers.get("Link", ""))}.get("next")
            if nxt and urllib.parse.urlsplit(nxt)[:2] != origin:
                raise GitHubError(resp.status, f"GET {path}: the next page is on another host; not following it")
            url = nxt

    # -- endpoints ---------------------------------------------------------------------------------------

    def list_issue_comments(self, repo: str, number: int) -> list[IssueComment]:
        return [IssueComment.model_validate(c) for c in self.paginate(f"/repos/{repo}/issues/{number}/comments")]

    def create_issue_comment(self, repo: str, number: int, body: str) -> IssueComment:
        resp = self.request("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
        return IssueComment.model_validate(resp.data)

    def update_issue_comment(self, repo: str, comment_id: int, body: str) -> IssueComment:
        resp = self.request("PATCH", f"/repos/{repo}/issues/comments/{comment_id}", {"body": body})
        return IssueComment.model_validate(resp.data)

    def create_check_run(self, repo: str, payload: dict[str, Any]) -> CheckRun:
        return CheckRun.model_validate(self.request("POST", f"/repos/{repo}/check-runs", payload).data)

    def update_check_run(self, repo: str, run_id: int, payload: dict[str, Any]) -> CheckRun:
        return CheckRun.model_validate(self.request("PATCH", f"/repos/{repo}/check-runs/{run_id}", payload).data)

    # -- what `grader ci github` does with them -----------------------------------------------------------

    def upsert_comment(self, repo: str, number: int, marker: str, body: str) -> tuple[str, IssueComment]:
        """Update the bot comment that starts with `marker`, or create it: one comment per PR, edited per push.

        Only comments by a bot account count, so a student who pastes the marker cannot capture the report."""
        ours = [
            c for c in self.list_issue_comments(repo, number)
            if c.body.lstrip().startswith(marker) and c.user is not None and c.user.type == "Bot"
        ]  # fmt: skip
        if ours:
            return "updated", self.update_issue_comment(repo, ours[-1].id, body)
        return "created", self.create_issue_comment(repo, number, body)

    def publish_check_run(
        self, repo: str, head: dict[str, Any], output: dict[str, Any], annotations: list[dict[str, Any]]
    ) -> CheckRun:
        """Create a completed check run; annotations past the first 50 go in updates of 50 (the API's limit)."""
        chunks = [annotations[i : i + MAX_ANNOTATIONS] for i in range(0, len(annotations), MAX_ANNOTATIONS)] or [[]]
        run = self.create_check_run(repo, {**head, "output": {**output, "annotations": chunks[0]}})
        for chunk in chunks[1:]:
            self.update_check_run(repo, run.id, {"output": {**output, "annotations": chunk}})
        return run
