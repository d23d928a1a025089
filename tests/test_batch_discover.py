"""Finding a class's submissions: the accepted layouts, hostile zips, and matching to the roster."""

from __future__ import annotations

import re
import stat
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from grader.batch.discover import MAX_UNPACKED, discover
from grader.batch.models import Found
from grader.batch.roster import RosterError, folder_name, match, read_roster

ROOT = Path(__file__).resolve().parent.parent
EXP1 = ROOT / "examples" / "exp1" / "solution"


def _files(prefix: str) -> dict[str, bytes]:
    return {f"{prefix}{p.name}": p.read_bytes() for p in EXP1.iterdir() if p.is_file()}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_folder_of_folders_and_zips(tmp_path):
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    for name, data in _files("").items():
        (subs / "alice" / name).write_bytes(data)
    _zip(subs / "bob.zip", _files("bob-exp1/"))  # a zipped folder: descended into
    (subs / "notes.txt").write_text("hi")
    (subs / "broken.zip").write_bytes(b"PK not really")
    d = discover(subs, tmp_path / "work")
    assert [f.key for f in d.found] == ["alice", "bob"]
    bob = d.found[1]
    assert (bob.folder / "exp1.py").is_file() and bob.folder.name == "bob-exp1"
    assert any("broken.zip: not a readable zip" in p for p in d.problems)
    assert any("notes.txt: neither a student folder nor a .zip" in p for p in d.problems)
    assert all(f.submitted_at is None for f in d.found)  # file times are not trusted for the late policy


def test_zips_whose_names_differ_only_outside_ascii_keep_their_own_files(tmp_path):
    """张三.zip and 李四.zip: each unpacked into a folder of its own (both names are `__` in safe characters), and
    a zip of student folders with such names likewise."""
    subs = tmp_path / "subs"
    subs.mkdir()
    for who in ("张三", "李四"):
        folder = f"2023_{who}_exp1"
        _zip(subs / f"{who}.zip", {f"{folder}/exp1.py": f"# {who}\n".encode(), f"{folder}/model.pth": b"x"})
    d = discover(subs, tmp_path / "work")
    assert [f.key for f in d.found] == ["张三", "李四"] and len({f.folder for f in d.found}) == 2
    assert [(f.folder / "exp1.py").read_text(encoding="utf-8") for f in d.found] == ["# 张三\n", "# 李四\n"]
    both = _zip(tmp_path / "class.zip", {f"{who}/exp1.py": f"# {who}\n".encode() for who in ("张三", "李四")})
    d = discover(both, tmp_path / "work2")
    assert sorted((f.folder / "exp1.py").read_text(encoding="utf-8") for f in d.found) == ["# 张三\n", "# 李四\n"]


def test_gradescope_export(tmp_path):
    meta = """
submission_111:
  :submitters:
  - :name: Alice Liddell
    :sid: '1001'
    :email: alice@example.edu
  :created_at: 2026-10-13 10:00:00.123456000 +08:00
  :score: 0.0
submission_222:
  :submitters:
  - :name: Bob
    :sid: '1002'
    :email: bob@example.edu
  :created_at: 2026-10-11 20:00:00 +08:00
"""
    members = {"assignment_9_export/submission_metadata.yml": meta.encode()}
    members |= _files("assignment_9_export/submission_111/")
    members |= _files("assignment_9_export/submission_222/")
    d = discover(_zip(tmp_path / "export.zip", members), tmp_path / "work")
    assert d.kind == "Gradescope export"
    alice, bob = d.found
    assert (alice.key, alice.name, alice.email) == ("1001", "Alice Liddell", "alice@example.edu")
    assert alice.submitted_at == datetime(2026, 10, 13, 2, 0, 0, 123456, tzinfo=timezone.utc)
    assert alice.submitted_at_source == "Gradescope metadata"
    assert (alice.folder / "model.pth").is_file()
    assert bob.key == "1002"


def test_canvas_and_moodle_exports(tmp_path):
    canvas = {f"liddellalice_LATE_4242_777_{name}": data for name, data in _files("").items()}
    d = discover(_zip(tmp_path / "canvas.zip", canvas), tmp_path / "w1")
    assert d.kind == "Canvas export"
    assert [f.key for f in d.found] == ["4242"] and "LATE" in d.found[0].source
    assert sorted(p.name for p in d.found[0].folder.iterdir()) == sorted(_files(""))
    moodle = _files("Alice Liddell_31_assignsubmission_file_/")
    d = discover(_zip(tmp_path / "moodle.zip", moodle), tmp_path / "w2")
    assert d.kind == "Moodle export"
    assert (d.found[0].key, d.found[0].name) == ("31", "Alice Liddell")


