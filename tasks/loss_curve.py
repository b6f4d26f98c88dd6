"""The per-evaluation losses of a run, kept small enough for the Run's metrics column.

The gallery draws each artwork's loss curve from these points. They live in a JSON column of
the Run (`runs.loss_curve`), not in a stored artifact: the artwork page reads the Run row
anyway, so the curve costs no store round trip (an S3 GET per page view) and cannot go
missing apart from its run; it is written in the same transaction as the rest of the run.
Not in `metrics` either: listings and rankings read every run's metrics, and at MAX_POINTS
points per loss the curve is ~12 KB of JSON that they would parse for nothing.
"""

from __future__ import annotations

from typing import Any

MAX_POINTS = 200
CURVES = ("total", "content", "style")


class LossCurve:
    """Collects losses at every evaluation; `points()` thins them to MAX_POINTS evenly spaced ones."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {name: [] for name in CURVES}

    def add(self, step: int, losses: dict[str, float]) -> None:
        self.steps.append(step)
        for name in CURVES:
            self.values[name].append(float(losses.get(name, float("nan"))))

    def points(self) -> dict[str, list[Any]] | None:
        """`{"evaluation": [...], "total": [...], "content": [...], "style": [...]}`, or None when nothing was recorded."""
        count = len(self.steps)
        if not count:
            return None
        keep = sorted({round(i * (count - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)}) if count > MAX_POINTS \
            else range(count)
        curve: dict[str, list[Any]] = {"evaluation": [self.steps[i] for i in keep]}
        for name, values in self.values.items():
            curve[name] = [values[i] for i in keep]
        return curve
