"""`grader batch` end to end: real workers, real sandboxes, real checks, on the bundled examples."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.test_exp1_e2e import EXPECTED

ROOT = Path(__file__).resolve().parent.parent
GRADER = [sys.executable, "-m", "grader.cli"]
pytestmark = pytest.mark.slow


def batch(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*GRADER, "batch", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GRADER_SANDBOX": "local", "COLUMNS": "200", **(env or {})})  # fmt: skip


def exp1_class(tmp_path: Path, names=tuple(EXPECTED)) -> Path:
    """A class folder: one folder per bundled exp1 example, plus one zipped and one unreadable zip."""
    subs = tmp_path / "class"
    subs.mkdir()
    for name in names:
        shutil.copytree(ROOT / "examples" / "exp1" / name, subs / name)
    return subs


def gradebook(out: Path) -> dict[str, dict[str, str]]:
    with (out / "gradebook.csv").open(encoding="utf-8") as f:
        return {row["student_id"]: row for row in csv.DictReader(f)}


def test_chunks_shrink_towards_the_end_so_that_workers_finish_together():
    from grader.batch.runner import split

    tasks = [(f"s{i:03d}", f"/subs/s{i:03d}") for i in range(100)]
    chunks = split(tasks, 8, 2)
    assert [t for c in chunks for t in c] == tasks  # each once, in order
    sizes = [len(c) for c in chunks]
    assert max(sizes) == 8 and sizes == sorted(sizes, reverse=True) and sizes[-4:] == [1, 1, 1, 1]
    assert [len(c) for c in split(tasks[:8], 8, 2)] == [2, 2, 1, 1, 1, 1]  # not all 8 to one worker
    assert [len(c) for c in split(tasks[:20], 8, 1)] == [8, 8, 4]  # one worker: nothing to balance


def test_class_is_graded_exported_and_resumed(tmp_path):
    subs = exp1_class(tmp_path)
    shutil.move(subs / "lr-too-high", tmp_path / "lr")
    with zipfile.ZipFile(subs / "lr-too-high.zip", "w") as zf:  # the same student, as a zip
        for p in (tmp_path / "lr").iterdir():
            zf.write(p, f"lr-too-high/{p.name}")
    (subs / "corrupt.zip").write_bytes(b"PK\x03\x04 truncated")
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\n" + "".join(f"{n},Student {n}\n" for n in EXPECTED) + "absent,Never Submitted\n")
    out = tmp_path / "out"

    r = batch("exp1", str(subs), "--out", str(out), "--roster", str(roster), "-j", "2", "--chunk", "2")
    assert r.returncode == 0, r.stderr
    book = gradebook(out)
    assert set(book) == {*EXPECTED, "absent"}
    for name, checks in EXPECTED.items():  # the same scores as grading each one alone
        assert {c: float(book[name][c]) for c in checks} == {c: float(v) for c, v in checks.items()}, name
        assert float(book[name]["auto_score"]) == sum(checks.values())
        assert book[name]["status"] == "graded"
        student = out / "students" / name
        for f in ("report.html", "report.md", "results.json", "gradescope/results.json", "report.student.md"):
            assert (student / f).is_file(), f
        assert json.loads((student / "results.json").read_text())["student"] == name
    assert book["absent"]["status"] == "missing" and float(book["absent"]["total"]) == 0
    assert "corrupt.zip: not a readable zip" in r.stderr
    report = json.loads((out / "batch.json").read_text())
    assert report["graded_now"] == 5 and report["missing"] == 1 and report["skipped_unchanged"] == 0
    assert (out / "rubric.csv").read_text().splitlines()[0] == "student_id,report,report_comment"
    assert "Never Submitted" in (out / "summary.html").read_text()

    # The instructor fills in the rubric; a rerun grades nothing again and merges the manual scores.
    rows = (out / "rubric.csv").read_text().splitlines()
    filled = [rows[0]] + [f"{line.split(',')[0]},15,clear table" if line.startswith("solution") else line
                          for line in rows[1:]]  # fmt: skip
    (out / "rubric.csv").write_text("\n".join(filled) + "\n")
    (subs / "stub" / "exp1.py").write_text((subs / "stub" / "exp1.py").read_text() + "\n# edited\n")
    r = batch("exp1", str(subs), "--out", str(out), "--roster", str(roster))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "batch.json").read_text())
    assert (report["graded_now"], report["skipped_unchanged"]) == (1, 4)  # only the edited submission
    book = gradebook(out)
    assert float(book["solution"]["report"]) == 15 and float(book["solution"]["total"]) == 115
    assert float(book["stub"]["total"]) == 0 and book["stub"]["report"] == ""


def test_late_policy_from_gradescope_times(tmp_path):
    """Gradescope's created_at drives the late penalty: 2 days late costs 20% of the earned total."""
    meta = ("submission_1:\n  :submitters:\n  - :name: On Time\n    :sid: 'ontime'\n"
            "  :created_at: 2026-10-11 23:50:00 +08:00\n"
            "submission_2:\n  :submitters:\n  - :name: Late\n    :sid: 'late'\n"
            "  :created_at: 2026-10-13 10:00:00 +08:00\n")  # fmt: skip
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as zf:
        zf.writestr("submission_metadata.yml", meta)
        for sub in ("submission_1", "submission_2"):
            for p in (ROOT / "examples" / "exp1" / "solution").iterdir():
                zf.write(p, f"{sub}/{p.name}")
    out = tmp_path / "out"
    r = batch("exp1", str(export), "--out", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    book = gradebook(out)
    assert float(book["ontime"]["total"]) == 100 and float(book["ontime"]["late_days"]) == 0
    assert float(book["late"]["late_days"]) == 2 and float(book["late"]["total"]) == 80
    result = json.loads((out / "students" / "late" / "results.json").read_text())
    assert result["adjustments"]["late"]["submitted_at_source"] == "Gradescope metadata"
    assert "2 days" in (out / "students" / "late" / "report.html").read_text()


def test_ctrl_c_stops_cleanly_and_the_rerun_resumes(tmp_path):
    subs = exp1_class(tmp_path)
    out = tmp_path / "out"
    cmd = [*GRADER, "batch", "exp1", str(subs), "--out", str(out), "-j", "1", "--chunk", "1"]
    tmp = tmp_path / "tmp"  # the sandboxes' and the judge's scratch folders go here, to be checked afterwards
    tmp.mkdir()
    env = {**os.environ, "GRADER_SANDBOX": "local", "TMPDIR": str(tmp)}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list((out / ".state").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # the next submission is now being graded
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted: run the same command again" in stderr
    done = len(list((out / ".state").glob("*.json")))
    assert 1 <= done < len(EXPECTED)
    left = subprocess.run(["pgrep", "-f", str(tmp)], capture_output=True, text=True)
    assert left.stdout == "", "contestant processes outlived the batch"
    assert list(tmp.iterdir()) == [], "sandbox or judge folders were left behind"

    r = batch("exp1", str(subs), "--out", str(out), "-j", "2")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "batch.json").read_text())
    assert report["skipped_unchanged"] == done and report["graded_now"] == len(EXPECTED) - done
    book = gradebook(out)
    assert {n: float(book[n]["auto_score"]) for n in EXPECTED} == {n: sum(c.values()) for n, c in EXPECTED.items()}