def test_lms_layouts_as_instructors_download_them(tmp_path):
    """A hyphenated Canvas name and a stray file, a re-upload, an online-text folder beside Moodle's file folder,
    Blackboard's attempts and receipts, GitHub Classroom clones, and a student who uploaded their folder zipped."""
    canvas = {f"ohara-smithmary_4242_777_{n}": d for n, d in _files("").items()}
    canvas |= {"liddellalice_5151_100_exp1.py": b"# first upload\n", "liddellalice_5151_200_exp1.py": b"# newer\n",
               "README.txt": b"exported by Canvas"}  # fmt: skip
    d = discover(_zip(tmp_path / "canvas.zip", canvas), tmp_path / "w1")
    assert d.kind == "Canvas export" and [f.key for f in d.found] == ["4242", "5151"]
    assert (d.found[1].folder / "exp1.py").read_bytes() == b"# newer\n"
    assert any("Canvas user 5151 has exp1.py twice; graded the newer upload" in p for p in d.problems)
    assert any("README.txt is not named as a Canvas export names files; ignored" in p for p in d.problems)

    moodle = _files("Alice Liddell_31_assignsubmission_file_/")
    moodle["Alice Liddell_31_assignsubmission_onlinetext_/onlinetext.html"] = b"<p>see my files</p>"
    d = discover(_zip(tmp_path / "moodle.zip", moodle), tmp_path / "w2")
    assert [f.key for f in d.found] == ["31"]
    assert {p.name for p in d.found[0].folder.iterdir()} == {*_files(""), "onlinetext.html"}

    stamp = "Exp1_alice_attempt_2026-11-30-10-00-00"
    board = {f"{stamp}.txt": b"receipt", **{f"{stamp}_{n}": d for n, d in _files("").items()},
             "Exp1_bob_attempt_2026-11-29-09-00-00_exp1.py": b"# old\n",
             "Exp1_bob_attempt_2026-11-30-09-00-00_exp1.py": b"# last\n"}  # fmt: skip
    d = discover(_zip(tmp_path / "board.zip", board), tmp_path / "w3")
    assert d.kind == "Blackboard export" and [f.key for f in d.found] == ["alice", "bob"]
    assert sorted(p.name for p in d.found[0].folder.iterdir()) == sorted(_files(""))  # no receipt
    assert (d.found[1].folder / "exp1.py").read_bytes() == b"# last\n"
    assert any("attempt 2026-11-29-09-00-00 is not graded" in p for p in d.problems)

    classroom = tmp_path / "classroom"
    for login in ("doejane", "wang-wei"):
        (classroom / f"exp1-{login}" / ".git").mkdir(parents=True)
        (classroom / f"exp1-{login}" / "exp1.py").write_text("# mine\n")
    d = discover(classroom, tmp_path / "w4")
    assert d.kind == "GitHub Classroom clones" and [f.key for f in d.found] == ["doejane", "wang-wei"]

    zipped = tmp_path / "zipped" / "carol"
    zipped.mkdir(parents=True)
    _zip(zipped / "exp1_submission.zip", _files("exp1/"))
    (d,) = discover(zipped.parent, tmp_path / "w5").found
    assert sorted(p.name for p in d.folder.iterdir()) == sorted(_files(""))


def test_canvas_names_are_split_at_the_ids_not_the_first_underscore(tmp_path):
    """A sortable name holding '_', a file name holding '_<digits>_', LATE as Canvas writes it and lowercased."""
    canvas = {f"o_brien_mary_4242_777_{n}": d for n, d in _files("").items()}
    canvas |= {"smithjo_late_5151_100_exp1.py": b"# late\n", "doejane_LATE_6161_300_run_1_2.py": b"# mine\n"}
    d = discover(_zip(tmp_path / "canvas.zip", canvas), tmp_path / "w")
    assert d.kind == "Canvas export" and d.problems == []
    assert [(f.key, f.name, "LATE" in f.source) for f in d.found] == [
        ("4242", "o_brien_mary", False), ("5151", "smithjo", True), ("6161", "doejane", True)]  # fmt: skip
    assert sorted(p.name for p in d.found[0].folder.iterdir()) == sorted(_files(""))
    assert [p.name for p in d.found[2].folder.iterdir()] == ["run_1_2.py"]


