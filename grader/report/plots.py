"""Small, dependency-free charts: SVG line charts of per-epoch series, a histogram, horizontal bars, a
confusion-matrix heatmap, and a text sparkline. Every label is escaped: names come from student code."""

from __future__ import annotations

import html
import math

BARS = "▁▂▃▄▅▆▇█"
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
GOOD, FAIR, POOR = "#1a7f37", "#bf8700", "#cf222e"


def _e(text: object) -> str:
    return html.escape(str(text))


def _svg_open(width: int, height: int, label: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_e(label)}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def sparkline(values: list[float]) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(BARS[min(len(BARS) - 1, int((v - lo) / span * (len(BARS) - 1) + 0.5))] for v in values)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) spanning [lo, hi]."""
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    raw = (hi - lo) / (count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    start, end = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return [round(start + k * step, 12) for k in range(round((end - start) / step) + 1)]


def line_chart(
    series: dict[str, list[float]], title: str, y_label: str = "", width: int = 480, height: int = 260
) -> str:
    """An SVG chart of one or more series against their index (epoch 1, 2, ...). Non-finite values (a diverged
    loss) leave a gap instead of breaking the scale."""
    left, right, top, bottom = 52, 110, 28, 36
    all_values = [v for vals in series.values() for v in vals if math.isfinite(v)]
    n = max((len(v) for v in series.values()), default=1)
    ticks = nice_ticks(min(all_values, default=0.0), max(all_values, default=1.0))
    lo, hi = ticks[0], ticks[-1]

    def x(i: int) -> float:
        return left + (width - left - right) * (i / max(1, n - 1))

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    mid = top + (height - top - bottom) / 2
    parts = _svg_open(width, height, title) + [
        f'<text x="{left}" y="16" font-size="13">{_e(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">epoch</text>',
        f'<text x="12" y="{mid}" transform="rotate(-90 12 {mid})" text-anchor="middle">{_e(y_label)}</text>',
    ]
    for v in ticks:
        parts.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{width - right}" y2="{y(v):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.6g}</text>')
    step = max(1, math.ceil(n / 12))  # at most ~12 epoch labels, so long runs stay readable
    for i in range(0, n, step):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 14}" text-anchor="middle">{i + 1}</text>')
    for idx, (name, vals) in enumerate(series.items()):
        color = COLORS[idx % len(COLORS)]
        run: list[str] = []
        for i, v in enumerate([*vals, math.nan]):  # the sentinel flushes the last run of finite points
            if math.isfinite(v):
                run.append(f"{x(i):.1f},{y(v):.1f}")
                continue
            if run:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>')
            run = []
        if n <= 60:  # markers only where they do not merge into a blob
            parts += [
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>'
                for i, v in enumerate(vals)
                if math.isfinite(v)
            ]
        ly = top + 14 * idx
        lx = width - right + 8
        parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 16}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{lx + 20}" y="{ly + 4}">{_e(_clip(name, 14))}<title>{_e(name)}</title></text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def bin_counts(values: list[float], lo: float, hi: float, bins: int) -> list[int]:
    """How many values fall in each of `bins` equal bins over [lo, hi]; the last bin includes hi, and values
    outside the range go to the nearest end bin (a total can dip below 0 or exceed the max after adjustments)."""
    counts = [0] * bins
    span = (hi - lo) or 1.0
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / span * bins)))] += 1
    return counts


def histogram(
    values: list[float],
    lo: float,
    hi: float,
    bins: int = 10,
    title: str = "",
    x_label: str = "",
    y_label: str = "students",
    width: int = 560,
    height: int = 260,
    color: str = "#1f77b4",
    marker: float | None = None,
    marker_label: str = "",
) -> str:
    """SVG bars of how many values fall in each bin; every bar is a `rect class="bar"` with a tooltip. `marker`
    draws a dashed vertical line at that x (a threshold), labelled `marker_label`."""
    left, right, top, bottom = 44, 16, 34, 42
    counts = bin_counts(values, lo, hi, bins)
    top_count = max(max(counts, default=0), 1)
    scale = top_count * 1.12  # headroom for the count above the tallest bar
    plot_w, plot_h = width - left - right, height - top - bottom
    bar_w = plot_w / bins

    def y(c: float) -> float:
        return top + plot_h * (1 - c / scale)

    mid = top + plot_h / 2
    parts = _svg_open(width, height, title or "histogram") + [
        f'<text x="{left}" y="18" font-size="13">{_e(title)}</text>',
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{_e(x_label)}</text>',
        f'<text x="12" y="{mid}" transform="rotate(-90 12 {mid})" text-anchor="middle">{_e(y_label)}</text>',
    ]
    tick = max(1, math.ceil(top_count / 5))
    for c in range(0, top_count + 1, tick):
        parts.append(f'<line x1="{left}" y1="{y(c):.1f}" x2="{width - right}" y2="{y(c):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y(c) + 4:.1f}" text-anchor="end">{c}</text>')
    for i, count in enumerate(counts):
        a, b = lo + (hi - lo) * i / bins, lo + (hi - lo) * (i + 1) / bins
        bx = left + bar_w * i
        if count:
            parts.append(
                f'<rect class="bar" data-count="{count}" x="{bx + 2:.1f}" y="{y(count):.1f}" width="{bar_w - 4:.1f}" '
                f'height="{plot_h - (y(count) - top):.1f}" fill="{color}"><title>{a:g} to {b:g}: {count}</title></rect>'
            )
            parts.append(f'<text x="{bx + bar_w / 2:.1f}" y="{y(count) - 4:.1f}" text-anchor="middle">{count}</text>')
        parts.append(f'<text x="{bx:.1f}" y="{height - bottom + 14}" text-anchor="middle">{a:.3g}</text>')
    parts.append(f'<text x="{left + plot_w:.1f}" y="{height - bottom + 14}" text-anchor="middle">{hi:.3g}</text>')
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>'
    )
    if marker is not None and lo <= marker <= hi:
        mx = left + plot_w * (marker - lo) / ((hi - lo) or 1.0)
        parts.append(f'<line class="marker" x1="{mx:.1f}" y1="{top - 6}" x2="{mx:.1f}" y2="{top + plot_h}" '
                     f'stroke="#cf222e" stroke-width="2" stroke-dasharray="5 3"/>')  # fmt: skip
        anchor = "end" if mx > left + plot_w * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(f'<text x="{mx + dx:.1f}" y="{top + 4}" text-anchor="{anchor}" fill="#cf222e">'
                     f"{_e(marker_label)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def rate_color(fraction: float) -> str:
    """Green from 80 %, amber from 50 %, red below: the instructor's eye goes to the red bars first."""
    return GOOD if fraction >= 0.8 else FAIR if fraction >= 0.5 else POOR


