"""Test-session set-up shared by every tier. Fixtures live in tests/fixtures/, one module per service."""

import logging
import os
import sys

import pytest

# Prefect's telemetry fails offline and locks its database at start-up; turn it off
# before anything imports Prefect.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

pytest_plugins = [
    "tests.fixtures.images",
    "tests.fixtures.databases",
    "tests.fixtures.s3",
    "tests.fixtures.prefect",
    "tests.fixtures.fleet",
]


@pytest.fixture(autouse=True)
def _prefect_console_on_this_tests_stderr() -> None:
    """Point Prefect's console log handlers at the stderr of the test that is running.

    Prefect puts its console handler on the root logger when a process first sets up its
    logging, bound to the stderr of that moment: in a test worker, a stream that pytest closes
    when that test ends. A later test in the same process that logged a warning then printed
    '--- Logging error ---' with a traceback into its own output, and failed or passed by the
    order the tests happened to run in.
    """
    handlers_module = sys.modules.get("prefect.logging.handlers")
    if handlers_module is None:
        return
    loggers = [logging.getLogger(), *(logger for name, logger in logging.Logger.manager.loggerDict.items()
                                      if name.startswith("prefect") and isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, handlers_module.PrefectConsoleHandler):
                handler.stream = sys.stderr  # not setStream: it flushes the old, closed stream
                handler.console.file = sys.stderr
