"""report.html, report.student.html and summary.html, rendered by headless Chromium: the DOM it built from the
page (`--dump-dom`) and a screenshot. Results are built directly (an exp2-like batch result) and, once, by
grading a bundled exp1 example for real."""

from __future__ import annotations

import re
import zlib
from collections import Counter
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from grader.batch.late import lateness
from grader.batch.models import ClassRow, Student
from grader.batch.roster import folder_name
from grader.grading import grade
from grader.report import write_reports
from grader.report.html import STATUS_COLORS, to_html
from grader.report.markdown import to_markdown
from grader.report.plots import bin_counts, heat
from grader.report.summary import summary_html
from grader.results import (
    Adjustments,
    CheckResult,
    Confusion,
    Environment,
    FileRecord,
    GradeResult,
    Lateness,
    Location,
    RubricScore,
)
from grader.spec import AssignmentSpec, CheckSpec, FileSpec, LatePolicy, RubricItem
from tests import browser
from tests.browser import Chromium, chromium_fixture  # noqa: F401  (the `chromium` fixture)

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
HOSTILE = '<script>alert("pwned")</script>'
TZ = timezone(timedelta(hours=8))
DUE = datetime(2026, 11, 1, 23, 59, tzinfo=TZ)


# --- a small DOM: Chromium's --dump-dom output parsed into a tree ---------------------------------------------


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None = None) -> None:
        self.tag, self.attrs, self.parent, self.children = tag, attrs, parent, []  # children: Node | str

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        """The text inside, with a space at each element boundary: cells and blocks must not run together."""
        return "".join(c if isinstance(c, str) else f" {c.text()} " for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, id: str | None = None) -> list[Node]:
        def match(n: Node) -> bool:
            return (tag in (None, n.tag)) and (cls is None or cls in n.classes) and (id in (None, n.attrs.get("id")))

        return [n for n in self.iter() if match(n)]

    def find(self, tag: str | None = None, cls: str | None = None, id: str | None = None) -> Node:
        found = self.find_all(tag, cls, id)
        assert found, f"no <{tag or '*'}> with class={cls!r} id={id!r}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        node = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(dom: str) -> Node:
    builder = _Builder()
    builder.feed(dom)
    return builder.root


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# --- screenshots: PNG pixels, with Pillow or by hand ----------------------------------------------------------


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(width, height, RGB pixels). Pillow when the venv has it; else the PNG decoded here (8-bit RGB/RGBA)."""
    try:
        from PIL import Image
    except ImportError:
        return _decode_png(path.read_bytes())
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        raw = rgb.tobytes()
        return rgb.width, rgb.height, [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]


def _decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, color = body[8], body[9]
            assert depth == 8 and color in (2, 6) and body[12] == 0, "only 8-bit, non-interlaced RGB(A)"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, pixels = bytearray(stride), []
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


def rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def count_near(pixels: Counter, color: tuple[int, int, int], tol: int = 6) -> int:
    return sum(n for p, n in pixels.items() if all(abs(a - b) <= tol for a, b in zip(p, color, strict=True)))


def assert_screenshot(png: Path, size: tuple[int, int], colors: dict[str, str]) -> Counter:
    width, height, pixels = png_pixels(png)
    assert (width, height) == size
    hist = Counter(pixels)
    assert len(hist) > 200, f"only {len(hist)} distinct colours: a blank or broken page"
    white = hist[(255, 255, 255)] + hist[(246, 248, 250)]  # page background and card background
    assert white < 0.97 * width * height, "the page is (almost) empty"
    for name, color in colors.items():
        assert count_near(hist, rgb(color)) >= 40, f"{name} ({color}) does not show in the screenshot"
    return hist


# --- synthetic results ----------------------------------------------------------------------------------------


def cifar_confusion() -> Confusion:
    """1000 test images per class; cat and dog mixed up the most, as a real ResNet20 does."""
    matrix = []
    for i in range(10):
        row = [(i * 7 + j * 3) % 9 + 2 for j in range(10)]
        row[i] = 0
        if i in (3, 5):  # cat <-> dog
            row[8 - i] += 120
        row[i] = 1000 - sum(row)
        matrix.append(row)
    return Confusion(labels=CIFAR10, matrix=matrix)


def check(cid: str, score: float, top: float, status: str, vis: str = "visible", **kw) -> CheckResult:
    return CheckResult(id=cid, name=kw.pop("name", f"check {cid}"), max_score=top, score=score, status=status,
                       visibility=vis, **kw)  # fmt: skip


def exp2_result(student: str = "s2026001", late_days: int = 2, rubric: float | None = None) -> GradeResult:
    test_acc = [38.2, 51.0, 58.9, 63.1, 66.4, 74.9, 75.8, 76.3, 76.6, 76.9]
    checks = [
        check("architecture", 15, 15, "passed", name="ResNet20: (N, 3, 32, 32) -> (N, 10), 0.27M parameters"),
        check("gradients_flow", 10, 10, "passed", name="every parameter gets a finite, non-zero gradient"),
        check("training_step", 7.5, 15, "partial", name="train_step lowers the loss within 8 steps",
              message="loss went 2.31 -> 2.05 in 8 steps; full credit below 1.9", notes=["seed 0, batch of 64"]),
        check("lr_schedule", 0, 10, "failed", name="lr_for_epoch: 0.1 for epochs 0-4, 0.01 for 5-9",
              message=f"lr_for_epoch(5) returned 0.1; expected 0.01 {HOSTILE}",
              locations=[Location(file="exp2.py", line=57, function="lr_for_epoch")], duration_s=0.8),
        check("checkpoint_resume", 10, 10, "passed", name="save_checkpoint and resume()"),
        check("evaluation_loop", 10, 10, "passed", name="evaluate() returns the accuracy in percent"),
        check("accuracy", 20, 20, "passed", "hidden", name="final.pth reaches 70% on the CIFAR-10 test set",
              message="judge measured 76.93% (secret threshold detail)", confusion=cifar_confusion(), duration_s=21.4),
        check("claimed_trend", 10, 10, "passed", "hidden", name="final.pth's history: 10 epochs, last test accuracy",
              series={"test_acc": test_acc, "train_acc": [a + 4 + i * 0.9 for i, a in enumerate(test_acc)],
                      "train_loss": [1.72, 1.31, 1.12, 0.98, 0.90, 0.66, 0.61, 0.58, 0.56, 0.55]}),
    ]  # fmt: skip
    score = sum(c.score for c in checks)
    earned = score + (rubric or 0)
    fraction = min(1.0, 0.1 * late_days)
    submitted = DUE + timedelta(days=late_days - 1, hours=9, minutes=31) if late_days else DUE - timedelta(hours=3)
    late = Lateness(submitted_at=submitted, submitted_at_source="Gradescope metadata", due=DUE, days_late=late_days,
                    penalty_fraction=fraction, penalty=round(earned * fraction, 2),
                    message=f"{late_days} started day(s) past the due date and 15 minutes' grace")  # fmt: skip
    return GradeResult(
        assignment="exp2",
        submission=f"submissions/{student}",
        mode="grade",
        score=score,
        max_score=sum(c.max_score for c in checks),
        checks=checks,
        files=[
            FileRecord(name="exp2.py", present=True, size=9_812, sha256="9f2c4e7a1b3d" + "0" * 52),
            FileRecord(name="final.pth", present=True, size=1_126_347, sha256="a1b2c3d4e5f6" + "1" * 52),
        ],
        started_at=datetime(2026, 11, 5, 14, 2, tzinfo=timezone.utc),
        duration_s=48.2,
        environment=Environment(grader_version="0.1.0", python="3.11.7", torch="2.11.0", device="cpu",
                                platform="Linux x86_64",
                                sandbox={"sandbox": "local process", "network": "none (own network namespace)"}),
        skipped={"rerun_writes_checkpoint": "needs a GPU; this grader has none"},
        contestant_output="epoch 1 loss 1.72\nepoch 2 loss 1.31\n<img src=x onerror=alert(1)>\nDONE-MARKER\n",
        timings={"contestant_starts": 3, "probes": [{"probe": "evaluate", "seconds": 1.5},
                                                    {"probe": "train_step", "seconds": 0.25},
                                                    {"probe": "evaluate", "seconds": 1.0}]},
        student=student,
        adjustments=Adjustments(
            rubric=[RubricScore(id="report", name="Written report: the test-accuracy trend", max_score=20,
                                score=rubric, comment="" if rubric is None else "clear")],
            late=late,
            total=round(earned - earned * fraction, 2),
            max_total=120,
        ),
    )  # fmt: skip


@pytest.fixture
def result() -> GradeResult:
    return exp2_result()


def test_html_escapes_hostile_text_without_a_browser(result):
    page = to_html(result)
    assert HOSTILE not in page and "<img" not in page
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in page
    # Self-contained: the only URL is SVG's namespace, and nothing is fetched or run.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|img|iframe)\b", page)


def test_bin_counts_edges():
    assert bin_counts([0, 9.99, 10, 99, 100, 120, -3], 0, 100, 10) == [3, 1, 0, 0, 0, 0, 0, 0, 0, 3]


def test_write_reports_adds_html(result, tmp_path):
    files = write_reports(result, tmp_path)
    assert files["html"] == tmp_path / "report.html" and files["student_html"] == tmp_path / "report.student.html"
    assert files["html"].read_text().startswith("<!DOCTYPE html>")
    assert {"results", "schema", "gradescope", "report", "student_report", "plot:claimed_trend"} <= set(files)


def test_missing_browser_skips_or_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv("GRADER_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="scripts/ci-browser.sh"):
        browser.require_chromium(tmp_path)
    monkeypatch.setenv("GRADER_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="GRADER_REQUIRE_BROWSER=1 but no headless browser"):
        browser.require_chromium(tmp_path)


def with_late(result: GradeResult, submitted: datetime | None) -> GradeResult:
    """`result` with the late record batch grading would build (grader.batch.late), its message included."""
    assert result.adjustments is not None
    policy = LatePolicy(due=DUE, penalty_per_day=0.1, grace_minutes=15)
    late = lateness(policy, submitted, "Gradescope metadata" if submitted else "", result.score)
    adj = result.adjustments.model_copy(update={"late": late, "total": round(result.score - late.penalty, 4)})
    return result.model_copy(update={"adjustments": adj})


def test_student_views_never_state_a_held_back_total_through_the_late_penalty():
    """With hidden checks still to come, the penalty's points (16.5) and what they were taken from (82.5, the
    total with the hidden checks) would give that total away: the student's pages state the fraction only."""
    result = with_late(exp2_result(), DUE + timedelta(days=1, hours=9, minutes=31))
    assert result.adjustments is not None and result.adjustments.late is not None
    assert result.adjustments.late.message.endswith("-20% of 82.5 = -16.5 points")  # the instructor's wording
    md, page = to_markdown(result, "student"), to_html(result, "student")
    for held in ("82.5", "16.5", "66"):
        assert held not in md and held not in page, held
    assert "- late policy: submitted 2026-11-03 09:30 +08:00 (Gradescope metadata), 2 days late" in md
    assert md.rstrip().endswith("-20% of the total")
    assert "2 day(s) late: 20% off" in page and "−20%" in page
    for view in (to_markdown(result, "instructor"), to_html(result, "instructor")):
        assert "-20% of 82.5 = -16.5 points" in view and "66" in view  # nothing is held back from the instructor
    shown = result.model_copy(update={"checks": [c.model_copy(update={"visibility": "visible"})
                                                 for c in result.checks]})  # fmt: skip
    assert "-20% of 82.5 = -16.5 points" in to_markdown(shown, "student")  # nothing held: the total is shown


