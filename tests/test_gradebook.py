"""Batch grading's class outputs: late policy, rubric CSV, adjusted totals, gradebook.csv and Canvas's format."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from grader.batch.adjust import adjust
from grader.batch.gradebook import canvas_csv, gradebook_csv, safe_cell
from grader.batch.late import fmt_number, lateness, message_without_points
from grader.batch.models import Student
from grader.batch.rubric import read_rubric, rubric_template
from grader.results import RubricScore
from grader.spec import LatePolicy
from tests.batch_helpers import make_result, make_row, make_spec

CST = timezone(timedelta(hours=8))
DUE = datetime(2026, 10, 11, 23, 59, tzinfo=CST)
POLICY = LatePolicy(due=DUE, penalty_per_day=0.1, grace_minutes=15, max_days=7)
GRACE_END = DUE + timedelta(minutes=15)


# ---- late policy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("submitted", "days", "fraction"),
    [
        (DUE - timedelta(hours=3), 0, 0.0),
        (DUE, 0, 0.0),
        (GRACE_END, 0, 0.0),  # the last moment of grace is still on time
        (GRACE_END + timedelta(microseconds=1), 1, 0.1),
        (GRACE_END + timedelta(days=1), 1, 0.1),  # exactly one day past grace: one started day
        (GRACE_END + timedelta(days=1, microseconds=1), 2, 0.2),
        (GRACE_END + timedelta(days=3, hours=5), 4, 0.4),
        (GRACE_END + timedelta(days=7), 7, 0.7),  # max_days itself still earns something
        (GRACE_END + timedelta(days=7, seconds=1), 8, 1.0),  # beyond max_days: 0
        (GRACE_END + timedelta(days=40), 40, 1.0),
    ],
)
def test_days_late_and_fraction_at_the_boundaries(submitted: datetime, days: int, fraction: float) -> None:
    late = lateness(POLICY, submitted, "zip entry", 80)
    assert (late.days_late, late.penalty_fraction) == (days, fraction)
    assert late.penalty == round(80 * fraction, 4)


def test_the_message_explains_the_arithmetic() -> None:
    late = lateness(POLICY, datetime(2026, 10, 13, 10, 0, tzinfo=CST), "Gradescope metadata", 85)
    assert (late.days_late, late.penalty) == (2, 17.0)
    assert late.message.startswith("submitted 2026-10-13 10:00 +08:00 (Gradescope metadata), 2 days late")
    assert "due date 2026-10-11 23:59 +08:00 and its 15 minutes of grace" in late.message
    assert late.message.endswith("-20% of 85 = -17 points")


def test_other_time_zones_compare_as_instants_and_show_in_the_due_dates_zone() -> None:
    # 16:10 UTC is 00:10 the next day in +08:00: 11 minutes late, inside the grace period.
    late = lateness(POLICY, datetime(2026, 10, 11, 16, 10, tzinfo=timezone.utc), "LMS", 90)
    assert (late.days_late, late.penalty) == (0, 0.0)
    assert "2026-10-12 00:10 +08:00" in late.message and "within the 15 minutes of grace" in late.message
    # 12:00 at -05:00 on the 12th is 01:00 on the 13th in +08:00: 1 day and 46 minutes past the grace.
    west = timezone(timedelta(hours=-5))
    late = lateness(POLICY, datetime(2026, 10, 12, 12, 0, tzinfo=west), "LMS", 90)
    assert (late.days_late, late.penalty) == (2, 18.0)
    assert "submitted 2026-10-13 01:00 +08:00 (LMS)" in late.message
    assert late.submitted_at == datetime(2026, 10, 12, 17, 0, tzinfo=timezone.utc)


def test_a_naive_time_is_read_as_utc_and_the_message_says_so() -> None:
    late = lateness(POLICY, datetime(2026, 10, 11, 16, 30), "file times", 50)  # 00:30 +08:00: 31 min late
    assert (late.days_late, late.penalty) == (1, 5.0)
    assert late.submitted_at is not None and late.submitted_at.tzinfo is not None
    assert "read as UTC" in late.message


def test_on_time_message() -> None:
    late = lateness(POLICY, DUE - timedelta(days=1), "Gradescope metadata", 70)
    assert late.penalty == 0
    assert late.message == (
        "submitted 2026-10-10 23:59 +08:00 (Gradescope metadata), on time (due 2026-10-11 23:59 +08:00)"
    )


def test_beyond_max_days_earns_zero_and_says_why() -> None:
    late = lateness(POLICY, GRACE_END + timedelta(days=9), "zip entry", 64.5)
    assert (late.days_late, late.penalty_fraction, late.penalty) == (9, 1.0, 64.5)
    assert "more than 7 days late earns 0: -100% of 64.5 = -64.5 points" in late.message


def test_fraction_caps_at_one_and_max_days_zero_means_no_lateness_at_all() -> None:
    steep = LatePolicy(due=DUE, penalty_per_day=0.3)
    assert lateness(steep, DUE + timedelta(days=3, minutes=1), "", 40).penalty_fraction == 1.0
    strict = LatePolicy(due=DUE, penalty_per_day=0.1, max_days=0)
    assert lateness(strict, DUE + timedelta(minutes=1), "", 40).penalty == 40.0


def test_unknown_submission_time_costs_nothing_and_says_how_to_supply_it() -> None:
    late = lateness(POLICY, None, "", 85)
    assert (late.submitted_at, late.days_late, late.penalty) == (None, 0, 0.0)
    assert "submission time unknown" in late.message and "Gradescope" in late.message


def test_the_message_without_points_keeps_the_when_and_the_fraction() -> None:
    """What a student sees while hidden checks hold the total back: the points would give that total away."""
    late = lateness(POLICY, datetime(2026, 10, 12, 12, 0, tzinfo=timezone(timedelta(hours=-5))), "LMS", 85)
    assert late.message.endswith("-20% of 85 = -17 points")
    assert message_without_points(late) == (
        "submitted 2026-10-13 01:00 +08:00 (LMS), 2 days late (due 2026-10-11 23:59 +08:00): -20% of the total"
    )
    beyond = lateness(POLICY, GRACE_END + timedelta(days=9), "", 64.5)
    assert message_without_points(beyond).endswith("9 days late (due 2026-10-11 23:59 +08:00): -100% of the total")
    for kept in (lateness(POLICY, DUE, "zip entry", 70), lateness(POLICY, None, "", 85)):
        assert message_without_points(kept) == kept.message  # on time, or no time: no points stated


def test_penalty_is_rounded_to_four_decimals() -> None:
    late = lateness(POLICY, GRACE_END + timedelta(hours=1), "", 100 / 3)
    assert late.penalty == 3.3333
    assert fmt_number(3.0) == "3" and fmt_number(-0.0) == "0" and fmt_number(1e-7) == "0"
    assert fmt_number(12.50004) == "12.5" and fmt_number(1234567.0) == "1234567"


# ---- rubric CSV ------------------------------------------------------------------------------------------------

IDS = {"s1", "s2", "s3"}


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "rubric.csv"
    path.write_bytes(text.encode(encoding))
    return path


def score_of(sheet, sid: str) -> float | None:  # noqa: ANN001
    return sheet.scores[sid][0].score


def test_template_lists_students_sorted_with_score_and_comment_columns() -> None:
    students = [Student(id="s2"), Student(id="s10", name="A, B"), Student(id="s1"), Student(id="s2")]
    rows = list(csv.reader(io.StringIO(rubric_template(make_spec(), students))))
    assert rows == [["student_id", "report", "report_comment"], ["s1", "", ""], ["s10", "", ""], ["s2", "", ""]]


def test_template_round_trips_as_all_ungraded(tmp_path: Path) -> None:
    spec = make_spec()
    path = write(tmp_path, rubric_template(spec, [Student(id=s) for s in IDS]))
    sheet = read_rubric(path, spec, IDS)
    assert sheet.problems == []
    assert all(items[0].score is None for items in sheet.scores.values())


def test_happy_path_with_bom_whitespace_and_a_multiline_comment(tmp_path: Path) -> None:
    text = (
        " student_id , Report ,report_comment,name\r\n"
        's1, 17.5 ,"clear table, good trend",Ann\r\n'
        's2,20,"line one\nline two",Bob\r\n'
        "s3,,,Cy\r\n"
        ",,,\r\n"
    )
    sheet = read_rubric(write(tmp_path, "\ufeff" + text), make_spec(), IDS)
    assert sheet.problems == []
    assert [score_of(sheet, s) for s in ("s1", "s2", "s3")] == [17.5, 20.0, None]
    s1 = sheet.scores["s1"][0]
    assert (s1.id, s1.name, s1.max_score, s1.comment) == ("report", "Written report", 20, "clear table, good trend")
    assert sheet.scores["s2"][0].comment == "line one\nline two"


def test_students_without_a_row_are_ungraded_and_listed(tmp_path: Path) -> None:
    sheet = read_rubric(write(tmp_path, "student_id,report\ns2,10\n"), make_spec(), IDS)
    assert score_of(sheet, "s2") == 10 and score_of(sheet, "s1") is None
    assert len(sheet.problems) == 1 and "no row for 2 student(s): s1, s3" in sheet.problems[0]


def test_every_bad_cell_is_reported_with_line_and_column_and_the_good_rows_survive(tmp_path: Path) -> None:
    text = (
        "student_id,report,report_comment,grade_bonus\n"  # line 1: an unknown column
        "s1,12,ok,5\n"  # line 2: fine (the unknown column is ignored)
        "s9,10,,\n"  # line 3: unknown student
        's2,"12,5",,\n'  # line 4: decimal comma
        "s3,abc,,\n"  # line 5: not a number
        "s1,3,,\n"  # line 6: s1 again
        ",4,,\n"  # line 7: no id
    )
    path = write(tmp_path, text)
    sheet = read_rubric(path, make_spec(), IDS)
    assert score_of(sheet, "s1") == 12 and sheet.scores["s1"][0].comment == "ok"
    assert score_of(sheet, "s2") is None and score_of(sheet, "s3") is None
    problems = sheet.problems
    assert all(p.startswith(f"{path}: line ") for p in problems), problems
    expected = [
        "line 1, column 4: unknown column 'grade_bonus', ignored; the rubric items of exp1 are: report",
        "line 3: unknown student id 's9'; this row is ignored",
        "line 4, column 'report': '12,5' uses a decimal comma; write '12.5'",
        "line 5, column 'report': 'abc' is not a number",
        "line 6: student 's1' again (first on line 2); this row is ignored",
        "line 7: empty student_id; this row is ignored",
    ]
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected, strict=True):
        assert fragment in problem


@pytest.mark.parametrize(
    ("cell", "fragment"),
    [
        ("-1", "'-1' is outside 0..20"),
        ("20.5", "'20.5' is outside 0..20"),
        ("nan", "'nan' is not a finite number"),
        ("inf", "'inf' is not a finite number"),
        ("1e400", "'1e400' is not a finite number"),
    ],
)
def test_out_of_range_scores_are_refused(tmp_path: Path, cell: str, fragment: str) -> None:
    path = write(tmp_path, f"student_id,report\ns1,{cell}\ns2,20\ns3,0\n")
    sheet = read_rubric(path, make_spec(), IDS)
    assert len(sheet.problems) == 1
    assert f"{path}: line 2, column 'report': {fragment}" in sheet.problems[0]
    assert [score_of(sheet, s) for s in ("s1", "s2", "s3")] == [None, 20, 0]


def test_a_missing_file_means_ungraded_and_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    sheet = read_rubric(path, make_spec(), IDS)
    assert sorted(sheet.scores) == sorted(IDS) and all(score_of(sheet, s) is None for s in IDS)
    assert len(sheet.problems) == 1
    assert str(path) in sheet.problems[0] and "grader rubric template exp1" in sheet.problems[0]
    # Without rubric items nothing is missing.
    assert read_rubric(path, make_spec(rubric=False), IDS).problems == []


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "the file is empty"),
        (b"id,report\ns1,3\n", "line 1: no 'student_id' column (found: 'id', 'report')"),
        (b"student_id;report\ns1;12,5\n", "separated by ';'"),
        ("student_id,report_comment\ns1,caf\u00e9\n".encode("cp1252"), "not UTF-8 text (byte 32)"),
        (b"student_id,report_comment\ns1,ok\n", "no column 'report'"),
        (b'student_id,report\ns1,"12\n', "line 2: a quote opened here is never closed"),
    ],
)
def test_unusable_files_get_one_clear_message(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "rubric.csv"
    path.write_bytes(content)
    sheet = read_rubric(path, make_spec(), IDS)
    assert any(fragment in p and str(path) in p for p in sheet.problems), sheet.problems
    assert sorted(sheet.scores) == sorted(IDS)


def test_duplicate_columns_are_reported(tmp_path: Path) -> None:
    sheet = read_rubric(write(tmp_path, "student_id,report,report\ns1,3,4\n"), make_spec(), {"s1"})
    assert score_of(sheet, "s1") == 3
    assert any("column 3: 'report' appears twice" in p for p in sheet.problems)


def test_garbage_never_raises(tmp_path: Path) -> None:
    rng = random.Random(0)
    alphabet = b'student_id,report_comment\n\r";=+-.0123456789e\xef\xbb\xbf\x00 abc'
    for _ in range(200):
        head = b"student_id,report,report_comment\n" if rng.random() < 0.5 else b""
        blob = head + bytes(rng.choice(alphabet) for _ in range(rng.randrange(80)))
        path = tmp_path / "rubric.csv"
        path.write_bytes(blob)
        sheet = read_rubric(path, make_spec(), IDS)
        assert sorted(sheet.scores) == sorted(IDS)


# ---- adjusted totals -------------------------------------------------------------------------------------------


def test_adjust_adds_the_rubric_then_takes_the_penalty_from_the_sum() -> None:
    spec = make_spec(late={})
    result = make_result({"shape": 10, "fits": 15})
    rubric = [RubricScore(id="report", name="x", max_score=20, score=15, comment="good")]
    submitted = datetime(2026, 10, 13, 10, 0, tzinfo=CST)  # 2 days late
    out = adjust(result, spec, rubric, submitted, "Gradescope metadata")
    assert result.adjustments is None  # a copy: the input is untouched
    adj = out.adjustments
    assert adj is not None and adj.late is not None
    assert (adj.late.days_late, adj.late.penalty) == (2, 8.0)  # 20% of 25 + 15
    assert (adj.total, adj.max_total, out.total, out.max_total) == (32.0, 50.0, 32.0, 50.0)
    assert [(r.name, r.score, r.comment) for r in adj.rubric] == [("Written report", 15, "good")]


def test_adjust_without_rubric_or_policy_still_sets_uniform_adjustments() -> None:
    out = adjust(make_result({"shape": 10, "fits": 7.25}), make_spec(rubric=False), None, None, "")
    assert out.adjustments is not None
    assert (out.adjustments.rubric, out.adjustments.late) == ([], None)
    assert (out.total, out.max_total) == (17.25, 30.0)


def test_ungraded_or_absent_rubric_counts_as_zero_and_unknown_items_are_ignored() -> None:
    spec = make_spec(late={})
    stray = [RubricScore(id="poster", name="?", max_score=5, score=5)]
    for rubric in (None, stray, [RubricScore(id="report", name="x", max_score=20)]):
        out = adjust(make_result({"shape": 10, "fits": 20}), spec, rubric, None, "")
        assert out.adjustments is not None and out.adjustments.late is not None
        assert [r.score for r in out.adjustments.rubric] == [None]
        assert (out.total, out.max_total) == (30.0, 50.0)
        assert "unknown" in out.adjustments.late.message


def test_total_never_goes_below_zero_and_rounds_deterministically() -> None:
    spec = make_spec(late={})
    out = adjust(make_result({"shape": 10 / 3, "fits": 0}), spec, None, DUE + timedelta(days=30), "zip")
    assert out.total == 0.0
    rubric = [RubricScore(id="report", name="r", max_score=20, score=1 / 3)]
    out = adjust(make_result({"shape": 10 / 3, "fits": 0}), spec, rubric, GRACE_END + timedelta(hours=1), "zip")
    assert out.adjustments is not None and out.adjustments.late is not None
    # Each step rounds to 4 decimals: earned 3.3333 + 0.3333, penalty 10% of 3.6666, total 3.6666 - 0.3667.
    assert out.adjustments.late.penalty == 0.3667
    assert out.total == 3.2999


# ---- gradebook.csv and Canvas ----------------------------------------------------------------------------------


def class_rows() -> list:
    spec = make_spec(late={})
    report = [RubricScore(id="report", name="r", max_score=20, score=18)]
    late = datetime(2026, 10, 13, 10, 0, tzinfo=CST)
    graded = adjust(make_result({"shape": 10, "fits": 12.5}, "s2"), spec, report, late, "Gradescope metadata")
    on_time = adjust(make_result({"shape": 5, "fits": 20}, "s4"), spec, None, DUE, "zip entry")
    unknown = adjust(make_result({"shape": 0, "fits": 0}, "s6"), spec, None, None, "")
    return [
        make_row("s4", on_time, name='Lee, "Jo" Ann', email="jo@example.edu"),
        make_row("s1"),  # missing
        make_row("s2", graded, name="Ann Smith"),
        make_row("s3", status="crashed"),
        make_row("s2", status="skipped-duplicate", name="Ann Smith"),
        make_row("s5", name='=HYPERLINK("http://x")', email="@evil").model_copy(
            update={"problems": ["-roster: unknown id", "second"]}
        ),
        make_row("s6", unknown),
    ]


def parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_gradebook_csv_reads_back_with_every_number() -> None:
    spec = make_spec(late={})
    text = gradebook_csv(spec, class_rows())
    header = text.splitlines()[0].split(",")
    assert header == [
        "student_id", "name", "email", "status", "shape", "fits", "deducted", "auto_score", "report",
        "late_days", "late_penalty", "total", "max_total", "problems",
    ]  # fmt: skip
    rows = {r["student_id"]: r for r in parse(text)}
    assert list(rows) == ["s1", "s2", "s3", "s4", "s5", "s6"]  # one per student, sorted
    s2 = rows["s2"]
    # 22.5 + 18 = 40.5, 2 days late: -8.1
    assert (s2["shape"], s2["fits"], s2["auto_score"], s2["report"]) == ("10", "12.5", "22.5", "18")
    assert (s2["late_days"], s2["late_penalty"], s2["total"], s2["max_total"]) == ("2", "8.1", "32.4", "50")
    assert s2["status"] == "graded" and "skipped-duplicate: /subs/s2 (not counted)" in s2["problems"]
    s4 = rows["s4"]
    assert s4["name"] == 'Lee, "Jo" Ann' and s4["email"] == "jo@example.edu"
    assert (s4["report"], s4["late_days"], s4["late_penalty"], s4["total"]) == ("", "0", "0", "25")
    missing, crashed = rows["s1"], rows["s3"]
    assert (missing["status"], missing["shape"], missing["auto_score"], missing["total"]) == ("missing", "", "", "0")
    assert (crashed["status"], crashed["total"], crashed["max_total"]) == ("crashed", "", "50")
    assert (rows["s6"]["late_days"], rows["s6"]["total"]) == ("", "0")  # submission time unknown


def test_gradebook_csv_defuses_formulas_in_student_text() -> None:
    s5 = {r["student_id"]: r for r in parse(gradebook_csv(make_spec(late={}), class_rows()))}["s5"]
    assert s5["name"] == '\'=HYPERLINK("http://x")'
    assert s5["email"] == "'@evil"
    assert s5["problems"] == "'-roster: unknown id; second"
    assert [safe_cell(t) for t in ("+1", "-x", "@a", "\tz", "a=b", "")] == ["'+1", "'-x", "'@a", "'\tz", "a=b", ""]


def test_gradebook_csv_is_deterministic_whatever_the_row_order() -> None:
    spec = make_spec(late={})
    rows = class_rows()
    first = gradebook_csv(spec, rows)
    assert gradebook_csv(spec, list(reversed(rows))) == first
    assert first.endswith("\n") and "\r" not in first


def test_gradebook_of_nobody_graded_uses_the_enabled_checks() -> None:
    text = gradebook_csv(make_spec(), [make_row("s1")])
    row = parse(text)[0]
    assert "rerun" not in row and (row["total"], row["max_total"]) == ("0", "50")


def test_canvas_csv_format() -> None:
    text = canvas_csv(make_spec(late={}), class_rows(), "exp1 (12345)")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "exp1 (12345)"]
    assert lines[1] == ["    Points Possible", "", "", "", "", "50"]
    body = {line[2]: line for line in lines[2:]}
    assert list(body) == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert body["s2"] == ["Ann Smith", "", "s2", "", "", "32.4"]
    assert body["s4"][0] == 'Lee, "Jo" Ann' and body["s4"][5] == "25"
    assert body["s1"][5] == "0" and body["s3"][5] == ""  # missing: 0; crashed: left unchanged in Canvas
    assert body["s5"][0].startswith("'=")
    by_login = list(csv.reader(io.StringIO(canvas_csv(make_spec(), class_rows(), "New", key="sis_login_id"))))
    assert by_login[2][:5] == ["Student S1", "", "", "s1", ""]
    with pytest.raises(ValueError, match="column_title"):
        canvas_csv(make_spec(), class_rows(), "  ")


def test_canvas_column_can_be_the_header_canvas_knows() -> None:
    """`grader batch --canvas-column`: the Canvas assignment may be named otherwise than the spec's title."""
    text = canvas_csv(make_spec(late={}), class_rows(), " Lab 1: MLP (98765) ")
    assert text.splitlines()[0] == "Student,ID,SIS User ID,SIS Login ID,Section,Lab 1: MLP (98765)"
    assert canvas_csv(make_spec(late={}), class_rows(), "=HYPERLINK()").splitlines()[0].endswith(",'=HYPERLINK()")


