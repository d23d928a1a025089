"""Small, dependency-free charts for per-epoch series: an SVG line chart and a text sparkline."""

from __future__ import annotations

import html

BARS = "▁▂▃▄▅▆▇█"
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(BARS[min(len(BARS) - 1, int((v - lo) / span * (len(BARS) - 1) + 0.5))] for v in values)


def line_chart(
    series: dict[str, list[float]], title: str, y_label: str = "", width: int = 480, height: int = 260
) -> str:
    """An SVG chart of one or more series against their index (epoch 1, 2, ...)."""
    left, right, top, bottom = 48, 110, 28, 36
    all_values = [v for vals in series.values() for v in vals]
    n = max((len(v) for v in series.values()), default=1)
    lo, hi = (min(all_values), max(all_values)) if all_values else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(i: int) -> float:
        return left + (width - left - right) * (i / max(1, n - 1))

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    mid = top + (height - top - bottom) / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="16" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#333"/>',
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">epoch</text>',
        f'<text x="12" y="{mid}" transform="rotate(-90 12 {mid})" text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    for i in range(n):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 14}" text-anchor="middle">{i + 1}</text>')
    for idx, (name, vals) in enumerate(series.items()):
        color = COLORS[idx % len(COLORS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(vals))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts += [f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>' for i, v in enumerate(vals)]
        ly = top + 14 * idx
        lx = width - right + 8
        parts.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 16}" y2="{ly}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{lx + 20}" y="{ly + 4}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
