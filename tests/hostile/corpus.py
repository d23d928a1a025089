"""A corpus of hostile exp1 submissions: the reference solution with one attack injected each.

Each case says where the attack goes (a function of exp1.py, the module's top, or model.pth) and which checks
it should fail, with a pattern their message must match. Every other check must still pass: an attack costs
the checks it touches and nothing else, and never the grade of another submission or the host.

`run_case` grades one case and `problems` lists everything that went wrong beyond the score: a check with
status `error`, a file outside the sandbox that changed, a process or container left behind, the host's disk
filling up. test_hostile.py runs them in-process; run_corpus.py runs the whole corpus as another user.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

TIMEOUT_S = 8  # every check's timeout in the corpus's course copy
ROOT = Path(__file__).resolve().parents[2]
DISK_SLACK = 256 << 20  # the host's free disk may shrink by this much while a case runs (other activity)


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "f", "custom_f", "train", "module", or "" (code untouched)
    code: str = ""
    fails: dict[str, str] = field(default_factory=dict)  # check id -> regex its message must match
    weights: Callable[[Path], None] | None = None  # replaces model.pth
    problem: str = ""  # a regex one of the result's problems must match


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_payload(folder: Path) -> None:
    torch.save({"default": Payload(folder.parent / "PWNED"), "custom": {}}, folder / "model.pth")


def two_gigabytes(folder: Path) -> None:
    with open(folder / "model.pth", "wb") as f:  # sparse: costs no disk
        f.truncate(2 << 30)


def zip_bomb(folder: Path) -> None:
    """A small archive whose central directory promises 3 x ~4 GiB: the loader must refuse it unread."""
    path = folder / "model.pth"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            zf.writestr(f"archive/data/{i}", b"\0" * (1 << 20))
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:  # central directory headers: uncompressed size at offset 24
        raw[at + 24 : at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))


def stride_bomb(folder: Path) -> None:
    """38 KB on disk, 8 GiB declared: one float expanded to 2**31 elements with stride 0."""
    state = torch.load(ROOT / "examples/exp1/solution/model.pth", weights_only=True)
    first = next(iter(state["default"]))
    state["default"][first] = torch.zeros(1).expand(2**31)
    torch.save(state, folder / "model.pth")


# Finds the judge's channel from student code: any socket among the open descriptors.
CHANNEL = """import os, socket, stat, struct, json
def _channels():
    found = []
    for fd in range(3, 256):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                found.append(fd)
        except OSError:
            pass
    return [socket.socket(fileno=os.dup(fd)) for fd in found]
def _frame(doc, blob=b''):
    body = json.dumps(doc).encode()
    return b'TGR1' + struct.pack('>II', len(body), len(blob)) + body + blob
"""

# Tries every way a student could write on the grading host: paths it was told about, the grader's own
# package, the course, the batch output folder, links planted where a judge might open files.
HOST_WRITES = """import os, sys
targets = [HOST_FILE, HOST_NEW, os.path.join(HOST_DIR, 'out', 'results.json'),
           os.path.join(COURSE, 'solutions', 'exp1', 'hidden_checks', 'test_pwned.py')]
try:
    import grader
    targets.append(os.path.join(os.path.dirname(grader.__file__), 'pwned.py'))
except Exception:
    pass
for t in targets:
    try:
        with open(t, 'w') as f:
            f.write('pwned')
    except OSError:
        pass
for d in {*(a for a in sys.argv if os.path.isdir(a)), os.getcwd(), os.environ.get('TMPDIR', '/tmp')}:
    for name in ('req-0002.json.tmp', 'res-0002.json', 'res-0003.json', 'ready', 'isolation.json'):
        try:
            os.symlink(HOST_FILE, os.path.join(d, name))
        except OSError:
            pass
"""

FILL_DISK = """import os
block = b'z' * (16 << 20)
for d in {os.getcwd(), os.environ.get('TMPDIR', '/tmp'), '/tmp', '/dev/shm', os.path.expanduser('~')}:
    for i in range(96):  # up to 1.5 GiB per folder, in files under the file-size limit
        try:
            with open(os.path.join(d, f'fill-{i}'), 'wb') as f:
                f.write(block)
        except OSError:
            break
