"""The embedded Prefect server's process: what it prints while serving reaches the console,
what it prints once the command stops it goes to the debug log (issue 21: a clean run ended
with the server's aiosqlite CancelledError traceback on the console)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.unit

# Stands in for uvicorn: says it serves, and prints a traceback when stopped with SIGTERM.
SERVER = """
import signal, sys, time
def stop(*_):
    sys.stderr.write("Traceback (most recent call last):\\nasyncio.exceptions.CancelledError\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
sys.stderr.write("serving\\n"); sys.stderr.flush()
time.sleep(60)
"""


def test_the_servers_shutdown_noise_goes_to_the_debug_log_not_the_console(capfd, caplog):
    from flows.embedded_server import _popen_dying_with

    stopping = threading.Event()
    process = _popen_dying_with(os.getpid(), stopping)([sys.executable, "-c", SERVER])
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "serving" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capfd.readouterr().err
        assert "serving" in seen  # while it serves, its words reach the console
        assert os.getsid(process.pid) != os.getsid(0)  # out of our session: a terminal's Ctrl-C misses it

        with caplog.at_level(logging.DEBUG, logger="flows.embedded_server"):
            stopping.set()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            deadline = time.monotonic() + 5
            while "CancelledError" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        process.kill()
        process.wait()

    assert "Traceback" not in capfd.readouterr().err
    assert "embedded Prefect server, stopping: asyncio.exceptions.CancelledError" in caplog.text