def bars(items: list[tuple[str, float, str]], title: str = "", width: int = 560, label_chars: int = 26) -> str:
    """Horizontal bars, one per (label, fraction in [0, 1], text shown after the bar), coloured by `rate_color`."""
    label_w, text_w, row, top = 7 * label_chars + 8, 96, 24, 28 if title else 6
    track = width - label_w - text_w
    height = top + row * len(items) + 6
    parts = _svg_open(width, height, title or "bars")
    if title:
        parts.append(f'<text x="4" y="18" font-size="13">{_e(title)}</text>')
    for i, (label, fraction, text) in enumerate(items):
        f = min(1.0, max(0.0, fraction)) if math.isfinite(fraction) else 0.0
        ry = top + row * i
        parts += [
            f'<text x="{label_w - 8}" y="{ry + 15}" text-anchor="end">{_e(_clip(label, label_chars))}'
            f"<title>{_e(label)}</title></text>",
            f'<rect x="{label_w}" y="{ry + 4}" width="{track}" height="{row - 8}" fill="#eaeef2" rx="3"/>',
            f'<rect class="bar" data-value="{f:.4f}" x="{label_w}" y="{ry + 4}" width="{track * f:.1f}" '
            f'height="{row - 8}" fill="{rate_color(f)}" rx="3"/>',
            f'<text x="{label_w + track + 8}" y="{ry + 15}" fill="{rate_color(f)}">{_e(text)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def heat(f: float) -> str:
    """White (0) to dark blue (1): the heat of one confusion-matrix cell."""
    lo, hi = (255, 255, 255), (8, 69, 148)
    return "#" + "".join(f"{round(a + (b - a) * f):02x}" for a, b in zip(lo, hi, strict=True))


def confusion_svg(labels: list[str], matrix: list[list[int]], title: str = "") -> str:
    """A heatmap of matrix[true][predicted]: counts in the cells, shaded by the share of their row (so a rare
    class is as readable as a common one), per-class recall on the right."""
    n = len(labels)
    cell = 38 if n <= 12 else max(14, 456 // max(n, 1))
    chars = min(14, max((len(s) for s in labels), default=1))
    left = 7 * chars + 30
    top = int(5 * chars) + (46 if title else 26)
    right = 64
    width, height = left + cell * n + right, top + cell * n + 12
    parts = _svg_open(width, height, title or "confusion matrix")
    if title:
        parts.append(f'<text x="4" y="16" font-size="13">{_e(title)}</text>')
    grid_mid = top + cell * n / 2
    parts += [
        f'<text x="{left + cell * n / 2}" y="{top - 5 * chars - 10}" text-anchor="middle" font-weight="bold">'
        "predicted</text>",
        f'<text x="12" y="{grid_mid}" transform="rotate(-90 12 {grid_mid})" text-anchor="middle" '
        'font-weight="bold">true</text>',
        f'<text x="{left + cell * n + 8}" y="{top - 6}" font-weight="bold">recall</text>',
    ]
    font = 11 if cell >= 30 else 8
    for j, name in enumerate(labels):
        cx = left + cell * j + cell / 2
        parts.append(
            f'<text transform="translate({cx:.1f} {top - 6}) rotate(-45)">{_e(_clip(name, 14))}'
            f"<title>{_e(name)}</title></text>"
        )
    for i, name in enumerate(labels):
        row = matrix[i] if i < len(matrix) else []
        total = sum(row)
        ry = top + cell * i
        parts.append(
            f'<text x="{left - 6}" y="{ry + cell / 2 + 4:.1f}" text-anchor="end">{_e(_clip(name, 14))}'
            f"<title>{_e(name)}</title></text>"
        )
        for j in range(n):
            count = row[j] if j < len(row) else 0
            f = count / total if total else 0.0
            tip = f"true {name}, predicted {labels[j]}: {count}" + (f" ({f:.1%} of {name})" if total else "")
            parts.append(
                f'<rect class="cell" x="{left + cell * j}" y="{ry}" width="{cell}" height="{cell}" fill="{heat(f)}" '
                f'stroke="{"#333" if i == j else "#ddd"}" stroke-width="{1.5 if i == j else 0.5}">'
                f"<title>{_e(tip)}</title></rect>"
            )
            if cell >= 20 or count:
                parts.append(
                    f'<text x="{left + cell * j + cell / 2}" y="{ry + cell / 2 + 4:.1f}" text-anchor="middle" '
                    f'font-size="{font}" fill="{"white" if f > 0.5 else "#222"}">{count}</text>'
                )
        recall = f"{row[i] / total:.1%}" if total and i < len(row) else "–"
        color = rate_color(row[i] / total) if total and i < len(row) else "#555"
        parts.append(f'<text x="{left + cell * n + 8}" y="{ry + cell / 2 + 4:.1f}" fill="{color}">{recall}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def split_loss(series: dict[str, list[float]]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(the loss curves, the rest): they have different scales, so reports draw them on separate charts."""
    loss = {k: v for k, v in series.items() if "loss" in k.lower()}
    return loss, {k: v for k, v in series.items() if k not in loss}


def plot_groups(series: dict[str, list[float]]) -> list[tuple[str, dict[str, list[float]], str]]:
    """(file suffix, series, y label) for the accuracy-like and the loss series of a check, where present."""
    loss, other = split_loss(series)
    return [g for g in (("", other, "percent"), ("-loss", loss, "loss")) if g[1]]
