"""Find a class's submissions in what an instructor downloaded, and unpack them safely.

Accepted inputs (`discover` picks by looking, in this order):
    Gradescope export  a zip (or its unpacked folder) with submission_metadata.yml and submission_<id>/ folders
    Canvas export      a zip of flat files named <name>[_LATE]_<user id>_<attachment id>_<file name> (the name is
                       Canvas's lowercased sortable name and may hold '_'), or anonymous[_LATE]_<anonymous id>_...
                       when the assignment is graded anonymously
    Moodle export      a zip of folders named <Full Name>_<participant id>_assignsubmission_file_/ (and
                       ..._onlinetext_/, merged into the same student's)
    Blackboard export  a zip of flat files named <assignment>_<username>_attempt_<time>_<file name>, and each
                       attempt's receipt (<...>_attempt_<time>.txt, which names the student); the last attempt
                       is graded
    folder of folders  one folder per student, named by student id; GitHub Classroom's <assignment>-<login>
                       clones are named by login
    folder of zips     one <student id>.zip per student (may be mixed with folders)
    nbgrader exchange  a course folder holding submitted/, or submitted/ itself: submitted/<student>/<assignment>/
                       (nbgrader's timestamp.txt is written on the student's machine, so it is not used)
A notebook may stand in for a .py file wherever the assignment allows it (intake finds it in any of these).
Submission times come only from where a student cannot set them: Gradescope's metadata, or a `submitted_at`
column in the roster (file and zip entry times are the student's or the download's, so the late policy ignores
them). A zip is never trusted: no absolute paths or '..', no links, and caps on members and unpacked bytes. A problem
with one submission is reported against it and never stops the others.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import yaml
from pydantic import BaseModel, Field

from grader.batch.models import Found

JUNK = {"__MACOSX", ".DS_Store", "Thumbs.db", ".git", ".ipynb_checkpoints"}
MAX_MEMBERS = 2_000  # per submission; a course submission has a handful of files
MAX_UNPACKED = 512 * 1024 * 1024  # bytes per export or per student zip; exp2's final.pth is ~1.1 MB
CANVAS_LATE = " (Canvas marked it LATE)"  # in the source of a submission Canvas's file names mark late
_DIGITS = re.compile(r"[0-9]+")
_ANONYMOUS_ID = re.compile(r"[A-Za-z0-9]+")  # Canvas's anonymous_id: a few letters and digits
# <assignment>_<user>_attempt_<time>, then _<file name> for a file or .txt for the attempt's receipt
BLACKBOARD = re.compile(r"^(?P<assignment>.+?)_(?P<user>[^_/]+)_attempt_(?P<time>\d{4}(?:-\d\d){5})"
                        r"(?:_(?P<file>[^/]+)|(?P<receipt>\.txt))$")  # fmt: skip
RECEIPT_NAME = re.compile(r"^\s*Name:\s*(?P<name>.+?)\s*\((?P<user>[^()]*)\)\s*$", re.MULTILINE)  # Name: Ann Lee (ann)
MAX_RECEIPT = 64 * 1024  # bytes read of a receipt; Blackboard's are a few hundred
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_(?:file|onlinetext)_?$")


class Discovery(BaseModel):
    kind: str = Field(description="which layout was recognised, for the log")
    found: list[Found] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list, description="inputs that could not be used, and why")


class CanvasName(NamedTuple):
    """What a Canvas export's file name says."""

    name: str  # Canvas's sortable name, lowercased and without punctuation; empty when graded anonymously
    late: bool
    uid: str  # the Canvas user id, or the anonymous id when graded anonymously
    attachment: int  # grows with each upload
    file: str  # the name the student uploaded it under (a re-upload may carry -1)
    anonymous: bool


