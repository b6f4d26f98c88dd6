"""The loss curve as an inline SVG: no script, no external library, readable with JavaScript off.

Losses fall over orders of magnitude, so the y axis is logarithmic. Only numbers computed here
enter the markup (never text from the catalog), so the SVG needs no escaping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

WIDTH, HEIGHT, MARGIN = 560, 240, 48
COLORS = {"total": "#222", "content": "#1f77b4", "style": "#d62728"}


def _finite_positive(values: Sequence[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v) and v > 0]


def loss_curve_svg(curve: Mapping[str, Sequence[Any]] | None, label: str = "loss per evaluation",
                   x_label: str = "evaluation") -> Markup | None:
    """An SVG plot of a run's `loss_curve` (evaluation -> total, content, style), or None without one.

    `label` and `x_label` are the plot's accessible name and its x axis (a model's curves count
    training steps); they are constants of the caller, never catalog text.
    """
    if not curve or len(curve.get("evaluation", ())) < 2:
        return None
    steps = [float(s) for s in curve["evaluation"]]
    series = {name: curve.get(name, []) for name in COLORS}
    every = [v for values in series.values() for v in _finite_positive(values)]
    if not every:
        return None
    low, high = math.log10(min(every)), math.log10(max(every))
    high = high if high > low else low + 1
    first, last = steps[0], steps[-1] if steps[-1] > steps[0] else steps[0] + 1

    def x(step: float) -> float:
        return MARGIN + (step - first) / (last - first) * (WIDTH - 2 * MARGIN)

    def y(value: float) -> float:
        return HEIGHT - MARGIN + (low - math.log10(value)) / (high - low) * (HEIGHT - 2 * MARGIN)

    parts = [f'<svg class="plot" role="img" aria-label="{label}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{MARGIN}" y="{MARGIN}" width="{WIDTH - 2 * MARGIN}" height="{HEIGHT - 2 * MARGIN}" '
             'fill="none" stroke="#bbb"/>']
    for exponent in range(math.ceil(low), math.floor(high) + 1):
        ty = y(10.0**exponent)
        parts.append(f'<line x1="{MARGIN}" x2="{WIDTH - MARGIN}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#eee"/>'
                     f'<text x="{MARGIN - 4}" y="{ty + 4:.1f}" text-anchor="end" font-size="11">1e{exponent}</text>')
    for step in (first, last):
        parts.append(f'<text x="{x(step):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle" '
                     f'font-size="11">{int(step)}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="12">{x_label}</text>')
    for index, (name, values) in enumerate(series.items()):
        points = " ".join(f"{x(s):.1f},{y(float(v)):.1f}" for s, v in zip(steps, values, strict=False)
                          if isinstance(v, int | float) and math.isfinite(v) and v > 0)
        if points:
            parts.append(f'<polyline class="loss-{name}" fill="none" stroke="{COLORS[name]}" stroke-width="1.5" '
                         f'points="{points}"/>')
            parts.append(f'<text x="{MARGIN + 8 + index * 80}" y="{MARGIN - 10}" font-size="12" '
                         f'fill="{COLORS[name]}">{name}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
