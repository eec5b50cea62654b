"""Bar charts as inline SVG, built by hand: no plotting library, no script, nothing fetched.

A bar whose count is suppressed ("fewer than N") is drawn as an outline up to N with a hatched fill,
so the chart shows an upper bound and never the exact small count; its tooltip says "fewer than N".
"""

from __future__ import annotations

import math
from html import escape

__all__ = ["bar_chart"]

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 46


def _nice(top: float) -> float:
    """A round axis maximum at or above ``top`` (1, 2 or 5 times a power of ten)."""
    if top <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(top))
    return next(m * mag for m in (1, 2, 5, 10) if top <= m * mag)


def bar_chart(
    title: str, labels: list[str], values: list[int], suppressed: list[bool], min_count: int, colour: str = "#3465a4"
) -> str:
    """One SVG bar chart; ``suppressed[i]`` draws bar ``i`` as "fewer than ``min_count``"."""
    shown = [min_count if s else v for v, s in zip(values, suppressed, strict=True)]
    top = _nice(max(shown, default=0))
    n = max(1, len(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar = max(1.0, slot * 0.8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#888" stroke-width="2"/>'
        "</pattern></defs>",
    ]
    for i in range(5):  # gridlines and the axis' labels
        v = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
    every = max(1, n // 12)
    for i, (label, v, s) in enumerate(zip(labels, shown, suppressed, strict=True)):
        h = plot_h * v / top if top else 0
        x = LEFT + i * slot + (slot - bar) / 2
        y = TOP + plot_h - h
        tip = f"{label}: fewer than {min_count}" if s else f"{label}: {v}"
        fill = 'fill="url(#hatch)" stroke="#555"' if s else f'fill="{colour}"'
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" {fill}>'
            f"<title>{escape(tip)}</title></rect>"
        )
        if i % every == 0:
            lx, ly = LEFT + i * slot + slot / 2, HEIGHT - BOTTOM + 12
            parts.append(
                f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="10" text-anchor="end" '
                f'transform="rotate(-35 {lx:.1f} {ly:.1f})">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