def canvas_name(filename: str) -> CanvasName | None:
    """Read `<name>[_LATE]_<user id>_<attachment id>_<file>` (or `anonymous[_LATE]_<anonymous id>_...`) from the
    two ids: the name may hold '_' and so may the file, but Canvas strips `_<digits>_` from names, so the first
    pair of numeric parts is the ids. None when the name is not Canvas's."""
    if "/" in filename:
        return None
    parts = filename.split("_")
    if parts[0].lower() == "anonymous":
        at = 2 if len(parts) > 1 and parts[1].lower() == "late" else 1
        if len(parts) > at + 2 and _ANONYMOUS_ID.fullmatch(parts[at]) and _DIGITS.fullmatch(parts[at + 1]):
            if file := "_".join(parts[at + 2 :]):
                return CanvasName("", at == 2, parts[at], int(parts[at + 1]), file, True)
    for at in range(1, len(parts) - 2):  # at least one part of name (or LATE) before the ids
        if _DIGITS.fullmatch(parts[at]) and _DIGITS.fullmatch(parts[at + 1]):
            head, file = parts[:at], "_".join(parts[at + 2 :])
            if not file:
                return None
            late = head[-1].lower() == "late"  # Canvas writes LATE; some versions lowercase the whole name
            return CanvasName("_".join(head[:-1] if late else head), late, parts[at], int(parts[at + 1]), file,
                              False)  # fmt: skip
    return None


# reads one LMS's flat export: (the zip, its files named that LMS's way, the zip's path, work, what is found)
Reader = Callable[[zipfile.ZipFile, list[zipfile.ZipInfo], Path, Path, Discovery], None]


class UnsafeZip(Exception):
    """A zip that would write outside its folder, holds links, or unpacks too large."""


def _junk(part: str) -> bool:
    return part in JUNK or part.startswith("._")


def safe_extract(zf: zipfile.ZipFile, dest: Path, members: list[zipfile.ZipInfo] | None = None) -> None:
    """Extract `members` (default: all) under `dest`, refusing anything that could escape it or blow up."""
    members = [m for m in (members if members is not None else zf.infolist())
               if not any(_junk(p) for p in PurePosixPath(m.filename).parts)]  # fmt: skip
    if len(members) > MAX_MEMBERS:
        raise UnsafeZip(f"{len(members)} entries (at most {MAX_MEMBERS})")
    total = sum(m.file_size for m in members)
    if total > MAX_UNPACKED:
        big = sorted(members, key=lambda m: -m.file_size)[:3]
        named = ", ".join(f"{m.filename} ({m.file_size / 2**20:.0f} MiB)" for m in big)
        raise UnsafeZip(f"{total / 2**20:.0f} MiB unpacked (at most {MAX_UNPACKED / 2**20:.0f} MiB); the largest "
                        f"entries are {named}: leave datasets and other files the assignment does not ask for out")
    root = dest.resolve()
    for m in members:
        name = PurePosixPath(m.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or re.match(r"^[A-Za-z]:", m.filename):
            raise UnsafeZip(f"entry {m.filename!r} points outside the archive")
        if stat.S_ISLNK(m.external_attr >> 16):
            raise UnsafeZip(f"entry {m.filename!r} is a symbolic link")
        target = (root / name).resolve()
        if root not in target.parents and target != root:
            raise UnsafeZip(f"entry {m.filename!r} points outside the archive")
        if m.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(m) as src, target.open("wb") as out:
                # file_size is what the header claims; count what really comes out (a zip bomb lies).
                while block := src.read(1 << 20):
                    written += len(block)
                    if written > m.file_size or written > MAX_UNPACKED:
                        raise UnsafeZip(f"entry {m.filename!r} unpacks larger than its header says")
                    out.write(block)
        except UnsafeZip:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the zip library raises, it is this entry's fault
            raise UnsafeZip(f"entry {m.filename!r} {_unreadable(exc)}") from None


def _unreadable(exc: Exception) -> str:
    """Why the zip library could not read an entry, in words a student can act on."""
    text = str(exc)
    if "encrypted" in text or "password" in text:
        return "is encrypted: zip the files again without a password"
    if isinstance(exc, NotImplementedError) or "compression" in text:
        return f"uses a compression method the grader cannot read ({text}): zip the files again with the default method"
    return f"is damaged ({type(exc).__name__}: {text}): upload the zip again"


def content_root(folder: Path) -> Path:
    """Students often zip a folder holding their folder: descend while there is one sub-folder and no file."""
    while True:
        entries = [p for p in folder.iterdir() if not _junk(p.name)]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
        else:
            return folder


@contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """One student's submission given as a zip (`grader check`/`grade`), unpacked safely into a temporary folder
    for as long as it is graded; a folder is yielded as it is. Raises UnsafeZip, saying what to do."""
    if path.is_dir() or path.suffix.lower() != ".zip":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="grader-zip-") as tmp:
        try:
            with zipfile.ZipFile(path) as zf:
                _unpack(zf, zf.infolist(), Path(tmp) / "submission")
        except UnsafeZip as exc:
            raise UnsafeZip(f"{path}: refused ({exc}); nothing was graded") from None
        except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, EOFError, ValueError ...
            raise UnsafeZip(f"{path}: not a readable zip ({exc}); zip your folder again, or pass the folder") from None
        yield content_root(Path(tmp) / "submission")


