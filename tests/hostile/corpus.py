"""A corpus of hostile exp1 submissions: the reference solution with one attack injected each.

Each case says where the attack goes (a function of exp1.py, the module's top, or model.pth) and which checks
it should fail, with a pattern their message must match. Every other check must still pass: an attack costs
the checks it touches and nothing else, and never the grade of another submission or the host.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

TIMEOUT_S = 8  # every check's timeout in the corpus's course copy


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # "f", "custom_f", "train", "module", or "" (code untouched)
    code: str = ""
    fails: dict[str, str] = field(default_factory=dict)  # check id -> regex its message must match
    weights: Callable[[Path], None] | None = None  # replaces model.pth
    local_ok: bool = True  # False: the local sandbox does not claim to stop this (README)


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
         {"training_lowers_mse": r"process limit|timed out after"}),
    Case("memory-bomb", "train", "blocks = []\nwhile True:\n    blocks.append(bytearray(b'x') * (64 << 20))",
         {"training_lowers_mse": r"killed for exceeding 2048 MiB of memory|ran out of memory"}),
    Case("network", "custom_f", "import socket\nsocket.create_connection(('10.255.255.1', 80), timeout=3)",
         {"custom_function_fits": r"OSError|unreachable|timed out"}),
    Case("read-outside-mounts", "custom_f",
         "import os\nfor p in (HIDDEN, os.path.expanduser('~root/.bashrc'), '/etc/shadow'):\n"
         "    if os.path.exists(p) and os.access(p, os.R_OK):\n"
         "        raise RuntimeError('could read ' + p)",
         {}, local_ok=False),
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
    Case("pickle-payload-pth", "", weights=pickle_payload,
         fails={c: r"pickled Python objects" for c in WEIGHT_CHECKS}),
    Case("two-gigabyte-pth", "", weights=two_gigabytes,
         fails={c: r"^model\.pth is 2097152 KiB, over the limit of 2048 KiB" for c in WEIGHT_CHECKS}),
    Case("zip-bomb-pth", "", weights=zip_bomb, fails={c: r"would unpack to \d+ MiB" for c in WEIGHT_CHECKS}),
    Case("syntax-error", "module", "def broken(:\n    pass", {c: r"line \d+: .*syntax" for c in CODE_CHECKS}),
    Case("import-time-exception", "module", "raise RuntimeError('boom at import')",
         {c: r"importing exp1\.py raised RuntimeError: boom at import" for c in CODE_CHECKS}),
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