def test_a_canvas_export_graded_anonymously(tmp_path):
    """Canvas names each student by an anonymous id (letters and digits), which its gradebook import rejects."""
    canvas = {f"anonymous_ab1cd_777_{n}": d for n, d in _files("").items()}
    canvas |= {"anonymous_LATE_Zq9xK_778_exp1.py": b"# late\n", "anonymous_Zq9xK_779_2024_notes.md": b"notes\n"}
    d = discover(_zip(tmp_path / "anon.zip", canvas), tmp_path / "w")
    assert d.kind == "Canvas export"
    assert [(f.key, f.name) for f in d.found] == [("Zq9xK", ""), ("ab1cd", "")]
    assert "Canvas anonymous submission Zq9xK (Canvas marked it LATE)" in d.found[0].source
    assert sorted(p.name for p in d.found[0].folder.iterdir()) == ["2024_notes.md", "exp1.py"]
    (note,) = d.problems
    assert "2 submission(s) are known only by Canvas's anonymous ids" in note
    assert "download the submissions again" in note


def test_blackboard_receipts_are_read_not_reported(tmp_path):
    """Each attempt's receipt is part of the export: it names the student (and so shows where a username holding
    '_' starts), and is never a stray file."""
    receipt = (b"Name: Alice Liddell (alice_l)\nAssignment: Exp 1_a\n"
               b"Date Submitted: Monday, November 30, 2026 10:00:00 AM CST\n")  # fmt: skip
    board = {"Exp 1_a_alice_l_attempt_2026-11-30-10-00-00.txt": receipt,
             "Exp 1_a_alice_l_attempt_2026-11-30-10-00-00_exp1.py": b"# mine\n",
             "Exp 1_a_bob_attempt_2026-11-30-09-00-00.txt": b"\xff\xfe not a receipt",
             "Exp 1_a_bob_attempt_2026-11-30-09-00-00_exp1.py": b"# bob\n"}  # fmt: skip
    d = discover(_zip(tmp_path / "board.zip", board), tmp_path / "w")
    assert d.kind == "Blackboard export" and d.problems == []
    assert [(f.key, f.name) for f in d.found] == [("alice_l", "Alice Liddell"), ("bob", "")]
    assert [p.name for p in d.found[0].folder.iterdir()] == ["exp1.py"]
    assert all(f.submitted_at is None for f in d.found)  # its time zone is an ambiguous abbreviation


def test_hostile_zips_are_refused_one_by_one(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    _zip(subs / "slip.zip", {"../../escaped.txt": b"x"})
    with zipfile.ZipFile(subs / "link.zip", "w") as zf:
        info = zipfile.ZipInfo("exp1.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with zipfile.ZipFile(subs / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.pth", b"\0" * 1024)
    # Make the central directory claim far more than allowed, like a zip bomb's declared size.
    raw = bytearray((subs / "bomb.zip").read_bytes())
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (MAX_UNPACKED + 1).to_bytes(4, "little")
    (subs / "bomb.zip").write_bytes(bytes(raw))
    _zip(subs / "good.zip", _files(""))
    d = discover(subs, tmp_path / "work")
    assert [f.key for f in d.found] == ["good"]
    text = "\n".join(d.problems)
    assert "slip.zip: unsafe zip (entry '../../escaped.txt' points outside the archive)" in text
    assert "link.zip: unsafe zip (entry 'exp1.py' is a symbolic link)" in text
    assert "bomb.zip: unsafe zip" in text and "MiB unpacked" in text
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "work" / "escaped.txt").exists()


def test_missing_input_is_a_problem_not_a_crash(tmp_path):
    d = discover(tmp_path / "nope", tmp_path / "work")
    assert d.found == [] and "no such file or folder" in d.problems[0]


def _found(key: str, when: str | None = None, email: str = "") -> Found:
    at = datetime.fromisoformat(when) if when else None
    return Found(key=key, source=f"src/{key}/{when}", folder=Path("/x"), submitted_at=at, email=email)


