"""Which failures deserve another attempt.

Prefect retries a task whenever it fails unless told otherwise; retrying an invalid
image or a corrupted object only burns GPU time and delays the failure report, so the
task's `retry_condition_fn` lets through only errors that a later attempt can cure.
"""

from __future__ import annotations

from typing import Any


def transient_error_types() -> tuple[type[BaseException], ...]:
    """Errors of a service that may come back: the engine's, the store's, the catalog's."""
    from sqlalchemy.exc import DisconnectionError, OperationalError

    from db.errors import CatalogUnavailable
    from storage.errors import StorageUnavailable
    from style_engine.errors import TransientError

    return (TransientError, StorageUnavailable, CatalogUnavailable, OperationalError, DisconnectionError)


def is_transient(exc: BaseException) -> bool:
    """True when a later attempt, with nothing changed, may succeed."""
    return isinstance(exc, transient_error_types())


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """`retry_condition_fn` for Prefect tasks: retry transient errors only."""
    try:
        state.result()
    except Exception as exc:  # the failed state re-raises the task's exception
        return is_transient(exc)
    return False
