"""Headless Chromium for the HTML report tests: the rendered DOM (`--dump-dom`) and screenshots, by subprocess.

No driver protocol and no Python dependency: the browser is Debian's `chromium` (scripts/ci-browser.sh installs
it). The `chromium` fixture (import `chromium_fixture` into a test module) skips when no browser is installed,
unless GRADER_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test instead of silently skipping it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 60.0
# --no-sandbox: the tests run as root in CI, where Chromium refuses its own sandbox. The page is our report on a
# file:// URL with a CSP that forbids scripts, so nothing untrusted runs in the browser.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """The first Chromium-family browser on PATH."""
    for name in NAMES:
        if path := shutil.which(name):
            return path
    return None


class BrowserError(RuntimeError):
    """Chromium failed, hung or produced nothing; the message holds the tail of its stderr."""


def _run(binary: str, args: list[str], profile_root: Path, timeout: float) -> str:
    """Run the browser once with a fresh profile, in its own process group so a hang can be killed whole."""
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=profile_root))
    cmd = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise BrowserError(f"{' '.join(cmd)}: no answer in {timeout:.0f} s") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise BrowserError(f"{' '.join(cmd)}: exit {proc.returncode}\n{err[-3000:]}")
    return out


def dump_dom(html_path: Path, binary: str | None = None, profile_root: Path | None = None) -> str:
    """The DOM after Chromium parsed and laid out the page, serialized: what a reader's browser really built."""
    binary = binary or find_chromium()
    if binary is None:
        raise BrowserError(f"no browser: none of {', '.join(NAMES)} is on PATH")
    root = profile_root or Path(tempfile.gettempdir())
    return _run(binary, ["--dump-dom", Path(html_path).resolve().as_uri()], root, TIMEOUT_S)


def screenshot(
    html_path: Path,
    png_path: Path,
    width: int = 1280,
    height: int = 1600,
    binary: str | None = None,
    profile_root: Path | None = None,
) -> Path:
    """A PNG of the page's first `height` pixels in a `width`-wide window."""
    binary = binary or find_chromium()
    if binary is None:
        raise BrowserError(f"no browser: none of {', '.join(NAMES)} is on PATH")
    png_path = Path(png_path).resolve()
    png_path.unlink(missing_ok=True)
    root = profile_root or Path(tempfile.gettempdir())
    args = [f"--screenshot={png_path}", f"--window-size={width},{height}", "--hide-scrollbars"]
    _run(binary, [*args, Path(html_path).resolve().as_uri()], root, TIMEOUT_S)
    if not png_path.is_file():
        raise BrowserError(f"chromium wrote no screenshot at {png_path}")
    return png_path


@dataclass
class Chromium:
    """A located browser whose throwaway profiles live under one test's tmp_path."""

    binary: str
    scratch: Path
    _version: str = field(default="", repr=False)

    def dump_dom(self, html_path: Path) -> str:
        return dump_dom(html_path, self.binary, self.scratch)

    def screenshot(self, html_path: Path, png_path: Path, width: int = 1280, height: int = 1600) -> Path:
        return screenshot(html_path, png_path, width, height, self.binary, self.scratch)

    def version(self) -> str:
        if not self._version:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=30)
            self._version = out.stdout.strip()
        return self._version


def require_chromium(scratch: Path) -> Chromium:
    """The browser, or a skip saying how to get it; a failure instead where GRADER_REQUIRE_BROWSER=1."""
    binary = find_chromium()
    if binary is None:
        reason = f"no headless browser: none of {', '.join(NAMES)} on PATH; run scripts/ci-browser.sh (as root)"
        if os.environ.get("GRADER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GRADER_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    scratch.mkdir(parents=True, exist_ok=True)
    return Chromium(binary, scratch)


@pytest.fixture(name="chromium")
def chromium_fixture(tmp_path: Path) -> Chromium:
    """Headless Chromium with throwaway profiles under this test's tmp_path (see `require_chromium`)."""
    return require_chromium(tmp_path / "chromium")
