"""Similarity across a class (grader.similarity, grader similarity OUT): what is flagged and what is not.

Fast tests build their inputs directly. The slow ones compare the generated exp2 class of
tests/similarity/generate.py (planted copies, and honest students who look alike for innocent reasons) and run
`grader similarity` on a real finished batch output.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from grader.similarity import code as code_sim
from grader.similarity import weights as weights_sim
from grader.similarity.compare import Entry, compare_class
from grader.similarity.predictions import agreement_matrix
from grader.similarity.stats import MIN_PAIRS, class_threshold
from grader.spec import AssignmentSpec
from tests.browser import chromium_fixture  # noqa: F401  (the `chromium` fixture)
from tests.similarity.authors import AUTHORS, fill
from tests.similarity.plants import as_notebook, disguise, without_solution_markers

ROOT = Path(__file__).resolve().parent.parent
STUB = (ROOT / "assignments" / "exp2" / "exp2.py").read_text()
SOLUTION = without_solution_markers((ROOT / "examples" / "exp2" / "solution" / "exp2.py").read_text())


# --- the class-relative threshold -------------------------------------------------------------------------------


def test_threshold_is_the_floor_for_a_small_class():
    th = class_threshold([0.1, 0.2, 0.96], floor=0.7)
    assert not th.class_relative and th.threshold == 0.7 and th.z(0.96) is None
    assert th.flags(0.96) and not th.flags(0.69)
    assert "too few" in th.describe("similarity")


def test_threshold_follows_the_class_above_its_floor():
    values = [0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48, 0.97]
    th = class_threshold(values, floor=0.1)
    assert th.class_relative and th.pairs == len(values) == MIN_PAIRS + 1
    assert th.median == pytest.approx(0.40) and th.mad == pytest.approx(0.06)
    assert th.threshold == pytest.approx(0.40 + 3.5 * 0.06 / 0.6745)  # 0.711: far above the floor
    assert th.flags(0.97) and not th.flags(0.70)
    assert th.z(0.97) == pytest.approx(0.6745 * 0.57 / 0.06)
    # A tight class (MAD 0) flags what stands above it, but never below the floor.
    tight = class_threshold([0.5] * 12 + [0.6], floor=0.9)
    assert tight.z(0.6) == math.inf and not tight.flags(0.6) and tight.threshold == 0.9


def test_report_round_trips_infinities():
    from grader.similarity.models import Pair, SimilarityReport

    report = SimilarityReport(assignment="exp2", students=["a", "b"], signals=[],
                              pairs=[Pair(a="a", b="b", weights_ratio=math.inf, code_z=math.inf)])  # fmt: skip
    back = SimilarityReport.model_validate_json(report.model_dump_json())
    assert back.pairs[0].weights_ratio == math.inf and back.pairs[0].code_z == math.inf


# --- code ------------------------------------------------------------------------------------------------------


def _fp(text: str, given: str = STUB) -> code_sim.Fingerprinted:
    return code_sim.fingerprint(code_sim.CodeText(text), code_sim.boilerplate_hashes([given]))


def test_the_untouched_stub_has_no_code_of_its_own():
    assert _fp(STUB).own == 0
    assert _fp(SOLUTION).own > code_sim.MIN_OWN_CODE


def test_renamed_and_reordered_copy_keeps_its_fingerprints_and_independent_authors_do_not_match():
    copied = disguise(SOLUTION)
    assert "def lr_for_epoch(ep: int)" in copied and copied.index("class ResNet20") < copied.index("class BasicBlock")
    prints = {"A": _fp(SOLUTION), "copy": _fp(copied)} | {k: _fp(fill(STUB, v)) for k, v in AUTHORS.items()}
    copy = code_sim.compare(prints["A"], prints["copy"])
    assert copy.score > 0.9, copy
    honest = [code_sim.compare(prints[a], prints[b]).score for a, b in
              [("A", "B"), ("A", "C"), ("A", "D"), ("B", "C"), ("B", "D"), ("C", "D")]]  # fmt: skip
    assert max(honest) < 0.6, honest  # the floor is 0.7


def test_notebooks_are_compared_by_their_code_cells(tmp_path):
    nb = as_notebook(fill(STUB, AUTHORS["B"]))
    (tmp_path / "exp2.ipynb").write_bytes(nb)
    text = code_sim.read_code(tmp_path, ["exp2.py"])
    assert text.files == ["exp2.ipynb"] and not text.problems
    assert "# !pip install torch" in text.text and "Step 2" not in text.text  # magics commented, markdown dropped
    assert "needs_projection = stride > 1" in text.text
    same = code_sim.compare(_fp(text.text), _fp(fill(STUB, AUTHORS["B"])))
    assert same.score > 0.95
    (tmp_path / "exp2.ipynb").write_text("{not json")
    assert "not a notebook" in code_sim.read_code(tmp_path, ["exp2.py"]).problems[0]


def test_code_files_are_read_as_hostile(tmp_path):
    (tmp_path / "exp2.py").symlink_to("/etc/passwd")
    got = code_sim.read_code(tmp_path, ["exp2.py"])
    assert not got.files and "symbolic link" in got.problems[0]


# --- weights ---------------------------------------------------------------------------------------------------


def test_keys_line_up_whatever_the_wrapper():
    sd = {"conv1.weight": torch.ones(2, 2), "bn1.running_mean": torch.zeros(2), "bn1.num_batches_tracked":
          torch.tensor(3), "fc.bias": torch.zeros(2)}  # fmt: skip
    want = {"conv1.weight", "fc.bias"}  # BatchNorm statistics and integers left out
    for wrapped in (sd, {"net": sd, "epoch": 3, "history": {"test_acc": [1.0]}},
                    {f"module.{k}": v for k, v in sd.items()}, {"net": {f"backbone.{k}": v for k, v in sd.items()}}):
        assert set(weights_sim.strip_shared_prefix(weights_sim.flatten(wrapped))) == want


def _w(vector: list[float]) -> weights_sim.Weights:
    return weights_sim.vectorize({"w": torch.tensor(vector)}, {})


def test_weights_ratio_removes_the_shared_start():
    start = _w([10.0, 0.0, 0.0])
    resumed_1, resumed_2 = _w([10.0, 1.0, 0.0]), _w([10.0, 0.0, 1.0])  # each went its own way from the start
    copy = _w([10.0, 1.05, 0.0])  # resumed_1, nudged
    got = weights_sim.compare_group([resumed_1, resumed_2, copy, start], [("pretrain.pth", start)])
    assert got[(0, 1)].ratio == pytest.approx(math.sqrt(2)) and got[(0, 1)].start == "pretrain.pth"
    assert got[(0, 2)].ratio == pytest.approx(0.05) and got[(0, 2)].ratio <= weights_sim.RATIO_MAX
    assert got[(0, 3)].ratio == math.inf  # the start itself: nothing of its own to compare
    # Without the start, the two resumers would look like copies of each other (0.14 of their norm apart).
    assert weights_sim.compare_group([resumed_1, resumed_2], [])[(0, 1)].ratio < weights_sim.RATIO_MAX


def test_weights_are_loaded_only_through_the_guarded_loader(tmp_path):
    model = torch.nn.Linear(2, 2)
    torch.save(model, tmp_path / "final.pth")  # a whole model: read as its state_dict, none of its code run
    w, hashes, problems = weights_sim.read_weights(tmp_path, ["final.pth"], {})
    assert w is not None and not problems and torch.equal(w.vector[2:], model.weight.detach().reshape(-1))  # bias first
    torch.save(os.system, tmp_path / "final.pth")  # no weights in it at all: named, never called
    w, hashes, problems = weights_sim.read_weights(tmp_path, ["final.pth"], {})
    assert w is None and "final.pth" in hashes and problems == ["final.pth holds no floating-point tensors"]


# --- predictions -----------------------------------------------------------------------------------------------


def test_agreement_matrix():
    p = [np.array([0, 1, 2, 3]), np.array([0, 1, 2, 0]), np.array([1, 1, 1, 1]), np.array([0, 1])]
    m = agreement_matrix(p)
    assert m[0, 1] == 0.75 and m[1, 0] == 0.75 and m[0, 2] == 0.25 and math.isnan(m[0, 3])


# --- the spec --------------------------------------------------------------------------------------------------


def test_similarity_spec_names_declared_files_only(course):
    raw = course.spec("exp2").model_dump()
    assert raw["similarity"]["shared_weights"] == ["pretrain_model.pth"]
    assert course.spec("exp2").code_files == ["exp2.py"] and course.spec("exp1").weights_files == ["model.pth"]
    raw["similarity"]["weights"] = ["nope.pth"]
    with pytest.raises(ValidationError, match="similarity.weights names"):
        AssignmentSpec.model_validate(raw)
    raw["similarity"] = {"predictions": "not a hook"}
    with pytest.raises(ValidationError, match="similarity.predictions"):
        AssignmentSpec.model_validate(raw)


# --- the generated class: planted copies, and honest look-alikes ----------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory, data_root):
    from tests.similarity.generate import make_class

    return make_class(tmp_path_factory.mktemp("generated") / "class", data_root)


@pytest.fixture(scope="module")
def comparison(generated):
    from grader.spec import Course

    course = Course(root=ROOT)
    entries = [Entry(p.name, p, generated.predictions.get(p.name)) for p in sorted(generated.folder.iterdir())]
    return compare_class(course.spec("exp2"), course.assignment_dir("exp2"), entries)


@pytest.mark.slow
def test_generated_class_flags_exactly_the_planted_copies(comparison):
    from tests.similarity.generate import EXPECTED

    flagged = {p.key: p.flags for p in comparison.report.flagged}
    assert set(flagged) == set(EXPECTED), {k: v for k, v in flagged.items() if k not in EXPECTED}
    for pair, signal in EXPECTED.items():
        assert signal in flagged[pair], (pair, flagged[pair])
    pairs = {p.key: p for p in comparison.report.pairs}
    # Code: the copies keep nearly all of their source; independent authors share what the assignment dictates.
    assert pairs[("alice", "ivan")].code > 0.9 and pairs[("bob", "peggy")].code > 0.95
    honest_code = [p.code for k, p in pairs.items() if p.code is not None and k not in EXPECTED]
    assert len(honest_code) == 13 and max(honest_code) < 0.6
    code = comparison.report.signal("code")
    assert code.threshold >= 0.7 and sorted(s.split(":")[0] for s in code.not_compared) == [
        "erin", "frank", "grace", "judy", "mallory", "oscar"]  # fmt: skip  (the untouched stub: nothing of their own)
    # Weights: the copy fine-tuned for 50 steps is a small share of its source's travel from pretrain_model.pth
    # away; students who resumed from it with their own seeds are as far apart as each travelled.
    assert pairs[("alice", "mallory")].weights_ratio < 0.35 and pairs[("alice", "mallory")].weights_start == (
        "pretrain_model.pth")
    for honest in [("carol", "dave"), ("carol", "ivan"), ("dave", "ivan"), ("alice", "bob")]:
        assert pairs[honest].weights_ratio > 0.9, (honest, pairs[honest].weights_ratio)
    assert pairs[("erin", "frank")].weights_ratio > 0.7  # independent trainings from different seeds
    assert pairs[("grace", "oscar")].weights_ratio > 0.6  # permuted units: the weights no longer look alike...
    assert pairs[("grace", "oscar")].agreement > 0.99  # ...the predictions do
    assert pairs[("bob", "judy")].identical == ["final.pth"] and pairs[("bob", "judy")].weights_ratio == 0
    # Predictions: honest resumers agree a lot (the shared start), but well under the floor.
    assert 0.7 < pairs[("carol", "dave")].agreement < 0.93 and pairs[("alice", "mallory")].agreement < 0.95
    assert comparison.report.signal("weights").not_compared == ["peggy: no final.pth"]


@pytest.mark.slow
def test_generated_class_outputs(comparison, generated, course, tmp_path):
    from grader.batch.similarity import pairs_csv, write_outputs

    out = tmp_path / "out"
    out.mkdir()
    written = write_outputs(out, course.spec("exp2"), comparison)
    assert set(written) == {"similarity", "similarity_csv", "similarity_views"}
    rows = list(csv.DictReader((out / "similarity.csv").open(encoding="utf-8")))
    assert len(rows) == len(comparison.report.pairs)
    flagged = {(r["student_a"], r["student_b"]): r["flagged"] for r in rows if r["flagged"]}
    assert flagged == {("alice", "ivan"): "code", ("bob", "peggy"): "code", ("alice", "mallory"): "weights",
                       ("grace", "oscar"): "predictions", ("bob", "judy"): "identical;weights;predictions"}  # fmt: skip
    assert [r["flagged"] != "" for r in rows][: len(flagged)] == [True] * len(flagged)  # flagged pairs first
    assert pairs_csv(comparison.report) == (out / "similarity.csv").read_text(encoding="utf-8")
    # Side-by-side pages: both flagged code pairs, and the closest 5 that were not flagged.
    pages = sorted(p.name for p in (out / "similarity").iterdir())
    assert "alice--ivan.html" in pages and "bob--peggy.html" in pages and len(pages) == 7
    page = (out / "similarity" / "alice--ivan.html").read_text()
    assert "<script" not in page and "Content-Security-Policy" in page
    assert page.count('<a class="m c') >= 10 and 'href="#b1"' in page
    saved = json.loads((out / "similarity.json").read_text())
    assert saved["assignment"] == "exp2" and len(saved["pairs"]) == len(rows)


# --- a real batch: grader batch, then grader similarity OUT -----------------------------------------------------


def _cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "GRADER_SANDBOX": "local", "COLUMNS": "200"})  # fmt: skip


@pytest.fixture(scope="module")
def real_batch(tmp_path_factory, data_root):
    """exp2 graded for real: the bundled solution, lr-off-by-one (the solution's code with one change), an
    exact copy of the solution, and the untouched stub."""
    tmp = tmp_path_factory.mktemp("batch")
    subs = tmp / "class"
    for name in ("solution", "lr-off-by-one", "stub"):
        shutil.copytree(ROOT / "examples" / "exp2" / name, subs / name)
    shutil.copytree(ROOT / "examples" / "exp2" / "solution", subs / "copycat")
    out = tmp / "out"
    r = _cli("batch", "exp2", str(subs), "--out", str(out), "--data-root", str(data_root), "-j", "1")
    assert r.returncode == 0, r.stderr
    return subs, out


REAL_FLAGS = {("copycat", "lr-off-by-one"): ["code"], ("copycat", "solution"): ["code", "identical", "weights",
              "predictions"], ("lr-off-by-one", "solution"): ["code"]}  # fmt: skip


@pytest.mark.slow
def test_similarity_on_a_finished_batch(real_batch, data_root):
    from grader.data import read_cifar10

    subs, out = real_batch
    # The batch kept the judge's predictions: 10,000 classes per measured final.pth, none for the stub.
    kept = {p.stem: np.load(p) for p in (out / ".state" / "predictions").glob("*.npy")}
    assert set(kept) == {"solution", "lr-off-by-one", "copycat"}
    _, labels = read_cifar10(data_root, train=False)
    accuracy = {s: float((kept[s] == labels.numpy()).mean()) for s in kept}
    assert accuracy["solution"] == pytest.approx(0.7993) and accuracy["lr-off-by-one"] == pytest.approx(0.8082)
    assert "similarity" not in (out / "summary.html").read_text().split("<!-- similarity -->")[1].split("<!--")[0]

    r = _cli("similarity", str(out))
    assert r.returncode == 0, r.stderr
    assert "3 flagged of 3 pairs" in r.stdout
    report = json.loads((out / "similarity.json").read_text())
    assert {(p["a"], p["b"]): p["flags"] for p in report["pairs"] if p["flags"]} == REAL_FLAGS
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert pairs[("lr-off-by-one", "solution")]["agreement"] == pytest.approx(0.8859, abs=2e-3)
    assert 1.2 < pairs[("lr-off-by-one", "solution")]["weights_ratio"] < 1.5
    signals = {s["signal"]: s for s in report["signals"]}
    assert "stub: 0 characters of code beyond the given stub" in signals["code"]["not_compared"][0]
    assert "too few" in signals["code"]["rule"]  # 3 pairs: the floor decides
    summary = (out / "summary.html").read_text()
    section = summary.split("<!-- similarity -->")[1].split("<!-- /similarity -->")[0]
    assert section.count('<tr class="pair">') == 3 and "similarity/copycat--solution.html" in section
    assert (out / "similarity" / "copycat--solution.html").is_file()
    rows = list(csv.DictReader((out / "similarity.csv").open(encoding="utf-8")))
    assert [r["flagged"] for r in rows] == ["code;identical;weights;predictions", "code", "code"]

    # A rerun with --similarity grades nothing again and keeps the section; a changed submission makes the
    # saved report stale, which summary.html then says instead of showing old pairs.
    r = _cli("batch", "exp2", str(subs), "--out", str(out), "--data-root", str(data_root), "--similarity")
    assert r.returncode == 0, r.stderr
    batch = json.loads((out / "batch.json").read_text())
    assert batch["skipped_unchanged"] == 4 and "similarity_csv" in batch["outputs"]
    assert batch["folders"] == {n: n for n in ("copycat", "lr-off-by-one", "solution", "stub")}
    assert (out / "summary.html").read_text().count('<tr class="pair">') == 3
    (subs / "stub" / "exp2.py").write_text((subs / "stub" / "exp2.py").read_text() + "\n# edited\n")
    r = _cli("batch", "exp2", str(subs), "--out", str(out), "--data-root", str(data_root))
    assert r.returncode == 0, r.stderr
    summary = (out / "summary.html").read_text()
    assert "similarity.json is out of date" in summary and '<tr class="pair">' not in summary


@pytest.mark.slow
def test_similarity_cli_refuses_what_is_not_a_batch(tmp_path):
    r = _cli("similarity", str(tmp_path))
    assert r.returncode == 2 and "batch.json" in r.stderr
    r = _cli("similarity", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such folder" in r.stderr


# --- the pages in a browser -------------------------------------------------------------------------------------


def test_side_by_side_escapes_hostile_code_without_a_browser(tmp_path):
    from grader.report.similarity_html import side_by_side
    from grader.similarity.compare import CodeView
    from grader.similarity.models import Pair

    hostile = '</pre><script>alert("pwned")</script>\n' + SOLUTION
    fa, fb = _fp(hostile), _fp(disguise(SOLUTION) + "\n# <img src=x onerror=alert(1)>\n")
    m = code_sim.compare(fa, fb)
    to_b, to_a = code_sim.partners(fa, fb, m)
    view = CodeView("<b>mallory</b>", "ivan", hostile, fb.code.text, m.slices_a, m.slices_b, to_b, to_a)
    page = side_by_side(view, Pair(a="<b>mallory</b>", b="ivan", code_shares=(m.share_a, m.share_b)), "exp2")
    assert "<script" not in page and "<img" not in page and "<b>mallory" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;mallory&lt;/b&gt;" in page
    assert sum(t >= 0 for t in to_b) >= 0.9 * len(to_b)  # nearly every region of a has its counterpart in b


@pytest.mark.slow
def test_pages_in_chromium(chromium, real_batch, tmp_path):
    from tests.test_html_reports import parse

    _, out = real_batch
    assert _cli("similarity", str(out)).returncode == 0  # current whatever ran before: the section is in place
    summary = parse(chromium.dump_dom(out / "summary.html"))
    section = summary.find("section", id="similarity")
    rows = section.find_all("tr", cls="pair")
    assert len(rows) == 3 and "copycat" in rows[0].text() and "identical file" in rows[0].text()
    assert not summary.find_all("script")
    assert [f for f in section.find_all("figure") if "similarity-predictions" in f.classes]
    links = [a.attrs["href"] for a in section.find_all("a") if a.attrs.get("href", "").startswith("similarity/")]
    assert sorted(links) == ["similarity/copycat--lr-off-by-one.html", "similarity/copycat--solution.html",
                             "similarity/lr-off-by-one--solution.html"]  # fmt: skip
    view = parse(chromium.dump_dom(out / "similarity" / "lr-off-by-one--solution.html"))
    marks_a = view.find("div", cls="a").find_all("a", cls="m")
    marks_b = view.find("div", cls="b").find_all("a", cls="m")
    assert marks_a and marks_b and all(m.attrs["href"].startswith("#b") for m in marks_a if "href" in m.attrs)
    assert "lr_for_epoch" in view.find("div", cls="a").text()
    png = chromium.screenshot(out / "similarity" / "lr-off-by-one--solution.html", tmp_path / "view.png")
    assert png.stat().st_size > 10_000