def test_a_dying_judge_costs_one_submission(course_copy, tmp_path):
    """A worker that dies mid-grade (here: a hidden check that kills its own process for one submission) marks
    that submission crashed, and a fresh worker grades the rest."""
    c = course_copy("exp1")
    hidden = c.solution_dir("exp1") / "hidden_checks" / "test_exp1_hidden.py"
    hidden.write_text(hidden.read_text().replace(
        "def test_num_train_samples_unchanged(contestant, submission):",
        "def test_num_train_samples_unchanged(contestant, submission):\n"
        "    import os\n"
        "    if 'KILL-THE-JUDGE' in submission.path('exp1.py').read_text():\n"
        "        os._exit(9)\n",
    ))  # fmt: skip
    subs = exp1_class(tmp_path, names=("solution", "stub", "lr-too-high"))
    (subs / "stub" / "exp1.py").write_text((subs / "stub" / "exp1.py").read_text() + "\n# KILL-THE-JUDGE\n")
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), "-j", "1", "--chunk", "3",
              env={"TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", str(tmp)], capture_output=True, text=True)
    assert left.stdout == "", "the dead judge's contestant outlived it"
    book = gradebook(out)
    assert book["stub"]["status"] == "crashed"
    assert "the grading worker died (exit code 9)" in book["stub"]["problems"]
    assert float(book["solution"]["auto_score"]) == 100 and float(book["lr-too-high"]["auto_score"]) == 50


