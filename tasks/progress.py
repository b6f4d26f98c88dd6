"""Engine progress in the Prefect run log, throttled, and each running job's share done.

The engine calls back on every iteration; a log line per iteration would flood the
Prefect API (each line is an HTTP write), so only every tenth of the run is reported.
The share done of each running job is kept in memory for the batch's progress artifact,
which runs in the same process (the task runner's threads) and reads it on a timer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

_share_done: dict[int, float] = {}
_share_lock = threading.Lock()


def note_share_done(job_id: int, share: float) -> None:
    """How far running job `job_id` is, from 0 to 1."""
    with _share_lock:
        _share_done[job_id] = min(max(share, 0.0), 1.0)


def shares_done(job_ids: Iterable[int], *, forget: bool = False) -> float:
    """The summed share done of `job_ids` (0 for a job not started); `forget` drops them."""
    ids = list(job_ids)
    with _share_lock:
        total = sum(_share_done.get(job_id, 0.0) for job_id in ids)
        if forget:
            for job_id in ids:
                _share_done.pop(job_id, None)
        return total


def throttled_progress(
    logger: logging.Logger | logging.LoggerAdapter, label: str, fraction: float = 0.1, unit: str = "step"
) -> Callable[[int, int, dict[str, float]], None]:
    """An `on_step(step, total, losses)` callback that logs at each `fraction` of `total`
    (`unit` names what is counted: optimizer steps, or a clip's frames)."""
    next_mark = 0.0

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        nonlocal next_mark
        done = step / total if total else 1.0
        if done + 1e-9 < next_mark and step != total:
            return
        next_mark = done + fraction
        loss = losses.get("total")
        loss_text = f", loss {loss:.4g}" if loss is not None else ""
        logger.info("%s: %s %d/%d (%d%%)%s", label, unit, step, total, round(100 * done), loss_text)

    return on_step
