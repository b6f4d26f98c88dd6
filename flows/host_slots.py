"""This host's GPU slots, held as OS file locks: one lock file per slot, in one folder per host.

A GPU is a per-machine resource, so its slots are a per-machine lock. The kernel drops an
`flock` the instant its holder dies, however it dies (SIGKILL, out of memory), so a killed
run never blocks the next one, with or without a Prefect server. (A Prefect global
concurrency limit kept the slot of a killed run on the embedded ephemeral server for good:
nothing there expires the lease of a process that took its server down with it.)

The holder writes who it is (pid, flow run, since when) into the lock file, so that a
waiter can say whom it waits for. A stale description left by a dead holder is never
read: a waiter reads the file only while the lock is actually held.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tasks.stopping import raise_if_stopped

POLL_SECONDS = 0.2
REPORT_EVERY_SECONDS = 30.0


@dataclass(frozen=True)
class SlotHolder:
    """Who holds a slot, as written into its lock file."""

    pid: int
    flow_run_id: str | None
    flow_run_name: str | None
    since: str
    # The holder's working folder: slots are machine-wide, so it may be another project's run.
    folder: str | None = None

    def describe(self) -> str:
        run = f"flow run {self.flow_run_name} ({self.flow_run_id})" if self.flow_run_id else "no flow run"
        where = f" in {self.folder}" if self.folder else ""
        return f"{run}, pid {self.pid}{where}, since {self.since}"


WaitReport = Callable[[SlotHolder | None, float], None]


def slot_folder(slot_dir: str | Path, host: str) -> Path:
    """The folder of `host`'s slot lock files."""
    return Path(slot_dir) / host


@contextmanager
def hold_slots(folder: Path, count: int, holder: SlotHolder, on_wait: WaitReport) -> Iterator[float]:
    """Hold slots 0..count-1 of `folder` (in that order, so two batches never deadlock);
    yields the seconds spent waiting.

    While a slot is taken, `on_wait(current holder or None, seconds waited)` is called at
    once and then every REPORT_EVERY_SECONDS. A stop request (tasks.stopping) ends the wait
    with `Interrupted`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ExitStack() as stack:
        for index in range(count):
            stack.enter_context(_slot(folder / f"slot-{index}.lock", holder, on_wait, started))
        yield time.monotonic() - started


@contextmanager
def _slot(path: Path, holder: SlotHolder, on_wait: WaitReport, started: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
    try:
        _lock(fd, holder_of=path, on_wait=on_wait, started=started)
        _describe(fd, holder)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor drops the lock


def _lock(fd: int, *, holder_of: Path, on_wait: WaitReport, started: float) -> None:
    next_report = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - started
        if waited >= next_report:
            on_wait(read_holder(holder_of), waited)
            next_report = waited + REPORT_EVERY_SECONDS
        raise_if_stopped()
        time.sleep(POLL_SECONDS)


def _describe(fd: int, holder: SlotHolder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)


def read_holder(path: Path) -> SlotHolder | None:
    """The holder written in a lock file; None if it is empty or being rewritten."""
    try:
        return SlotHolder(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