"""

WEIGHT_CHECKS = ("model_fits_target", "custom_function_fits")
CODE_CHECKS = ("f_reference_values", "mlp_output_shape", "training_lowers_mse", "model_fits_target",
               "num_train_samples_unchanged", "custom_function_fits")  # fmt: skip

CASES = [
    Case("infinite-loop", "train", "while True:\n    pass",
         {"training_lowers_mse": rf"^timed out after {TIMEOUT_S} s"}),
    Case("sleep-past-timeout", "custom_f", "import time\ntime.sleep(3600)",
         {"custom_function_fits": rf"^timed out after {TIMEOUT_S} s"}),
    # The local sandbox under a root grader has no RLIMIT_NPROC (root ignores it): its watchdog or the
    # timeout ends the bomb, whichever the starved judge reaches first. The Docker sandbox's pids cgroup does.
    Case("fork-bomb", "train", "import os\nwhile True:\n    os.fork()",
         # Whichever limit the bomb meets first stops it: the process count, the clock, or the memory its copies share.
         {"training_lowers_mse": r"process limit|timed out after|killed for exceeding 2048 MiB of memory"}),
    Case("memory-bomb", "train", "blocks = []\nwhile True:\n    blocks.append(bytearray(b'x') * (64 << 20))",
         {"training_lowers_mse": r"killed for exceeding 2048 MiB of memory|ran out of memory"}),
    Case("network", "custom_f", "import socket\nsocket.create_connection(('10.255.255.1', 80), timeout=3)",
         {"custom_function_fits": r"OSError|unreachable|timed out"}),
    Case("read-outside-mounts", "custom_f",
         "import os\nfor p in (HIDDEN, os.path.expanduser('~root/.bashrc'), '/etc/shadow'):\n"
         "    if os.path.exists(p) and os.access(p, os.R_OK):\n"
         "        raise RuntimeError('could read ' + p)",
         {}),
    Case("write-own-submission", "custom_f", "open(__file__, 'a').write('# graded: 100')",
         {"custom_function_fits": r"raised (OSError: .*Read-only file system|PermissionError: .*Permission denied)"}),
    Case("fake-results-file", "custom_f",
         "import json, os\nfor d in ('.', os.environ.get('TMPDIR', '/tmp')):\n"
         "    open(os.path.join(d, 'results.json'), 'w').write(json.dumps({'score': 100}))", {}),
    Case("monkeypatch-torch", "f",
         "import builtins\ntorch.allclose = lambda *a, **k: True\n"
         "torch.isclose = lambda a, b, **k: torch.ones_like(a, dtype=torch.bool)\nbuiltins.abs = lambda v: 0\n"
         "return x * 0",
         {"f_reference_values": r"^f\(x\) at x=-5 got -?0; expected 22\.878"}),
    Case("os-exit", "custom_f", "import os\nos._exit(0)", {"custom_function_fits": r"os\._exit"}),
    Case("sys-exit", "custom_f", "import sys\nsys.exit(0)", {"custom_function_fits": r"called sys\.exit\(0\)"}),
    Case("print-100mb", "train",
         "import sys\nfor _ in range(100 * 1024):\n    sys.stdout.write('z' * 1023 + '\\n')", {}),
    Case("pickle-payload-pth", "", weights=pickle_payload,  # read as data: the payload is named, never called
         fails={"model_fits_target": r"pickled Python objects \(posix\.system\)",
                "custom_function_fits": r"\['custom'\]: expected a state_dict"}),
    Case("two-gigabyte-pth", "", weights=two_gigabytes,
         fails={c: r"^model\.pth is 2097152 KiB, over the limit of 2048 KiB" for c in WEIGHT_CHECKS}),
    Case("zip-bomb-pth", "", weights=zip_bomb, fails={c: r"would unpack to \d+ MiB" for c in WEIGHT_CHECKS}),
    # A syntax error leaves out the statement that holds it, for the fallback's penalty (grader.loader).
    Case("syntax-error", "module", "def broken(:\n    pass", {},
         problem=r"^exp1\.py line \d+: .*fix the syntax error and resubmit\. The grader then imported only its "
                 r"definitions"),
    # Code that fails at import costs the fallback's penalty once; the definitions are graded (grader.loader).
    Case("import-time-exception", "module", "raise RuntimeError('boom at import')", {},
         problem=r"^exp1\.py fails when imported \(RuntimeError: boom at import at line \d+\).*only its definitions"),
    # The trust line's channel and the host, attacked from student code.
    Case("host-writes", "custom_f", HOST_WRITES, {}),
    Case("fill-disk", "custom_f", FILL_DISK, {}),
    Case("channel-garbage", "custom_f", CHANNEL + "for s in _channels():\n    s.sendall(b'not a frame' * 1000)",
         {"custom_function_fits": r"malformed answer to `custom_values`"}),
    Case("channel-huge-frame", "custom_f",
         CHANNEL + "for s in _channels():\n    s.sendall(b'TGR1' + struct.pack('>II', 2**32 - 1, 2**32 - 1))",
         {"custom_function_fits": r"malformed answer to `custom_values` \(a frame of .* MiB is over the"}),
    Case("channel-stall", "custom_f",
         CHANNEL + "import time\nfor s in _channels():\n    s.sendall(_frame({'id': 1})[:20])\ntime.sleep(3600)",
         {"custom_function_fits": rf"^timed out after {TIMEOUT_S} s"}),
    Case("forged-answer", "custom_f",
         CHANNEL + "for s in _channels():\n    for i in range(1, 9):\n"
         "        s.sendall(_frame({'id': i, 'ok': False, 'error': {'kind': 'exception', 'message': 'x', "
         "'where': [{'file': 1, 'line': 'x'}]}}))",
         {"custom_function_fits": r"malformed answer to `custom_values`"}),
    Case("forged-value", "custom_f",
         CHANNEL + "for s in _channels():\n    for i in range(1, 9):\n"
         "        s.sendall(_frame({'id': i, 'ok': True, 'value': {'not': 'a tensor'}}))",
         {"custom_function_fits": r"malformed answer to `custom_values`|returned a dict; expected a torch\.Tensor"}),
    Case("stride-bomb-pth", "", weights=stride_bomb,
         fails={c: r"declares more elements than its storage" for c in WEIGHT_CHECKS}),
]


def inject(source: str, target: str, code: str, hidden_path: Path) -> str:
    """Put `code` at the start of function `target` (after its docstring), or at the module's top."""
    code = code.replace("HIDDEN", repr(str(hidden_path)))
    if target == "module":
        return source.replace("import torch\n", "import torch\n" + code + "\n", 1)
    lines = source.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.match(rf"\s*def {target}\(", line))
    body = start + 1
    while '"""' not in lines[body]:
        body += 1
    indent = re.match(r"\s*", lines[body]).group(0)
    lines.insert(body + 1, "".join(indent + c + "\n" for c in code.splitlines()))
    return "".join(lines)