def test_roster_matching_reports_unknown_duplicate_and_missing(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("\ufeffStudent_ID,Name,Email,Aliases,submitted_at\n"
                      "s1,Alice,alice@x.edu,4242;alice-gh,2026-10-11T20:00:00+08:00\n"
                      "s2,Bob,bob@x.edu,,\n"
                      "s3,Carol,,,yesterday\n"
                      "s1,Again,,,\n"
                      ",Nobody,,,\n", encoding="utf-8")  # fmt: skip
    students, problems = read_roster(roster)
    assert [s.id for s in students] == ["s1", "s2", "s3"]
    assert any(":4: submitted_at 'yesterday' is not an ISO 8601 time" in p for p in problems)
    assert any(":5: id 's1' repeats an earlier row" in p for p in problems)
    assert any(":6: empty id" in p for p in problems)
    found = [_found("4242"), _found("x", email="BOB@x.edu"), _found("zed"),
             _found("s2", "2026-10-12T00:00:00+00:00")]  # fmt: skip
    m = match(found, students)
    graded = {g.student.id: g.found for g in m.graded}
    assert set(graded) == {"s1", "s2", "zed"}
    assert graded["s1"].submitted_at_source == "roster CSV"  # the roster's LMS time wins
    assert graded["s2"].key == "s2"  # the newer of Bob's two submissions
    assert [d.found.key for d in m.duplicates] == ["x"]
    assert [s.id for s in m.missing] == ["s3"]
    assert any("'zed' is not on the roster" in p for p in m.problems)
    assert any("another submission of 's2'" in p for p in m.problems)


def test_the_roster_time_does_not_decide_which_submission_is_newer(tmp_path):
    """The roster's submitted_at is the student's one time: it goes to the submission graded, and two submissions
    without times of their own are reported as undecided, never called newer by folder order."""
    roster = tmp_path / "roster.csv"
    roster.write_text("id,aliases,submitted_at\ns1,4242;alice-gh,2026-10-11T20:00:00+08:00\ns2,,\n")
    students, problems = read_roster(roster)
    assert problems == []
    m = match([_found("4242"), _found("alice-gh")], students)
    (kept,) = m.graded
    assert kept.found.key == "alice-gh" and kept.found.submitted_at_source == "roster CSV"
    assert [d.found.submitted_at for d in m.duplicates] == [None]
    (why,) = m.problems
    assert why.startswith("src/4242/None: another submission of 's1' (src/alice-gh/None) comes later in the input")
    assert "which is newer is unknown" in why and "cannot order them" in why and "remove the other" in why
    assert "'4242' and 'alice-gh' both lead to 's1'" in why

    times = [_found("s2", "2026-10-12T00:00:00+00:00"), _found("s2", "2026-10-11T00:00:00+00:00")]
    m = match(times, students)  # the newer is graded, wherever it is in the input
    assert m.graded[0].found.submitted_at == datetime(2026, 10, 12, tzinfo=timezone.utc)
    assert "is newer; this one is not graded" in m.problems[0]
    m = match([_found("s2", "2026-10-12T00:00:00+00:00"), _found("s2", "2026-10-12T08:00:00+08:00")], students)
    assert "which is newer is unknown (they carry the same time, 2026-10-12T00:00:00+00:00)" in m.problems[0]


def test_a_key_two_roster_rows_share_is_reported_with_both_lines(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("id,email,aliases\n"
                      "s1,ann@x.edu,s2;gh-ann\n"
                      "s2,,\n"
                      "s3,ANN@x.edu,gh-ann\n")  # fmt: skip
    students, problems = read_roster(roster)
    assert problems == [
        f"{roster}:2: alias 's2' of 's1' is also the id of 's2' (line 3), so a submission under 's2' goes to 's2'; "
        "remove it from the row it does not belong to",
        f"{roster}:4: alias 'gh-ann' of 's3' is also the alias of 's1' (line 2), so a submission under 'gh-ann' "
        "goes to 's1'; remove it from the row it does not belong to",
        f"{roster}:4: email 'ann@x.edu' of 's3' is also the email of 's1' (line 2), so a submission under "
        "'ann@x.edu' goes to 's1'; remove it from the row it does not belong to",
    ]
    m = match([_found("s2"), _found("gh-ann")], students)
    assert {g.student.id: g.found.key for g in m.graded} == {"s1": "gh-ann", "s2": "s2"}  # an id is its own


def test_roster_without_id_column_is_an_error(tmp_path):
    (tmp_path / "r.csv").write_text("name,email\nA,a@x\n")
    with pytest.raises(RosterError, match="no id column; the header needs one of id, student_id, sid"):
        read_roster(tmp_path / "r.csv")


def test_folder_names_are_safe_and_distinct():
    assert folder_name("s1") == "s1"
    odd = [folder_name(i) for i in ("../etc", "a/b", "a_b", ".hidden", "a b")]
    assert all("/" not in n and not n.startswith(".") for n in odd)
    assert len(set(odd)) == len(odd) and folder_name("a/b") != folder_name("a_b")


def _patch_entries(path: Path, edit) -> None:
    """Edit every local and central header of a zip in place: edit(raw, offset, central)."""
    raw = bytearray(path.read_bytes())
    for sig, central in ((b"PK\x03\x04", False), (b"PK\x01\x02", True)):
        at = raw.find(sig)
        while at != -1:
            edit(raw, at, central)
            at = raw.find(sig, at + 4)
    path.write_bytes(bytes(raw))


def test_zips_that_cannot_be_unpacked_never_stop_the_batch(tmp_path):
    """Encrypted entries, an unknown compression method, corrupt data: one problem line each, the rest graded."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _zip(subs / "alice.zip", _files(""))
    _zip(subs / "enc.zip", _files(""))
    _patch_entries(subs / "enc.zip", lambda raw, at, central: raw.__setitem__(at + (8 if central else 6),
                                                                                raw[at + (8 if central else 6)] | 1))
    _zip(subs / "method.zip", _files(""))  # compression method 99 (AES in WinZip's scheme), unknown to zipfile
    _patch_entries(subs / "method.zip", lambda raw, at, central: raw.__setitem__(
        slice(at + (10 if central else 8), at + (12 if central else 10)), (99).to_bytes(2, "little")))
    with zipfile.ZipFile(subs / "corrupt.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("exp1.py", b"x = 1\n" * 5000)
    raw = bytearray((subs / "corrupt.zip").read_bytes())
    raw[60:90] = b"\xff" * 30  # inside the deflate stream
    (subs / "corrupt.zip").write_bytes(bytes(raw))

    d = discover(subs, tmp_path / "work")

    assert [f.key for f in d.found] == ["alice"]
    problems = "\n".join(d.problems)
    assert re.search(r"enc\.zip: unsafe zip \(entry '[\w.]+' is encrypted: zip the files again without a password",
                     problems), problems
    assert re.search(r"method\.zip: unsafe zip \(entry '[\w.]+' uses a compression method the grader cannot read",
                     problems), problems
    assert re.search(r"corrupt\.zip: unsafe zip \(entry 'exp1\.py' is damaged \(\w+", problems), problems


def test_an_export_zip_with_unreadable_entries(tmp_path):
    members = {"alice/exp1.py": b"x = 1\n", "bob/exp1.py": b"y = 2\n"}
    _zip(tmp_path / "export.zip", members)
    raw = bytearray((tmp_path / "export.zip").read_bytes())
    at = raw.find(b"PK\x01\x02", raw.find(b"PK\x01\x02") + 4)  # bob's central entry: encrypted
    raw[at + 8] |= 1
    (tmp_path / "export.zip").write_bytes(bytes(raw))
    d = discover(tmp_path / "export.zip", tmp_path / "work")
    assert [f.key for f in d.found] == ["alice"]
    assert any("bob/: unsafe (entry 'bob/exp1.py' is encrypted" in p or "bob/: unsafe (entry 'exp1.py' is encrypted"
               in p for p in d.problems), d.problems  # fmt: skip


def test_resume_fingerprint_covers_the_reference_model(course_copy):
    """Editing solutions/<id>/<module>.py (the reference model checks load) regrades the class on resume."""
    from grader.batch.state import grader_fingerprint

    c = course_copy("exp1")
    before = grader_fingerprint(c, c.spec("exp1"))
    reference = c.solution_dir("exp1") / "exp1.py"
    reference.write_text(reference.read_text() + "\n# a changed reference\n")
    assert grader_fingerprint(c, c.spec("exp1")) != before


def test_a_zip_over_the_cap_names_its_largest_entries(tmp_path, monkeypatch):
    """A student who zipped their dataset with the work hears which entries to leave out, not just a size."""
    from grader.batch import discover as discover_module
    from grader.batch.discover import UnsafeZip, unpacked

    monkeypatch.setattr(discover_module, "MAX_UNPACKED", 4096)  # 512 MiB in real use
    sub = tmp_path / "hw3.zip"
    with zipfile.ZipFile(sub, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hw3/exp1.py", "print('exp1')\n")
        zf.writestr("hw3/data/train.npy", b"\0" * 3 * 2**20)
    with pytest.raises(UnsafeZip) as caught, unpacked(sub):
        pass
    assert str(caught.value) == (
        f"{sub}: refused (3 MiB unpacked (at most 0 MiB); the largest entries are hw3/data/train.npy (3 MiB), "
        "hw3/exp1.py (0 MiB): leave datasets and other files the assignment does not ask for out); nothing was graded")
