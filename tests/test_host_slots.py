"""The host's GPU slots as file locks: a dead holder frees them at once, and a waiter says whom it waits for."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.host_slots import SlotHolder, hold_slots, read_holder
from tasks.stopping import Interrupted, clear_stop, request_stop

pytestmark = pytest.mark.unit

HOLDER = SlotHolder(pid=1234, flow_run_id="run-a", flow_run_name="gentle-heron", since="2026-11-26T02:00:00+00:00")
REPO = Path(__file__).resolve().parents[1]


def test_a_killed_holder_frees_the_slot_at_once(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from flows.host_slots import SlotHolder, hold_slots\n"
            "me = SlotHolder(pid=0, flow_run_id='killed-run', flow_run_name='doomed', since='now')\n"
            "with hold_slots(Path(sys.argv[1]), 1, me, lambda h, w: None):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n"
        ), str(tmp_path)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert read_holder(tmp_path / "slot-0.lock").flow_run_id == "killed-run"
    finally:
        holder.kill()
        holder.wait()

    waits: list[float] = []
    started = time.monotonic()
    with hold_slots(tmp_path, 1, HOLDER, lambda current, waited: waits.append(waited)):
        assert read_holder(tmp_path / "slot-0.lock") == HOLDER
    assert time.monotonic() - started < 1.0
    assert waits == []  # the lock was free: nobody waited


def test_a_waiter_reports_the_holder_and_gets_the_slot_when_it_is_released(tmp_path):
    reports: list[tuple[SlotHolder | None, float]] = []
    got_it = threading.Event()

    def second_batch() -> None:
        other = SlotHolder(pid=5678, flow_run_id="run-b", flow_run_name="b", since="later")
        with hold_slots(tmp_path, 2, other, lambda current, waited: reports.append((current, waited))):
            got_it.set()

    with hold_slots(tmp_path, 2, HOLDER, lambda current, waited: None):
        waiter = threading.Thread(target=second_batch)
        waiter.start()
        time.sleep(0.6)
        assert not got_it.is_set()
    waiter.join(timeout=5)

    assert got_it.is_set()
    assert reports and reports[0][0] == HOLDER
    assert "flow run gentle-heron (run-a)" in reports[0][0].describe()
    assert read_holder(tmp_path / "slot-0.lock") is None  # released slots name nobody


def test_a_stop_request_ends_the_wait(tmp_path):
    with hold_slots(tmp_path, 1, HOLDER, lambda current, waited: None):
        request_stop("SIGINT")
        try:
            with pytest.raises(Interrupted), hold_slots(tmp_path, 1, HOLDER, lambda current, waited: None):
                pass
        finally:
            clear_stop()
