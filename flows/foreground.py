"""Running a batch flow in the foreground of a command, stoppable with Ctrl-C or SIGTERM.

The flow runs in a worker thread; the main thread only waits and handles the signals.
Run in the main thread, the flow would get Ctrl-C as a KeyboardInterrupt wherever it
happened to be (Prefect marks the run Crashed and then waits for the running job to end),
and Prefect would take SIGTERM over for its own bridge.

The first signal says what happens, asks every job to stop at its next evaluation
(tasks.stopping) and lets the flow release its jobs and end; the second one exits at once
(the jobs then wait for their leases, the GPU slot and the embedded server go with the
process). A flow that has not ended GRACE_SECONDS after the first signal is left the same way.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tasks.stopping import request_stop

INTERRUPTED_EXIT = 130  # the shell's code for "ended by Ctrl-C"
GRACE_SECONDS = 30.0
T = TypeVar("T")


def run_stoppable(work: Callable[[], T], say: Callable[[str], None]) -> tuple[T | None, str | None]:
    """`work()` in a worker thread, stopped cleanly by the first SIGINT or SIGTERM; returns
    (its result, or None if it raised after a stop; the signal's name, or None)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except BaseException as exc:  # handed to the main thread below
            outcome["error"] = exc

    received: list[str] = []
    stopped_at: list[float] = []

    def on_signal(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if received:
            say(f"{name} again: exiting now; running jobs wait for their leases")
            os._exit(INTERRUPTED_EXIT)
        received.append(name)
        stopped_at.append(time.monotonic())
        say(f"{name}: stopping the running jobs at their next step and releasing the batch's jobs "
            f"(pending again, no attempt lost); press Ctrl-C again to exit at once")
        request_stop(name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker = threading.Thread(target=target, name="atelier-flow", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)  # short joins let the handlers run
            if stopped_at and time.monotonic() - stopped_at[0] > GRACE_SECONDS:
                say(f"the flow did not end within {GRACE_SECONDS:.0f} s of {received[0]}: exiting now")
                os._exit(INTERRUPTED_EXIT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    signal_name = received[0] if received else None
    if "error" in outcome:
        if signal_name:
            return None, signal_name
        raise outcome["error"]
    return outcome.get("result"), signal_name
