"""Prefect's embedded (ephemeral) API server, started so that it dies with this process.

Without PREFECT_API_URL, Prefect 3 starts a temporary API server (uvicorn) as a child
process on first use and stops it at exit. A process killed with SIGKILL runs no exit
handler, so that server (about 200 MB) used to live on as an orphan. Here the same server
is started by the main thread with the kernel's parent-death signal armed in the child
(Linux `PR_SET_PDEATHSIG`): when the parent dies, however it dies, the kernel kills the
server. Prefect's own lookups reuse this instance (it keeps one server per port).

The parent-death signal fires when the *thread* that started the child ends, so the
server must be started from the main thread, before anything else asks for it (Prefect's
log and event threads would otherwise start it from theirs).

The server runs in a session of its own. A terminal's Ctrl-C (and a `kill` of the job's
process group) signals every process of the foreground group: in ours, the server stopped at
once while the flow, stopping cleanly, still had to report to it, and waited 30 s on it. Out
of the group, it lives until the command ends (Prefect stops it at exit; the parent-death
signal covers every other way out).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
from types import SimpleNamespace
from typing import Any

PR_SET_PDEATHSIG = 1
logger = logging.getLogger(__name__)


def start_embedded_server() -> str | None:
    """Start the embedded API server if no server is configured; its API URL, or None
    when PREFECT_API_URL points at a real server (nothing to start)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("start the embedded Prefect server from the main thread (it dies with that thread)")
    server = _server_class()()
    server.start(timeout=_startup_timeout())
    return server.api_url


def _startup_timeout() -> int:
    """Prefect's own limit where the user set one, else two minutes.

    Prefect waits 20 s by default; its server takes 15-20 s to start on an idle 2-core machine
    (importing the API and migrating its database), so a command failed there before any work.
    """
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in os.environ:
        return PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    return 120


def _server_class() -> type:
    from prefect.server.api import server as server_module

    class ServerDyingWithParent(server_module.SubprocessASGIServer):
        """Prefect's ephemeral server, its process armed to die with ours, its stderr relayed."""

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect's module spawns through `subprocess.Popen`; only that name, in that
            # module, for this one call, gets the parent-death signal added.
            self.stopping = getattr(self, "stopping", None) or threading.Event()
            prefect_subprocess = server_module.subprocess
            server_module.subprocess = SimpleNamespace(Popen=_popen_dying_with(os.getpid(), self.stopping))
            try:
                return super()._run_uvicorn_command()
            finally:
                server_module.subprocess = prefect_subprocess

        def stop(self) -> None:
            if getattr(self, "stopping", None) is not None:
                self.stopping.set()
            super().stop()

    return ServerDyingWithParent


def _popen_dying_with(parent_pid: int, stopping: threading.Event) -> Any:
    """`subprocess.Popen` for the server: its own session, the parent-death signal armed (on
    Linux), and its stderr relayed by :func:`_relay_stderr`."""
    libc_name = ctypes.util.find_library("c")
    arm = None
    if libc_name and hasattr(os, "fork"):  # else not Linux: no parent-death signal to arm
        libc = ctypes.CDLL(libc_name, use_errno=True)

        def arm() -> None:  # runs in the child between fork and exec
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:  # the parent died before the signal was armed
                os._exit(1)

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        # A raw descriptor, not PIPE: Prefect reads `process.stderr` itself when the start times out.
        reading, writing = os.pipe()
        try:
            process = subprocess.Popen(*args, preexec_fn=arm, start_new_session=True, stderr=writing, **kwargs)
        except BaseException:
            os.close(reading)
            raise
        finally:
            os.close(writing)
        threading.Thread(target=_relay_stderr, args=(reading, stopping), name="prefect-server-stderr",
                         daemon=True).start()
        return process

    return popen


def _relay_stderr(descriptor: int, stopping: threading.Event) -> None:
    """The server's stderr on ours while it serves; once we stop it, to the debug log.

    Stopped while its services were still writing (two commands sharing Prefect's SQLite
    database make that likely), the server printed an aiosqlite CancelledError traceback after
    a clean summary, which read as a crash. What it says while serving stays on the console.
    """
    with os.fdopen(descriptor, "rb") as lines:
        for line in lines:
            text = line.decode(errors="replace")
            if stopping.is_set():
                logger.debug("embedded Prefect server, stopping: %s", text.rstrip())
            else:
                sys.stderr.write(text)
                sys.stderr.flush()