def _unpack_dir(parent: Path, key: str) -> Path:
    """Where one student's zip is unpacked: the name in safe characters, made unique by a hash of the whole name
    (张三.zip and 李四.zip would both be `__` otherwise, and the second would overwrite the first)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:60]
    return parent / f"{safe}-{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


def _unpack(zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], dest: Path, rename: Callable[[str], str] | None = None,
            fresh: bool = True) -> None:  # fmt: skip
    """Extract members into `dest` (emptied first if `fresh`), named by `rename` (e.g. without their folder);
    empty names are dropped (the folder entry itself)."""
    if fresh and dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if rename is not None:
        for m in members:
            m.filename = rename(m.filename)
        members = [m for m in members if m.filename]
    safe_extract(zf, dest, members)


def _strip(prefix: str) -> Callable[[str], str]:
    return lambda name: name[len(prefix) :]


def _gradescope_metadata(text: str, source: str, problems: list[str]) -> dict[str, dict]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        problems.append(f"{source}: submission_metadata.yml is not valid YAML ({exc}); submitters unknown")
        return {}
    return data if isinstance(data, dict) else {}


def _gradescope_found(key: str, meta: dict, folder: Path, source: str) -> Found:
    submitters = meta.get(":submitters") or meta.get("submitters") or [{}]
    first = submitters[0] if isinstance(submitters, list) and submitters else {}
    created = meta.get(":created_at") or meta.get("created_at")
    if isinstance(created, str):
        try:
            created = datetime.fromisoformat(created)
        except ValueError:
            created = None
    sid = str(first.get(":sid") or first.get("sid") or "").strip()
    return Found(
        key=sid or key.removeprefix("submission_"),
        source=source,
        folder=content_root(folder),
        submitted_at=created if isinstance(created, datetime) else None,
        submitted_at_source="Gradescope metadata" if isinstance(created, datetime) else "",
        name=str(first.get(":name") or first.get("name") or ""),
        email=str(first.get(":email") or first.get("email") or ""),
    )


def _from_zip(path: Path, work: Path) -> Discovery:
    out = Discovery(kind="")
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, EOFError, ValueError ...
        return Discovery(kind="unreadable zip", problems=[f"{path}: not a readable zip ({exc}); download it again"])
    with zf:
        infos = [m for m in zf.infolist() if not any(_junk(p) for p in PurePosixPath(m.filename).parts)]
        names = [m.filename for m in infos]
        meta_name = next((n for n in names if PurePosixPath(n).name == "submission_metadata.yml"), None)
        if meta_name:
            out.kind = "Gradescope export"
            base = meta_name[: -len("submission_metadata.yml")]
            try:
                meta_text = zf.read(meta_name).decode("utf-8", "replace")
            except Exception as exc:  # noqa: BLE001 - an unreadable entry
                out.problems.append(f"{path}:{meta_name} {_unreadable(exc)}; submitters unknown")
                meta_text = ""
            meta = _gradescope_metadata(meta_text, str(path), out.problems)
            keys = sorted({n[len(base) :].split("/")[0] for n in names
                           if n.startswith(base + "submission_") and "/" in n[len(base) :]})  # fmt: skip
            for key in keys:
                members = [m for m in infos if m.filename.startswith(f"{base}{key}/")]
                dest = work / "gradescope" / key
                try:
                    _unpack(zf, members, dest, _strip(f"{base}{key}/"))
                except UnsafeZip as exc:
                    out.problems.append(f"{path}:{base}{key}/: unsafe ({exc}); not graded")
                    continue
                out.found.append(_gradescope_found(key, meta.get(key) or {}, dest, f"{path}:{base}{key}/"))
            return out
        flat = [m for m in infos if "/" not in m.filename.rstrip("/") and not m.is_dir()]
        # Blackboard's names are the more specific (`_attempt_<time>`), so they are tried first.
        readers: tuple[tuple[str, Callable[[str], object], Reader], ...] = (
            ("Blackboard export", BLACKBOARD.match, _from_blackboard),
            ("Canvas export", canvas_name, _from_canvas),
        )
        for kind, parse, read in readers:
            named = [m for m in flat if parse(m.filename)]
            if named and 2 * len(named) > len(flat):  # one oddly named file does not hide the class
                out.kind = kind
                out.problems += [f"{path}: {m.filename} is not named as a {kind} names files; ignored"
                                 for m in flat if m not in named]  # fmt: skip
                read(zf, named, path, work, out)
                return out
        tops = sorted({m.filename.split("/")[0] for m in infos if "/" in m.filename})
        moodle = all(MOODLE.match(t) for t in tops) and tops
        out.kind = "Moodle export" if moodle else "zip of student folders"
        unpacked: dict[str, Found] = {}
        for top in tops:
            members = [m for m in infos if m.filename.startswith(top + "/")]
            match = MOODLE.match(top) if moodle else None
            key = match["pid"] if match else top
            dest = _unpack_dir(work / "zip", key)
            try:  # Moodle's online-text folder and file folder of one participant go to one place
                _unpack(zf, members, dest, _strip(top + "/"), fresh=key not in unpacked)
            except UnsafeZip as exc:
                out.problems.append(f"{path}:{top}/: unsafe ({exc}); not graded")
                continue
            if key in unpacked:
                continue
            unpacked[key] = found = Found(key=key, source=f"{path}:{top}/", folder=dest,
                                          name=match["name"] if match else "")  # fmt: skip
            out.found.append(found)
        for found in unpacked.values():
            found.folder = student_root(found.folder, work, out.problems, found.source)
        if flat and not moodle:
            out.problems.append(f"{path}: {len(flat)} loose file(s) outside any student folder were ignored, "
                                f"e.g. {flat[0].filename}")  # fmt: skip
    return out


def _from_canvas(zf: zipfile.ZipFile, flat: list[zipfile.ZipInfo], path: Path, work: Path, out: Discovery) -> None:
    names = {m.filename: n for m in flat if (n := canvas_name(m.filename))}
    groups: dict[str, list[zipfile.ZipInfo]] = {}
    for m in flat:
        groups.setdefault(names[m.filename].uid, []).append(m)
    anonymous: list[str] = []
    for uid, members in sorted(groups.items()):
        first = names[members[0].filename]
        who = f"Canvas {'anonymous submission' if first.anonymous else 'user'} {uid}"
        newest: dict[str, zipfile.ZipInfo] = {}  # file name -> its newest upload (attachment ids grow)
        for m in sorted(members, key=lambda m: names[m.filename].attachment):
            name = names[m.filename].file
            if name in newest:
                out.problems.append(f"{path}: {who} has {name} twice; graded the newer upload "
                                    f"({m.filename}), not {newest[name].filename}")  # fmt: skip
            newest[name] = m
        late = CANVAS_LATE if any(names[m.filename].late for m in members) else ""
        source = f"{path}: {who}{late}"
        if first.anonymous:
            anonymous.append(uid)
        dest = work / "canvas" / uid  # both kinds of id are letters and digits only
        try:
            _unpack(zf, list(newest.values()), dest, lambda name: names[name].file)
        except UnsafeZip as exc:
            out.problems.append(f"{path}: {who}: unsafe ({exc}); not graded")
            continue
        out.found.append(Found(key=uid, source=source, folder=student_root(dest, work, out.problems, source),
                               name=first.name))  # fmt: skip
    if anonymous:
        out.problems.append(f"{path}: graded anonymously in Canvas, so {len(anonymous)} submission(s) are known "
                            f"only by Canvas's anonymous ids (e.g. {anonymous[0]}), which its gradebook import does "
                            "not accept: once Canvas shows the names (Post Grades, or anonymous grading turned off), "
                            "download the submissions again for a canvas.csv that can be imported")  # fmt: skip


def _receipt(zf: zipfile.ZipFile, receipt: zipfile.ZipInfo) -> tuple[str, str]:
    """(name, username) from a Blackboard receipt's `Name: Alice Liddell (alice)` line; empty when unreadable."""
    try:
        with zf.open(receipt) as f:
            text = f.read(MAX_RECEIPT).decode("utf-8", "replace")
    except Exception:  # noqa: BLE001 - a receipt only adds a name; the submission is graded without it
        return "", ""
    found = RECEIPT_NAME.search(text)
    return (found["name"], found["user"].strip()) if found else ("", "")