def test_a_grader_side_error_is_retried_on_the_next_run(course_copy, tmp_path):
    """A check the grading machine could not run (status error) is not kept by the resume: the rerun grades it."""
    c = course_copy("exp1")
    hidden = c.solution_dir("exp1") / "hidden_checks" / "test_exp1_hidden.py"
    hidden.write_text(hidden.read_text().replace(
        "def test_num_train_samples_unchanged(contestant, submission):",
        "def test_num_train_samples_unchanged(contestant, submission):\n"
        "    import os\n"
        "    if os.environ.get('BREAK_THE_GRADER'):\n"
        "        raise RuntimeError('the grading machine broke')\n",
    ))  # fmt: skip
    subs = exp1_class(tmp_path, names=("solution",))
    out = tmp_path / "out"
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), env={"BREAK_THE_GRADER": "1"})
    assert r.returncode == 2, r.stderr  # said, and nothing uploaded: the student's total is left empty
    row = gradebook(out)["solution"]
    assert (row["num_train_samples_unchanged"], row["status"], row["total"]) == ("0", "grader-error", "")
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "batch.json").read_text())
    assert (report["graded_now"], report["skipped_unchanged"]) == (1, 0)
    assert float(gradebook(out)["solution"]["auto_score"]) == 100


def test_a_worker_that_cannot_start_is_a_message(course_copy, tmp_path):
    c = course_copy("exp1")
    toml = c.assignment_dir("exp1") / "assignment.toml"
    toml.write_text(toml.read_text().replace('title = ', 'batch_prefetch = "nope:fn"\ntitle = ', 1))
    subs = exp1_class(tmp_path, names=("solution",))
    r = batch("exp1", str(subs), "--out", str(tmp_path / "out"), "--course", str(c.root))
    assert r.returncode == 2
    assert "no grading worker could start: ModuleNotFoundError: No module named 'nope'" in r.stderr
    assert "Traceback" not in r.stderr


def _break_check(c, edit) -> None:
    path = c.assignment_dir("exp1") / "checks" / "test_exp1_public.py"
    text = path.read_text()
    assert edit(text) != text
    path.write_text(edit(text))


def test_a_check_file_that_does_not_import_stops_the_batch_charging_no_one(course_copy, tmp_path):
    c = course_copy("exp1")
    _break_check(c, lambda s: s.replace("def test_mlp_output_shape(", "def test_mlp_output_shape((", 1))
    subs = exp1_class(tmp_path, names=("solution", "lr-too-high", "stub"))
    out = tmp_path / "out"
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), "-j", "2", "--chunk", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "a mistake in the course stops the batch" in r.stderr and "SyntaxError" in r.stderr
    assert "Traceback" not in r.stderr and "crashed" not in r.stdout + r.stderr
    state = out / ".state"
    assert not state.exists() or not any(state.glob("*.json"))  # nothing recorded: the rerun grades all


def test_a_check_that_raises_leaves_totals_empty_and_exits_2(course_copy, tmp_path):
    """A hidden check with a bug (KeyError) in a batch: the students keep their points, nothing is uploaded."""
    c = course_copy("exp1")
    _break_check(c, lambda s: s.replace('returns=TrainCurve)["state"]', 'returns=TrainCurve)["weights"]'))
    subs = exp1_class(tmp_path, names=("solution", "stub"))
    out = tmp_path / "out"
    r = batch("exp1", str(subs), "--out", str(out), "--course", str(c.root), "-j", "2", "--chunk", "1")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "1 submission(s) have checks that could not run on the grader's side" in r.stderr
    book = gradebook(out)
    assert book["solution"]["status"] == "grader-error" and book["solution"]["total"] == ""
    assert "training_lowers_mse could not run on the grader's side" in book["solution"]["problems"]
    # the stub fails that check before the broken line: its grade is whole, and stands
    assert book["stub"]["status"] == "graded" and book["stub"]["total"] == "0"
    with (out / "canvas.csv").open(encoding="utf-8") as f:
        rows = {row["Student"]: row for row in csv.DictReader(f)}
    assert rows["solution"][c.spec("exp1").title] == "" and rows["stub"][c.spec("exp1").title] == "0"


