"""Code similarity with copydetect: winnowing over tokens, with names, strings and comments filtered out.

copydetect tokenizes with Pygments and replaces every variable, attribute and function name by one letter, so
renaming variables changes nothing; it fingerprints every 25-character window of that filtered text, so moving
whole functions around changes only the few windows that span a boundary. The released stub (the given code,
docstrings and TODO scaffolding) is boilerplate: its fingerprints are removed from every submission first, so
a class that filled the same stub shares nothing on that account.

A notebook is compared by its code cells, joined in order; shell and magic lines (`!pip`, `%time`) are kept
as comments.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grader.files import UnsafeFile, read_regular

NOISE = 25  # copydetect's default noise threshold: shared runs shorter than 25 filtered characters are noise
WINDOW = 1  # copydetect's default guarantee threshold is also 25, hence a window of 1: every k-gram counts
# Characters of filtered, non-boilerplate code a submission needs before it is compared: about four filled-in
# statements (`self.conv1 = nn.Conv2d(...)` filters to `V.V=V.V(V,V,3,V=V,V=1,V=False)`, 30 characters).
# Less than that (an untouched stub, one filled line) is too little to call anything copied.
MIN_OWN_CODE = 100
MAX_CODE_BYTES = 1 << 20  # read cap per file when the spec does not give one


@dataclass
class CodeText:
    """A submission's code as one document, with what went into it."""

    text: str
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def notebook_code(raw: bytes, name: str) -> str:
    """The code cells of a notebook, in order, joined by `# %% cell N` lines. Raises ValueError if `raw` is not
    a notebook."""
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name} is not a notebook (not JSON: {exc})") from None
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise ValueError(f"{name} is not a notebook (no list of cells)")
    parts = []
    for n, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        text = "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else str(source)
        lines = [f"# {ln}" if ln.lstrip().startswith(("!", "%")) else ln for ln in text.splitlines()]
        parts.append(f"# %% cell {n}\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _counterpart(name: str) -> str:
    stem, _, suffix = name.rpartition(".")
    return f"{stem}.ipynb" if suffix == "py" else f"{stem}.py" if suffix == "ipynb" else name


def read_code(folder: Path, names: list[str], max_bytes: dict[str, int] | None = None) -> CodeText:
    """The code files `names` of a submission as one document; where `x.py` is absent, `x.ipynb`'s code cells
    (and the other way round). Files are read as hostile: regular files only, size-capped, bytes decoded with
    replacement."""
    out = CodeText(text="")
    parts = []
    for name in names:
        cap = (max_bytes or {}).get(name, MAX_CODE_BYTES)
        for candidate in (name, _counterpart(name)):
            path = folder / candidate
            if not (path.is_file() or path.is_symlink()):
                continue
            try:
                raw = read_regular(path, cap)
                text = notebook_code(raw, candidate) if candidate.endswith(".ipynb") else raw.decode("utf-8", "replace")
            except (UnsafeFile, ValueError) as exc:
                out.problems.append(str(exc))
            else:
                out.files.append(candidate)
                parts.append(f"# ==== {candidate} ====\n{text}")
            break
    out.text = "\n".join(parts)
    return out


def _fingerprint(text: str, boilerplate: np.ndarray | None, window: int = WINDOW) -> Any:
    from copydetect import CodeFingerprint  # imports matplotlib: only when code is compared

    return CodeFingerprint("code.py", NOISE, window, boilerplate=boilerplate, language="python",
                           fp=io.StringIO(text))  # fmt: skip


def boilerplate_hashes(texts: list[str]) -> np.ndarray:
    """Every fingerprint of the given code (copydetect does the same with its boilerplate: a window of 1)."""
    hashes: set[int] = set()
    for text in texts:
        hashes |= set(_fingerprint(text, None, window=1).hashes)
    return np.array(sorted(hashes), dtype=np.int64)


@dataclass
class Fingerprinted:
    """One submission's code, fingerprinted with the boilerplate removed."""

    code: CodeText
    fp: Any  # copydetect.CodeFingerprint

    @property
    def own(self) -> int:
        """Characters of filtered code left once the boilerplate is removed."""
        return int(self.fp.token_coverage)


def fingerprint(code: CodeText, boilerplate: np.ndarray) -> Fingerprinted:
    return Fingerprinted(code, _fingerprint(code.text, boilerplate))


@dataclass
class CodeMatch:
    """copydetect's comparison of two submissions."""

    share_a: float  # share of a's own (non-boilerplate) code found in b
    share_b: float
    overlap: int  # characters of a's filtered code in matching runs
    slices_a: np.ndarray  # (2, n): starts and ends of matching regions in a's text
    slices_b: np.ndarray

    @property
    def score(self) -> float:
        """The larger share: a copy padded with code of its own still contains all of its source."""
        return max(self.share_a, self.share_b)


def compare(a: Fingerprinted, b: Fingerprinted) -> CodeMatch:
    from copydetect import compare_files

    overlap, (share_a, share_b), (slices_a, slices_b) = compare_files(a.fp, b.fp)
    empty = np.zeros((2, 0), dtype=np.int64)
    return CodeMatch(float(share_a), float(share_b), int(overlap),
                     np.asarray(slices_a, dtype=np.int64).reshape(2, -1) if overlap else empty,
                     np.asarray(slices_b, dtype=np.int64).reshape(2, -1) if overlap else empty)  # fmt: skip


def _raw_positions(fp: Any, idx: np.ndarray) -> np.ndarray:
    """Positions in the filtered text -> positions in the raw text (copydetect's own mapping, from compare_files)."""
    offsets = fp.offsets
    if len(offsets) == 0:
        return idx
    return idx + offsets[:, 1][np.clip(np.searchsorted(offsets[:, 0], idx), 0, offsets.shape[0] - 1)]


def partners(a: Fingerprinted, b: Fingerprinted, match: CodeMatch) -> tuple[list[int], list[int]]:
    """For each matching region of a, the region of b it matches most (and the other way round), found through
    the fingerprints both regions hold: the side-by-side view links each region to its counterpart."""
    na, nb = match.slices_a.shape[1], match.slices_b.shape[1]
    votes = np.zeros((na, nb), dtype=np.int64)
    for h in a.fp.hashes & b.fp.hashes:
        pa = _raw_positions(a.fp, np.array(a.fp.hash_idx[h][:1]))
        pb = _raw_positions(b.fp, np.array(b.fp.hash_idx[h][:1]))
        ra = int(np.searchsorted(match.slices_a[0], pa[0], side="right")) - 1
        rb = int(np.searchsorted(match.slices_b[0], pb[0], side="right")) - 1
        if 0 <= ra < na and 0 <= rb < nb:
            votes[ra, rb] += 1
    to_b = [int(np.argmax(votes[i])) if votes[i].any() else -1 for i in range(na)]
    to_a = [int(np.argmax(votes[:, j])) if votes[:, j].any() else -1 for j in range(nb)]
    return to_b, to_a
