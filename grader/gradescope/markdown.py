"""Plain text (check messages, which may quote student output) as Gradescope Markdown that renders as written."""

from __future__ import annotations

import re

# Everything Markdown (and the HTML it may pass through) would read as markup.
SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")
FENCE = "````"


def md_text(text: str) -> str:
    """One paragraph: specials escaped, line breaks kept (a hard break is two spaces before the newline)."""
    return "  \n".join(SPECIAL.sub(r"\\\1", line) for line in text.splitlines() or [""])


def md_lines(parts: list[str]) -> str:
    """The first line as a paragraph; longer text (details, tracebacks) as a fenced block, where nothing is
    markup. A fence longer than any run of backticks in the text closes only where we close it."""
    text = "\n".join(p for p in parts if p).strip("\n")
    if not text:
        return ""
    first, _, rest = text.partition("\n")
    if not rest.strip():
        return md_text(first)
    longest = max((len(m) for m in re.findall(r"`+", rest)), default=0)
    fence = "`" * max(len(FENCE), longest + 1)
    return f"{md_text(first)}\n\n{fence}text\n{rest}\n{fence}"