def test_unknown_submission_time_is_not_called_on_time():
    result = with_late(exp2_result(), None)
    said = "submission time unknown, so no late penalty was applied (due 2026-11-01 23:59 +08:00)"
    for page, md in ((to_html(result), to_markdown(result)),
                     (to_html(result, "student"), to_markdown(result, "student"))):  # fmt: skip
        assert said in squash(parse(page).find("section", id="score").text()) and "on time:" not in page
        assert f"- late policy: {said}" in md  # both reports say the same


# --- in the browser -------------------------------------------------------------------------------------------


def test_instructor_report_in_chromium(chromium: Chromium, result, tmp_path):
    files = write_reports(result, tmp_path / "out")
    doc = parse(chromium.dump_dom(files["html"]))
    title = squash(doc.find("title").text())
    assert title.startswith("exp2 · s2026001") and title.endswith(f"{result.total:g} / 120")
    header = squash(doc.find("header").text())
    assert "s2026001" in header and f"{result.total:g} / 120" in header

    # every check, with its status and points; the failed one with its message and the student's line
    for c in result.checks:
        row = doc.find("tr", id=f"check-{c.id}")
        assert {"check", c.status} <= row.classes
        text = squash(row.text())
        assert c.name in text and c.status in text and f"{c.score:g} / {c.max_score:g}" in text
    failed = doc.find("tr", id="check-lr_schedule")
    assert HOSTILE in failed.find("pre").text()  # shown as text...
    assert not doc.find_all("script") and not doc.find_all("img")  # ...and never became an element
    assert "exp2.py:57 in lr_for_epoch" in squash(failed.text())
    assert "hidden" in squash(doc.find("tr", id="check-accuracy").text())
    assert "needs a GPU" in doc.find("section", id="checks").text()

    # adjustments: automatic score, the rubric item not graded yet, the late penalty and where its time came from
    score = squash(doc.find("section", id="score").text())
    assert "automatic checks 82.5 / 100" in score
    assert "not graded yet / 20" in score
    assert "2 day(s) late: 20% off (16.5 points)" in score and "−16.5" in score
    assert "Gradescope metadata" in score and "due 2026-11-01 23:59+08:00" in score
    assert f"total {result.total:g} / 120" in score

    # plots: a loss curve, the accuracy trend (two series) and the 10x10 confusion matrix with recalls
    loss, trend = doc.find("figure", cls="loss"), doc.find("figure", cls="trend")
    assert len(loss.find("svg").find_all("polyline")) == 1 and "train_loss" in loss.text()
    assert len(trend.find("svg").find_all("polyline")) == 2 and "accuracy (%)" in trend.text()
    cm = doc.find("figure", cls="confusion").find("svg")
    assert len(cm.find_all("rect", cls="cell")) == 100
    cm_text = cm.text()
    assert all(name in cm_text for name in CIFAR10) and "recall" in cm_text
    assert f"{cifar_confusion().matrix[3][3] / 1000:.1%}" in cm_text  # cat's recall

    # files, environment, timings and the student's output, folded away
    files_text = squash(doc.find("section", id="files").text())
    assert "final.pth 1,126,347 B a1b2c3d4e5f6" in files_text
    env = squash(doc.find("section", id="environment").text())
    for want in ("0.1.0", "3.11.7", "2.11.0", "Linux x86_64", "none (own network namespace)", "48.20 s"):
        assert want in env
    assert "contestant starts 3" in env and "evaluate 2 2.500 1.500" in env  # probe calls, total, max
    details = doc.find("section", id="output").find("details")
    assert "open" not in details.attrs and "DONE-MARKER" in details.text()
    assert "<img src=x onerror=alert(1)>" in details.text()


