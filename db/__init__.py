"""The SQL catalog: images, jobs, runs, artifacts and trained models.

A leaf package: it knows nothing of Prefect, the style engine or the artifact store.
Callers open a `Catalog` with `open_catalog(url)` and pass it (or one of its sessions)
to the functions in `db.images`, `db.jobs`, `db.claims`, `db.runs` and `db.queries`.
"""

from db.errors import CatalogError, CatalogUnavailable, InvalidRequest, LeaseLost, NotFound, SchemaOutOfDate
from db.session import Catalog, make_engine, open_catalog

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogUnavailable",
    "InvalidRequest",
    "LeaseLost",
    "NotFound",
    "SchemaOutOfDate",
    "make_engine",
    "open_catalog",
]
