"""Catalog errors. Each message is one line that names the input and says what to do.

The CLI turns every `CatalogError` into that line and exit code 2, so these classes are
the boundary between "the user asked for something impossible" and a bug.
"""


class CatalogError(Exception):
    """Base class for every error the catalog reports to a user or a caller."""


class SchemaOutOfDate(CatalogError):
    """The database schema is older (or newer) than this code's migrations."""


class CatalogUnavailable(CatalogError):
    """The database cannot be reached. Transient: a retry may succeed."""


class NotFound(CatalogError):
    """An id, sha256 or name that matches nothing (or, for names, more than one thing)."""


class InvalidRequest(CatalogError):
    """A request the catalog refuses: wrong role, mismatched weights, unknown sort key."""


class LeaseLost(CatalogError):
    """A worker tried to record work on a job it no longer holds.

    Happens when its lease expired and another worker claimed the job; the other worker's
    result wins, so the caller should drop its own.
    """