def test_student_report_in_chromium(chromium: Chromium, result, tmp_path):
    files = write_reports(result, tmp_path / "out")
    dom = chromium.dump_dom(files["student_html"])
    doc = parse(dom)
    shown = [c for c in result.checks if c.visibility == "visible"]
    for c in shown:
        assert c.status in doc.find("tr", id=f"check-{c.id}").classes
    assert len(doc.find_all("tr", cls="check")) == len(shown) == 6
    for secret in ("check-accuracy", "reaches 70%", "claimed_trend", "secret threshold", "rerun_writes_checkpoint",
                   "DONE-MARKER", "local process", "evaluate 2"):  # fmt: skip
        assert secret not in dom
    assert not doc.find_all("details") and not doc.find_all("figure")  # output and hidden plots withheld
    assert "2 more check(s) worth 30 points are graded later" in squash(doc.text())
    # the headline is the visible checks' sum; the total and the penalty in points would reveal the hidden ones
    assert "visible checks 52.5 / 70" in squash(doc.find("header").text())
    score = squash(doc.find("section", id="score").text())
    assert "−20%" in score and "16.5" not in score and "not graded yet" in score


def test_report_screenshot(chromium: Chromium, result, tmp_path):
    files = write_reports(result, tmp_path / "out")
    png = chromium.screenshot(files["html"], tmp_path / "report.png", 1280, 2400)
    hist = assert_screenshot(png, (1280, 2400), {
        "passed": STATUS_COLORS["passed"], "partial": STATUS_COLORS["partial"], "failed": STATUS_COLORS["failed"],
    })  # fmt: skip
    # the confusion matrix: airplane's diagonal cell (955 of 1000), shaded by its share of the row
    assert count_near(hist, rgb(heat(0.955)), tol=3) >= 300


