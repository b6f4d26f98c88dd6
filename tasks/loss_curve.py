"""The per-evaluation losses of a run, kept small enough for the Run's metrics column.

The gallery draws each artwork's loss curve from these points. They live in the metrics
JSON (not in a stored artifact) because the artwork page already reads the Run row: the curve
costs no extra store round trip (an S3 GET per page view), it is written in the same
transaction as the rest of the run, and at most MAX_POINTS points per loss it stays a few KB.
"""

from __future__ import annotations

from typing import Any

MAX_POINTS = 200
CURVES = ("total", "content", "style")


class LossCurve:
    """Collects losses at every evaluation; `as_metrics()` thins them to MAX_POINTS evenly spaced ones."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: dict[str, list[float]] = {name: [] for name in CURVES}

    def add(self, step: int, losses: dict[str, float]) -> None:
        self.steps.append(step)
        for name in CURVES:
            self.values[name].append(float(losses.get(name, float("nan"))))

    def as_metrics(self) -> dict[str, Any]:
        """`{"loss_curve": {"evaluation": [...], "total": [...], ...}}`, or {} when nothing was recorded."""
        count = len(self.steps)
        if not count:
            return {}
        keep = sorted({round(i * (count - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)}) if count > MAX_POINTS \
            else range(count)
        curve: dict[str, list[Any]] = {"evaluation": [self.steps[i] for i in keep]}
        for name, values in self.values.items():
            curve[name] = [values[i] for i in keep]
        return {"loss_curve": curve}