# ---- grading one case, and what must hold beyond its score ---------------------------------------------


def corpus_course(root: Path):
    """A copy of exp1 under `root` with every check's timeout cut to TIMEOUT_S, so hanging cases end quickly."""
    from grader.spec import Course

    for part in ("assignments", "solutions"):
        shutil.copytree(ROOT / part / "exp1", root / part / "exp1")
    toml = root / "assignments/exp1/assignment.toml"
    toml.write_text(re.sub(r"(?m)^timeout = \d+", f"timeout = {TIMEOUT_S}", toml.read_text()))
    return Course(root=root)


@dataclass
class Host:
    """Places on the grading host a hostile submission must not change, all reachable by any uid."""

    dir: Path  # world-writable, so that only the sandbox can stop a write there
    course: Path

    @property
    def file(self) -> Path:
        return self.dir / "victim.txt"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "out").mkdir(exist_ok=True)
        self.file.write_text("untouched\n")
        for p, mode in ((self.dir, 0o777), (self.dir / "out", 0o777), (self.file, 0o666)):
            p.chmod(mode)

    def digest(self) -> str:
        """Every file's path and bytes under the host dir, the course and the grader package."""
        import grader

        h = hashlib.sha256()
        for top in (self.dir, self.course, Path(grader.__file__).parent):
            for p in sorted(top.rglob("*")):
                if "__pycache__" in p.parts:
                    continue
                h.update(str(p).encode() + b"\0")
                if p.is_file() and not p.is_symlink():
                    h.update(p.read_bytes())
        return h.hexdigest()


def build_submission(case: Case, folder: Path, host: Host) -> None:
    shutil.copytree(ROOT / "examples/exp1/solution", folder)
    if case.target:
        src = (folder / "exp1.py").read_text()
        code = case.code
        for name, value in (("HOST_FILE", host.file), ("HOST_NEW", host.dir / "created.txt"),
                            ("HOST_DIR", host.dir), ("COURSE", host.course)):  # fmt: skip
            code = code.replace(name, repr(str(value)))
        hidden = ROOT / "solutions/exp1/hidden_checks/test_exp1_hidden.py"
        (folder / "exp1.py").write_text(inject(src, case.target, code, hidden))
    if case.weights:
        case.weights(folder)


def _cmdline(pid: int | str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(pid: str) -> str:
    try:
        return next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("PPid:"))  # fmt: skip
    except (OSError, StopIteration):
        return "0"