@pytest.mark.slow
def test_real_exp1_result_in_chromium(chromium: Chromium, course, tmp_path):
    folder = course.examples_dir("exp1") / "lr-too-high"
    result = grade(course, "exp1", folder, mode="grade")
    files = write_reports(result, tmp_path / "out")
    doc = parse(chromium.dump_dom(files["html"]))
    assert squash(doc.find("title").text()).endswith(f"{result.score:g} / {result.max_score:g}")
    statuses = {c.id: c.status for c in result.checks}
    assert statuses["model_fits_target"] == "failed" and statuses["f_reference_values"] == "passed"
    for c in result.checks:
        row = doc.find("tr", id=f"check-{c.id}")
        assert c.status in row.classes and c.name in squash(row.text())
    assert "normalized MSE" in doc.find("tr", id="check-model_fits_target").find("pre").text()
    env = squash(doc.find("section", id="environment").text())
    assert result.environment.python in env and "local process" in env
    student = parse(chromium.dump_dom(files["student_html"]))
    assert len(student.find_all("tr", cls="check")) == len(result.visible_to_student()) < len(result.checks)


# --- the class summary ----------------------------------------------------------------------------------------


def exp2_spec() -> AssignmentSpec:
    names = ["architecture", "gradients_flow", "training_step", "lr_schedule", "checkpoint_resume",
             "evaluation_loop", "accuracy", "claimed_trend"]  # fmt: skip
    points = [15, 10, 15, 10, 10, 10, 20, 10]
    return AssignmentSpec(
        id="exp2",
        title="exp2: ResNet20 on CIFAR-10",
        files=[FileSpec(name="exp2.py", max_kb=64), FileSpec(name="final.pth", max_kb=8192)],
        checks=[CheckSpec(id=n, name=f"the {n} check", points=p, visibility="hidden" if n in ("accuracy",
                "claimed_trend") else "visible") for n, p in zip(names, points, strict=True)],  # fmt: skip
        rubric=[RubricItem(id="report", name="Written report", points=20)],
        late=LatePolicy(due=DUE, penalty_per_day=0.1, grace_minutes=15, max_days=7),
    )


