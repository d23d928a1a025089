"""How the generated class's copiers disguise what they copied: the edits a student makes in an editor."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize

# Local names a copier renames (never attributes or keywords: those would change the state_dict keys or calls).
RENAMES = {
    "out": "h", "logits": "scores", "loss": "batch_loss", "correct": "n_ok", "ckpt": "saved", "start": "first",
    "xb": "imgs", "yb": "lbls", "c_in": "in_ch", "c_out": "out_ch", "model": "net", "optimizer": "opt",
    "epoch": "ep", "history": "hist", "path": "fname", "right": "hits", "padded": "padded_imgs", "flip": "mirror",
}  # fmt: skip
# Where each top-level definition of exp2.py goes: ResNet20 before BasicBlock, evaluate first among the
# training functions, resume before save_checkpoint, and lr_for_epoch after train_step.
ORDER = ["load_cifar10", "augment", "normalize", "batches", "ResNet20", "BasicBlock", "evaluate", "make_optimizer",
         "set_lr", "train_step", "lr_for_epoch", "resume", "save_checkpoint", "main"]  # fmt: skip


def without_solution_markers(source: str) -> str:
    """A student's file has no `### BEGIN SOLUTION` lines: the reference solution as a student would hand it in."""
    return "".join(ln for ln in source.splitlines(keepends=True) if "### " not in ln or "SOLUTION" not in ln)


def rename(source: str, renames: dict[str, str] = RENAMES) -> str:
    """Rename local names throughout, leaving attributes (`x.name`) and keyword arguments (`name=`) alone."""
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    out = []
    for i, tok in enumerate(toks):
        prev = toks[i - 1].string if i else ""
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        keyword_arg = nxt == "=" and _in_call(toks, i)
        if tok.type == tokenize.NAME and tok.string in renames and prev != "." and not keyword_arg:
            tok = tok._replace(string=renames[tok.string])
        out.append(tok)
    return tokenize.untokenize(out)


def _in_call(toks: list[tokenize.TokenInfo], i: int) -> bool:
    depth = 0
    for tok in reversed(toks[:i]):
        if tok.string in ")]}":
            depth += 1
        elif tok.string in "([{":
            if depth == 0:
                return tok.string == "("
            depth -= 1
        elif tok.type == tokenize.NEWLINE:
            return False
    return False


def reorder(source: str, order: list[str] = ORDER) -> str:
    """Move the top-level functions and classes into `order`; everything between them stays where it was."""
    lines = source.splitlines(keepends=True)
    defs = [n for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    spans = {n.name: (n.lineno - 1 - len(n.decorator_list), n.end_lineno or n.lineno) for n in defs}
    slots = sorted(spans.values())
    if sorted(order) != sorted(spans):
        raise ValueError(f"order names {sorted(order)}; the file defines {sorted(spans)}")
    out, pos = [], 0
    for (start, end), name in zip(slots, order, strict=True):
        out += lines[pos:start]
        a, b = spans[name]
        out += lines[a:b]
        pos = end
    return "".join(out + lines[pos:])


def disguise(source: str) -> str:
    """What the code copier hands in: the source with names renamed and functions reordered, still valid."""
    out = reorder(rename(without_solution_markers(source)))
    compile(out, "copied.py", "exec")
    return out


def as_notebook(source: str) -> bytes:
    """The source pasted into a notebook: one code cell per top-level block, with markdown cells and outputs."""
    blocks = [b for b in re.split(r"\n(?=(?:def|class|# -{10,}) )", source) if b.strip()]
    cells: list[dict] = [{"cell_type": "markdown", "metadata": {}, "source": ["# exp2: ResNet20 on CIFAR-10\n"]},
                         {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [],
                          "source": ["!pip install torch\n", "%matplotlib inline"]}]  # fmt: skip
    for n, block in enumerate(blocks, 2):
        cells.append({"cell_type": "markdown", "metadata": {}, "source": [f"Step {n}\n"]})
        cells.append({"cell_type": "code", "metadata": {}, "execution_count": n, "source": block.splitlines(True),
                      "outputs": [{"output_type": "stream", "name": "stdout", "text": ["ok\n"]}]})  # fmt: skip
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    return json.dumps(nb, indent=1).encode()
