"""Test-session set-up shared by every tier. Fixtures live in tests/fixtures/, one module per service."""

import os

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