def test_an_input_with_no_submissions_exits_2(tmp_path):
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "notes.txt").write_text("nothing to grade here")
    r = batch("exp1", str(tmp_path / "class"), "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "found no submissions in" in r.stderr, r.stderr
    assert "notes.txt: neither a student folder nor a .zip" in r.stderr


def test_a_canvas_export_is_uploaded_back_by_canvas_user_id(tmp_path):
    """Canvas's file names carry its own user ids, which its gradebook import reads from the ID column."""
    export = tmp_path / "submissions.zip"
    with zipfile.ZipFile(export, "w") as zf:
        for p in (ROOT / "examples" / "exp1" / "stub").iterdir():
            zf.write(p, f"o_liddell_alice_LATE_4242_777_{p.name}")  # a name holding '_' is read too
    out = tmp_path / "out"
    r = batch("exp1", str(export), "--out", str(out), "--canvas-column", "Lab 1 (98765)")
    assert r.returncode == 0, r.stderr
    with (out / "canvas.csv").open(encoding="utf-8") as f:
        (_, row) = list(csv.DictReader(f))  # the Points Possible row, then Alice
    assert (row["ID"], row["SIS User ID"], row["Lab 1 (98765)"]) == ("4242", "", "0")  # the column Canvas has
    assert "Canvas marked it LATE; no penalty was applied" in gradebook(out)["4242"]["problems"]


def test_bad_input_is_a_message(tmp_path):
    r = batch("exp1", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    r = batch("exp1", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0")
    assert r.returncode == 2 and "workers" in r.stderr
    (tmp_path / "roster.csv").write_text("name\nA\n")
    r = batch("exp1", str(tmp_path), "--out", str(tmp_path / "o"), "--roster", str(tmp_path / "roster.csv"))
    assert r.returncode == 2 and "no id column" in r.stderr


def test_option_mistakes_exit_2_before_anything_is_graded(tmp_path):
    """A --rubric that is not there, or an empty --canvas-column, would otherwise cost a whole run to find."""
    subs = exp1_class(tmp_path, names=("solution",))
    out = tmp_path / "out"
    r = batch("exp1", str(subs), "--out", str(out), "--rubric", str(tmp_path / "rubirc.csv"))
    assert r.returncode == 2 and f"--rubric {tmp_path / 'rubirc.csv'}: no such file" in r.stderr, r.stderr
    assert "grader rubric template exp1" in r.stderr
    r = batch("exp1", str(subs), "--out", str(out), "--rubric", str(tmp_path))
    assert r.returncode == 2 and f"--rubric {tmp_path}: a folder, not a file" in r.stderr, r.stderr
    r = batch("exp1", str(subs), "--out", str(out), "--canvas-column", " ")
    assert r.returncode == 2 and "--canvas-column: empty" in r.stderr, r.stderr
    assert not out.exists()  # nothing was graded or written


def test_exp2_batch_shares_the_evaluation_and_matches_single_grading(tmp_path, data_root):
    """The prefetch measures every final.pth in the worker; the scores equal grading alone; the accuracy check
    carries a confusion matrix; the loss curve and trend reach report.html."""
    subs = tmp_path / "class"
    for name in ("solution", "lr-off-by-one", "wrong-keys"):
        shutil.copytree(ROOT / "examples" / "exp2" / name, subs / name)
    out = tmp_path / "out"
    r = batch("exp2", str(subs), "--out", str(out), "--data-root", str(data_root), "-j", "1", timeout=900)
    assert r.returncode == 0, r.stderr
    book = gradebook(out)
    assert {n: float(book[n]["auto_score"]) for n in book} == {"solution": 100, "lr-off-by-one": 90,
                                                                "wrong-keys": 80}  # fmt: skip
    result = json.loads((out / "students" / "solution" / "results.json").read_text())
    acc = next(c for c in result["checks"] if c["id"] == "accuracy")
    matrix = acc["confusion"]["matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 10_000
    assert abs(100 * sum(matrix[i][i] for i in range(10)) / 10_000 - 79.93) < 0.05  # the reference's 79.93%
    trend = next(c for c in result["checks"] if c["id"] == "claimed_trend")
    assert set(trend["series"]) >= {"test_acc", "train_loss"}
    assert "airplane" in (out / "students" / "solution" / "report.html").read_text()