def leftovers() -> list[str]:
    """Contestant processes, sandbox folders and containers of this process that outlived their grading run.

    Other graders may run on this machine meanwhile: a launcher is ours when its command line names one of our
    sandbox folders; a contestant that lost its launcher (or its container's init) is an orphan, whoever's."""
    import tempfile

    from grader.sandbox.base import owner_tag

    mine = owner_tag()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        cmd = _cmdline(pid)
        if "grader.sandbox.launch" in cmd and f"grader-sbx-{mine}-" in cmd:
            found.append(f"launcher {pid}: {cmd[:100]}")
        elif "grader.contestant" in cmd:
            parent = _cmdline(_parent(pid))
            if "grader.sandbox.launch" not in parent and not parent.startswith("timeout"):
                found.append(f"orphaned contestant {pid}: {cmd[:100]}")
    for prefix in ("grader-sbx-", "grader-dkr-"):
        found += [f"folder {p}" for p in Path(tempfile.gettempdir()).glob(f"{prefix}{mine}-*")]
    try:
        import docker
        from grader.sandbox.docker import OWNER_LABEL

        client = docker.from_env()
        listed = client.containers.list(all=True, filters={"label": OWNER_LABEL}, ignore_removed=True)
        found += [f"container {c.short_id}" for c in listed if c.labels.get(OWNER_LABEL, "").endswith("/" + mine)]
    except Exception:  # noqa: BLE001 - no engine here: no containers either
        pass
    return found


class DiskWatch:
    """The lowest free space of the host's temp folder while a case runs, sampled every 20 ms."""

    def __init__(self, path: Path) -> None:
        self.path, self.low, self._stop = path, self._free(path), threading.Event()
        self.start_free = self.low
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _free(path: Path) -> int:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.low = min(self.low, self._free(self.path))

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_case(case: Case, course, sandbox, work: Path, host: Host) -> dict:
    """Grade one case; returns what `problems` checks."""
    import tempfile

    from grader.grading import grade

    folder = work / case.name
    build_submission(case, folder, host)
    before_sub, before_host = _digest_folder(folder), host.digest()
    t0 = time.monotonic()
    with DiskWatch(Path(tempfile.gettempdir())) as disk:
        result = grade(course, "exp1", folder, sandbox=sandbox)
    time.sleep(0.2)  # a killed process tree takes a moment to be reaped
    return {
        "case": case.name,
        "seconds": round(time.monotonic() - t0, 2),
        "checks": {c.id: {"status": c.status, "score": c.score, "message": c.message} for c in result.checks},
        "problems": [p.message for p in result.problems],
        "submission_changed": _digest_folder(folder) != before_sub,
        "host_changed": host.digest() != before_host,
        "created": (host.dir / "created.txt").exists(),
        "disk_used_mb": round((disk.start_free - disk.low) / 2**20),
        "leftovers": leftovers(),
        "output_chars": len(result.contestant_output),
        "dropped_output": "bytes of output dropped" in result.contestant_output,
        "isolation": result.environment.sandbox,
    }


def _digest_folder(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def problems(case: Case, outcome: dict) -> list[str]:
    """Everything that must hold for a graded case, as a list of what did not."""
    out = []
    for cid in CODE_CHECKS:
        check = outcome["checks"][cid]
        if check["status"] == "error":
            out.append(f"{cid}: status error: {check['message'][:300]}")
        elif cid in case.fails:
            if check["score"] != 0 or check["status"] != "failed":
                out.append(f"{cid}: expected a failure, got {check['status']} {check['score']}")
            elif not re.search(case.fails[cid], check["message"]):
                out.append(f"{cid}: message {check['message'][:300]!r} does not match {case.fails[cid]!r}")
        elif check["status"] != "passed":
            out.append(f"{cid}: expected a pass, got {check['status']}: {check['message'][:300]}")
    if case.problem and not any(re.search(case.problem, p) for p in outcome["problems"]):
        out.append(f"no problem matches {case.problem!r}: {outcome['problems']}")
    if outcome["submission_changed"]:
        out.append("the submission changed while it was graded")
    if outcome["host_changed"] or outcome["created"]:
        out.append("a file outside the sandbox changed")
    if outcome["disk_used_mb"] * 2**20 > DISK_SLACK:
        out.append(f"the host's disk lost {outcome['disk_used_mb']} MiB while the case ran")
    if outcome["leftovers"]:
        out.append(f"left behind: {outcome['leftovers']}")
    if case.name == "print-100mb" and not (outcome["dropped_output"] and outcome["output_chars"] < 300 * 1024):
        out.append("output was not capped")
    return out
