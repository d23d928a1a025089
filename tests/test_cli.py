"""The `grader` command as a user runs it: a real subprocess, real exit codes, real files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import __version__

ROOT = Path(__file__).resolve().parent.parent


def cli_env(tmp: Path | None = None) -> dict[str, str]:
    """A bare environment for the `grader` command; `tmp`: its TMPDIR, to be checked for leftovers."""
    return {"PATH": "/usr/bin:/bin", "COLUMNS": "200", **({"TMPDIR": str(tmp)} if tmp else {})}


def grader(*args: str, cwd: Path = ROOT, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "grader.cli", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=cli_env(tmp))


def assert_nothing_left(tmp: Path) -> None:
    """No process of the command's (they all run with `tmp` in their command lines) and no folder in `tmp`."""
    left = subprocess.run(["pgrep", "-f", str(tmp)], capture_output=True, text=True)
    assert left.stdout == "", "contestant processes outlived the command"
    assert list(tmp.iterdir()) == [], "sandbox or judge folders were left behind"


def test_help_and_version():
    helped = grader("--help")
    assert helped.returncode == 0
    for command in ("check", "grade", "release", "validate", "demo", "assets"):
        assert command in helped.stdout
    assert grader("--version").stdout.strip() == f"grader {__version__}"


@pytest.mark.slow
def test_student_check(tmp_path):
    ok = grader("check", "exp1", "examples/exp1/solution", tmp=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "score: 65 / 65" in ok.stdout
    assert list(tmp_path.iterdir()) == [], "the sandbox's, the judge's or the graph runner's folder was left behind"
    assert "num_train_samples_unchanged" not in ok.stdout  # hidden checks are not run for students
    bad = grader("check", "exp1", "examples/exp1/wrong-output-shape")
    assert bad.returncode == 1
    assert "returned shape (64,); expected (64, 1)" in bad.stdout


@pytest.mark.slow
def test_instructor_grade_writes_reports(tmp_path):
    out = tmp_path / "out"
    run = grader("grade", "exp1", "examples/exp1/lr-too-high", "--out", str(out))
    assert run.returncode == 0, run.stderr
    ours = json.loads((out / "results.json").read_text())
    gradescope = json.loads((out / "gradescope" / "results.json").read_text())
    assert ours["score"] == gradescope["score"] == 50
    assert len(gradescope["tests"]) == 6
    assert (out / "results.schema.json").is_file()
    assert "# exp1: 50 / 100" in (out / "report.md").read_text()


@pytest.mark.slow
def test_a_zipped_folder_grades_as_the_folder_does(tmp_path):
    """Students zip their folder (often with the folder itself and macOS junk inside): the zip is graded as the
    folder is, the reports name the zip, and nothing unpacked is left behind."""
    import zipfile

    sub = tmp_path / "zhang_san_exp1.zip"
    with zipfile.ZipFile(sub, "w") as zf:
        for f in (ROOT / "examples/exp1/lr-too-high").iterdir():
            zf.write(f, f"exp1_zhangsan/{f.name}")
        zf.writestr("__MACOSX/exp1_zhangsan/._exp1.py", b"\0\5\x16\7")
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    run = grader("grade", "exp1", str(sub), "--out", str(out), tmp=tmp)
    assert run.returncode == 0, run.stderr
    result = json.loads((out / "results.json").read_text())
    assert result["score"] == 50 and result["submission"] == str(sub)  # as the folder, in the test above
    assert_nothing_left(tmp)


def test_a_bad_zip_is_refused_before_anything_starts(tmp_path):
    import zipfile

    damaged = tmp_path / "exp1.zip"
    damaged.write_bytes(b"PK\3\4 this is not a zip")
    run = grader("check", "exp1", str(damaged), tmp=tmp_path)
    assert run.returncode == 2 and "not a readable zip" in run.stderr and "zip your folder again" in run.stderr
    escaping = tmp_path / "escape.zip"
    with zipfile.ZipFile(escaping, "w") as zf:
        zf.writestr("../exp1.py", "print('hi')\n")
    run = grader("grade", "exp1", str(escaping), "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and "refused (entry" in run.stderr and "points outside the archive" in run.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "exp1.py").exists()
    watched = grader("check", "exp1", str(escaping), "--watch")
    assert watched.returncode == 2 and "--watch needs a folder" in watched.stderr
    notes = tmp_path / "notes.txt"
    notes.write_text("my answers")
    run = grader("check", "exp1", str(notes))
    assert run.returncode == 2 and "neither a folder nor a .zip" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["escape.zip", "exp1.zip", "notes.txt"]


def test_bad_input_is_explained(tmp_path):
    missing = grader("check", "exp1", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "command line" in missing.stderr and "submission" in missing.stderr
    unknown = grader("check", "exp9", str(tmp_path))
    assert unknown.returncode == 2 and "unknown assignment 'exp9'" in unknown.stderr


def test_invalid_spec_names_file_and_field(tmp_path):
    course = tmp_path / "course"
    (course / "assignments" / "exp1").mkdir(parents=True)
    (course / "solutions").mkdir()
    text = (ROOT / "assignments/exp1/assignment.toml").read_text().replace("points = 25", "points = -25", 1)
    (course / "assignments/exp1/assignment.toml").write_text(text)
    run = grader("validate", "--course", str(course))
    assert run.returncode == 2  # an author's mistake
    assert "assignments/exp1/assignment.toml" in run.stderr and "checks.model_fits_target.points" in run.stderr


def test_release_check_passes_on_committed_stubs():
    run = grader("release", "exp1", "--check")
    assert run.returncode == 0 and "up to date" in run.stdout


def _docker_skip() -> str | None:
    try:
        from tests.test_sandbox_docker import SKIP
    except pytest.skip.Exception as exc:  # the docker package is not installed
        return str(exc)
    return SKIP


@pytest.mark.slow
@pytest.mark.parametrize(("command", "sig"), [("check", signal.SIGINT), ("grade", signal.SIGINT),
                                              ("check --sandbox docker", signal.SIGINT), ("check", signal.SIGTERM)],
                         ids=["check", "grade", "check-docker", "check-sigterm"])  # fmt: skip
def test_ctrl_c_while_the_checks_run_grades_nothing_and_leaves_nothing(command, sig, example, tmp_path):
    """Ctrl-C during a slow check used to be taken by pytest for the end of the session: every check left was
    printed as failed ("this check did not run") and the command went on as if graded (a `--watch` went on
    watching). SIGTERM (a cancelled CI job) used to kill it on the spot, leaving its folders in TMPDIR."""
    if "docker" in command and (why := _docker_skip()):
        pytest.skip(why)
    sub = example("exp1", "solution")
    code = sub / "exp1.py"
    start = "    optimizer = torch.optim.Adam("
    slow = code.read_text().replace(start, "    time.sleep(300)  # a training loop that takes too long\n" + start)
    assert "time.sleep(300)" in slow
    code.write_text("import time\n" + slow)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    env = cli_env(tmp)
    name, *extra = command.split()
    extra += ["--out", str(out)] if name == "grade" else []
    proc = subprocess.Popen([sys.executable, "-m", "grader.cli", name, "exp1", str(sub), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    time.sleep(15)  # a one-shot run reaches the checks in about 5 s; training_lowers_mse then sleeps in train()
    assert proc.poll() is None, proc.communicate()[0]
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # what a terminal's Ctrl-C does
    else:
        proc.send_signal(sig)  # what `timeout` or a CI runner does
    printed = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + sig and "interrupted: nothing was graded" in printed, printed
    assert "score:" not in printed and "did not run" not in printed and not out.exists()
    assert_nothing_left(tmp)
    if "docker" in command:
        from grader.sandbox.docker import LABEL

        ps = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL}={proc.pid}"], capture_output=True,
                            text=True, check=True)  # fmt: skip
        assert ps.stdout == "", "containers outlived the command"


@pytest.mark.slow
def test_check_watch_rechecks_each_save_and_stops_on_ctrl_c(example, tmp_path):
    """A student fixes their bug with `grader check --watch` running: each save is checked again, in a fresh
    contestant, and Ctrl-C in the middle of a check ends the watch with nothing left running."""
    sub = example("exp1", "wrong-output-shape")
    tmp = tmp_path / "tmp"  # the sandbox's and the judge's scratch folders go here, to be checked afterwards
    tmp.mkdir()
    log = tmp_path / "out.txt"
    env = cli_env(tmp)
    with log.open("w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "grader.cli", "check", "exp1", str(sub), "--watch"], cwd=ROOT,
                                stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip

    def scores(count: int) -> list[str]:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.findall(r"score: (\S+ / \S+)", log.read_text())
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no result {count} (exit code {proc.poll()}):\n{log.read_text()}")

    try:
        first = scores(1)[0]
        assert "returned shape (64,); expected (64, 1)" in log.read_text()
        code = sub / "exp1.py"
        fixed = code.read_text().replace("return self.net(x).squeeze()", "return self.net(x)")
        assert fixed != code.read_text()
        code.write_text(fixed)  # the student's fix, saved
        second = scores(2)[1]
        after = log.read_text().split("changed: checking again")[1]
        assert second != first and "returned shape" not in after
        assert re.search(r"mlp_output_shape +│ +10/10 +│ passed", after), after
        (sub / "notes.txt").write_text("a file the assignment does not ask for")  # any save in the folder counts
        deadline = time.monotonic() + 60
        while log.read_text().count("changed: checking again") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(scores(2)) == 2, "Ctrl-C comes while the third check runs"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        proc.wait(timeout=60)
    assert proc.returncode == 130 and "stopped watching" in log.read_text()
    assert_nothing_left(tmp)
