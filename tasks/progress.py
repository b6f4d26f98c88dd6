"""Engine progress in the Prefect run log, throttled.

The engine calls back on every iteration; a log line per iteration would flood the
Prefect API (each line is an HTTP write), so only every tenth of the run is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable


def throttled_progress(
    logger: logging.Logger | logging.LoggerAdapter, label: str, fraction: float = 0.1
) -> Callable[[int, int, dict[str, float]], None]:
    """An `on_step(step, total, losses)` callback that logs at each `fraction` of `total`."""
    next_mark = 0.0

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        nonlocal next_mark
        done = step / total if total else 1.0
        if done + 1e-9 < next_mark and step != total:
            return
        next_mark = done + fraction
        loss = losses.get("total")
        loss_text = f", loss {loss:.4g}" if loss is not None else ""
        logger.info("%s: step %d/%d (%d%%)%s", label, step, total, round(100 * done), loss_text)

    return on_step