def test_a_row_with_broken_quotes_is_skipped_and_the_next_rows_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, 'student_id,report,report_comment\ns1,"5"x,\ns2,6,"two\nlines"\ns3,"70",\n')
    sheet = read_rubric(path, make_spec(), IDS)
    assert [score_of(sheet, s) for s in ("s1", "s2", "s3")] == [None, 6, None]
    assert sheet.scores["s2"][0].comment == "two\nlines"
    assert len(sheet.problems) == 3
    assert f"{path}: line 2: not readable as CSV" in sheet.problems[0]
    assert f"{path}: line 5, column 'report': '70' is outside 0..20" in sheet.problems[1]  # s2's row spans 3-4
    assert "no row for 1 student(s): s1" in sheet.problems[2]


def test_a_zero_says_why_in_the_problems_column() -> None:
    """A graded 0 with an empty problems column reads as the grader's fault: the file's problem, else the first
    check's message, is shown."""
    from grader.results import FileRecord

    missing = make_result({"shape": 0, "fits": 0}, "s7").model_copy(update={"files": [FileRecord(
        name="exp1.py", present=False, problem="exp1.py is missing from the submission; add exp1.py and resubmit")]})
    failed = make_result({"shape": 0, "fits": 0}, "s8")
    failed.checks[0].message = "raised NotImplementedError (exp1.py line 20, in f)\nmore"
    rows = {r["student_id"]: r for r in parse(gradebook_csv(make_spec(), [make_row("s7", missing),
                                                                          make_row("s8", failed)]))}  # fmt: skip
    assert rows["s7"]["problems"] == "exp1.py is missing from the submission; add exp1.py and resubmit"
    assert rows["s8"]["problems"] == "shape: raised NotImplementedError (exp1.py line 20, in f)"