def class_rows() -> list[ClassRow]:
    """Eight graded students (one late by 3 days, two with the report ungraded), one missing, one crashed."""
    rows = []
    for k in range(8):
        r = exp2_result(f"s{k:03d}", late_days=3 if k == 5 else 0, rubric=None if k in (2, 6) else 10 + k)
        # half the class gets full marks for the training step, the other half none
        r.checks[2] = check("training_step", 0, 15, "failed") if k % 2 else check("training_step", 15, 15, "passed")
        if k == 7:
            r.checks[0] = check("architecture", 0, 15, "failed")
        rows.append(ClassRow(student=Student(id=f"s{k:03d}", name=f"Student {k}"), result=r, status="graded",
                             duration_s=30.0 + (k * 37) % 11))  # fmt: skip
    rows.append(ClassRow(student=Student(id="s100", name="Absent"), status="missing",
                         problems=["no submission in the export"]))  # fmt: skip
    rows.append(ClassRow(student=Student(id="s101", name="Crashy <b>"), status="crashed", duration_s=600.0,
                         problems=["grading crashed: worker killed"]))  # fmt: skip
    return rows


def test_summary_page_in_chromium(chromium: Chromium, tmp_path):
    spec, rows = exp2_spec(), class_rows()
    path = tmp_path / "summary.html"
    path.write_text(summary_html(spec, rows), encoding="utf-8")
    dom = chromium.dump_dom(path)
    doc = parse(dom)
    assert squash(doc.find("title").text()) == "exp2: ResNet20 on CIFAR-10: class summary"
    cards = squash(doc.find("section", id="overview").text())
    for want in ("10 students", "8 graded", "1 missing", "1 crashed", "1 late submissions"):
        assert want in cards

    # the histogram: one bar per non-empty bin, counting the 8 graded totals
    graded = [r.result for r in rows if r.result]
    hist = doc.find("figure", cls="histogram").find("svg")
    bars = hist.find_all("rect", cls="bar")
    assert sum(int(b.attrs["data-count"]) for b in bars) == 8
    assert len(bars) == sum(1 for n in bin_counts([g.total for g in graded], 0, 120, 10) if n)

    # pass rates, in assignment.toml's order: architecture 7/8, training_step 4/8, the rest 8/8
    rates = [squash(td.text()) for td in doc.find("section", id="checks").find_all("td", cls="pass-rate")]
    assert rates == ["88%", "100%", "50%", "0%", "100%", "100%", "100%", "100%"]
    pass_bars = doc.find("figure", cls="pass-rates").find_all("rect", cls="bar")
    assert [b.attrs["data-value"] for b in pass_bars][:4] == ["0.8750", "1.0000", "0.5000", "0.0000"]

    rubric = squash(doc.find("section", id="rubric").text())
    assert "Written report report 6 2" in rubric  # 6 scored, 2 not graded yet
    late = squash(doc.find("section", id="late").text())
    assert "s005" in late and "10% off per started day" in late

    # the slowest first, linked to their reports; the crashed one has no report to link to
    slow = doc.find("section", id="slowest").find("tbody").find_all("tr")
    durations = [float(squash(tr.find("td", cls="duration").text()).removesuffix(" s")) for tr in slow]
    assert durations == sorted(durations, reverse=True) and len(slow) == 9 and durations[0] == 600.0
    assert "s101" in squash(slow[0].text()) and not slow[0].find_all("a")
    slowest_graded = max(rows[:8], key=lambda r: r.duration_s).student.id
    assert slow[1].find("a").attrs["href"] == f"students/{slowest_graded}/report.html"

    students = doc.find("section", id="students").find_all("tr", cls="student")
    assert [squash(tr.find_all("td")[0].text()) for tr in students] == sorted(r.student.id for r in rows)
    links = [a.attrs["href"] for tr in students for a in tr.find_all("a")]
    assert links == [f"students/s{k:03d}/report.html" for k in range(8)]
    assert "Crashy <b>" in doc.text() and not doc.find_all("b")
    assert "grading crashed: worker killed" in squash(doc.find("tr", id="student-s101").text())

    png = chromium.screenshot(path, tmp_path / "summary.png", 1280, 1800)
    assert_screenshot(png, (1280, 1800), {"green bars": "#1a7f37", "amber bar": "#bf8700", "histogram": "#1f77b4"})


def test_summary_links_where_batch_grading_writes_reports():
    rows = [ClassRow(student=Student(id="../../etc/x y"), result=exp2_result("../../etc/x y"), status="graded"),
            ClassRow(student=Student(id="s7"), status="not graded yet")]  # fmt: skip
    page = summary_html(exp2_spec(), rows)
    links = set(re.findall(r'href="([^"]*)"', page))  # the late list and the students table
    assert links == {f"students/{folder_name('../../etc/x y')}/report.html"} and "/../" not in links.pop()
    assert '<span class="badge not-graded-yet">not graded yet</span>' in page