def _from_blackboard(zf: zipfile.ZipFile, flat: list[zipfile.ZipInfo], path: Path, work: Path,
                     out: Discovery) -> None:  # fmt: skip
    """Blackboard's times are its server's, in its own time zone: they pick the last attempt, not lateness (the
    receipt's "Date Submitted" names its zone by an abbreviation such as CST, which is ambiguous). A username may
    hold '_': where the assignment's part of the names (the same in every file) ends is learnt from a receipt,
    whose Name line gives the username; without one, the username is what follows the last '_'."""
    parsed = {m.filename: _named(BLACKBOARD, m.filename) for m in flat}
    heads = {n: n[: got.end("user")] for n, got in parsed.items()}  # <assignment>_<user>
    receipts = {m.filename: _receipt(zf, m) for m in flat if parsed[m.filename]["receipt"]}
    assignments = Counter(heads[n][: -len(user) - 1] for n, (_, user) in receipts.items()
                          if user and heads[n].endswith(f"_{user}") and len(heads[n]) > len(user) + 1)  # fmt: skip
    assignment = assignments.most_common(1)[0][0] + "_" if assignments else None

    def user_of(name: str) -> str:
        head = heads[name]
        if assignment and head.startswith(assignment) and len(head) > len(assignment):
            return head[len(assignment) :]
        return parsed[name]["user"]

    attempts: dict[str, dict[str, list[zipfile.ZipInfo]]] = {}
    for m in flat:
        attempts.setdefault(user_of(m.filename), {}).setdefault(parsed[m.filename]["time"], []).append(m)
    for user, by_time in sorted(attempts.items()):
        last = max(by_time)
        members = [m for m in by_time[last] if parsed[m.filename]["file"]]
        receipt = next((m.filename for m in by_time[last] if m.filename in receipts), "")
        out.problems += [f"{path}: Blackboard user {user}: attempt {t} is not graded; attempt {last} is later"
                         for t in sorted(by_time) if t != last]  # fmt: skip
        dest = _unpack_dir(work / "blackboard", user)
        try:
            _unpack(zf, members, dest, lambda name: parsed[name]["file"])
        except UnsafeZip as exc:
            out.problems.append(f"{path}: Blackboard user {user}: unsafe ({exc}); not graded")
            continue
        source = f"{path}: Blackboard user {user}, attempt {last}"
        out.found.append(Found(key=user, source=source, folder=student_root(dest, work, out.problems, source),
                               name=receipts.get(receipt, ("", ""))[0]))  # fmt: skip


