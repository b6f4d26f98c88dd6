"""A process-wide request to stop: set by a signal (Ctrl-C, SIGTERM) or a flow-run cancellation.

Signals reach a whole process, so the request is process-wide too. Whoever is working
checks it at its natural pause points (the engine at each evaluation, a batch before it
starts a job, a waiter for the GPU slot at each poll) and raises `Interrupted`, so that the
job is released on the way out instead of being left leased for the whole lease.
"""

from __future__ import annotations

import threading

_stop = threading.Event()
_reason: list[str] = []


class Interrupted(Exception):
    """Work stopped on request; its job goes back to pending without losing an attempt."""


def request_stop(reason: str) -> None:
    """Ask every job and waiter of this process to stop at its next pause point."""
    if not _stop.is_set():
        _reason[:] = [reason]
        _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def stop_reason() -> str:
    """What asked to stop (a signal's name, a cancellation), once a stop has been requested."""
    return _reason[0] if _reason else "request"


def raise_if_stopped() -> None:
    """The pause point: raise `Interrupted` once a stop has been requested."""
    if _stop.is_set():
        raise Interrupted(f"stopped by {stop_reason()}")


def clear_stop() -> None:
    """Forget a handled request (a long-lived process, or a test, goes on working)."""
    _stop.clear()
    _reason.clear()