def student_root(folder: Path, work: Path, problems: list[str], source: str) -> Path:
    """Where a student's files are: `content_root`, or inside the one zip the student uploaded through the LMS
    (a folder holding nothing but exp1.zip)."""
    root = content_root(folder)
    try:
        entries = [p for p in root.iterdir() if not _junk(p.name) and not p.name.startswith(".")]
    except OSError:
        return root
    if len(entries) != 1 or entries[0].suffix.lower() != ".zip" or not entries[0].is_file():
        return root
    dest = _unpack_dir(work / "inner", f"{source}/{entries[0].name}")
    try:
        with zipfile.ZipFile(entries[0]) as zf:
            _unpack(zf, zf.infolist(), dest)
    except UnsafeZip as exc:
        problems.append(f"{source}: {entries[0].name} is unsafe ({exc}); not unpacked")
        return root
    except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, EOFError, ValueError ...
        problems.append(f"{source}: {entries[0].name} is not a readable zip ({exc}); ask the student to upload it "
                        "again")  # fmt: skip
        return root
    return content_root(dest)


def _classroom_logins(dirs: list[Path]) -> dict[Path, str]:
    """GitHub Classroom's clones (`exp1-doejane`, each a git checkout) keyed by login: the prefix all share, up
    to its last '-', is the assignment's. Empty when the folders are not such clones."""
    if len(dirs) < 2 or not all((d / ".git").exists() for d in dirs):
        return {}
    prefix = os.path.commonprefix([d.name for d in dirs])
    prefix = prefix[: prefix.rfind("-") + 1]
    logins = {d: d.name[len(prefix) :] for d in dirs}
    if not prefix or not all(logins.values()) or len(set(logins.values())) != len(dirs):
        return {}
    return logins


def _from_folder(path: Path, work: Path) -> Discovery:
    meta = path / "submission_metadata.yml"
    if meta.is_file():
        out = Discovery(kind="Gradescope export (unpacked)")
        data = _gradescope_metadata(meta.read_text(encoding="utf-8", errors="replace"), str(path), out.problems)
        for sub in sorted(p for p in path.iterdir() if p.is_dir() and p.name.startswith("submission_")):
            out.found.append(_gradescope_found(sub.name, data.get(sub.name) or {}, sub, str(sub)))
        return out
    out = Discovery(kind="folder of student folders and zips")
    entries = [e for e in sorted(path.iterdir()) if not _junk(e.name) and not e.name.startswith(".")]
    logins = _classroom_logins([e for e in entries if e.is_dir()])
    if logins:
        out.kind = "GitHub Classroom clones"
    for entry in entries:
        if entry.is_dir():
            out.found.append(Found(key=logins.get(entry, entry.name), source=str(entry),
                                   folder=student_root(entry, work, out.problems, str(entry))))  # fmt: skip
        elif entry.suffix.lower() == ".zip":
            dest = _unpack_dir(work / "zips", entry.stem)
            try:
                with zipfile.ZipFile(entry) as zf:
                    members = zf.infolist()
                    _unpack(zf, members, dest)
            except UnsafeZip as exc:
                out.problems.append(f"{entry}: unsafe zip ({exc}); not graded")
                continue
            except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, EOFError, ValueError ...
                out.problems.append(f"{entry}: not a readable zip ({exc}); ask the student to upload it again")
                continue
            out.found.append(Found(key=entry.stem, source=str(entry), folder=content_root(dest)))
        elif entry.name != "expected.toml":  # a course's examples folder: the manifest `grader selftest` reads
            out.problems.append(f"{entry}: neither a student folder nor a .zip; ignored")
    return out


def _from_nbgrader(submitted: Path, assignment: str | None) -> Discovery:
    """nbgrader's `submitted/<student id>/<assignment id>/` (what `nbgrader collect` or the exchange leaves)."""
    out = Discovery(kind="nbgrader submitted/ folder")
    for student in sorted(submitted.iterdir()):
        if _junk(student.name) or student.name.startswith(".") or not student.is_dir():
            continue
        folder = student / assignment if assignment else student
        if not folder.is_dir():
            has = ", ".join(sorted(p.name for p in student.iterdir() if p.is_dir())[:5]) or "nothing"
            out.problems.append(f"{student}: no {assignment}/ folder (it has {has}); nothing to grade")
            continue
        out.found.append(Found(key=student.name, source=str(folder), folder=content_root(folder)))
    return out


def _named(pattern: re.Pattern[str], name: str) -> re.Match[str]:
    """An export's file name, already known to match `pattern`."""
    m = pattern.match(name)
    assert m is not None
    return m


def discover(path: Path, work: Path, assignment: str | None = None) -> Discovery:
    """Every submission under `path` (a folder or an export zip); zips are unpacked under `work`. `assignment`
    picks the folder of each student in nbgrader's layout (students may have submitted several)."""
    if path.is_dir() and (path.name == "submitted" or (path / "submitted").is_dir()):
        return _from_nbgrader(path if path.name == "submitted" else path / "submitted", assignment)
    if path.is_dir():
        return _from_folder(path, work)
    if path.is_file():
        return _from_zip(path, work)
    return Discovery(kind="nothing", problems=[f"{path}: no such file or folder"])
