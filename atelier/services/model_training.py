"""Asking for a fast style network: the catalog job (method `itn-train`) that trains it.

The job is what a flow runs, here (`atelier models train`, `atelier demo`) or under a
deployment; asking again after a failure reopens the same job instead of adding another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atelier.services.errors import BadInput

if TYPE_CHECKING:
    from db.session import Catalog


def training_source(data: str) -> str:
    """`tag:NAME` and `video:...` as given; a folder as its absolute path, so that the job
    means the same folder whichever directory a worker runs in."""
    return data if data.startswith(("tag:", "video:")) else str(Path(data).expanduser().resolve())


def request_training(
    catalog: Catalog, name: str, styles: Sequence[str], data: str, preview: str, options: Mapping[str, Any],
    *, device_type: str, style_weights: Sequence[float] | None = None,
) -> int:
    """The id of the pending itn-train job for model `name` (created, or reopened after a
    failure). BadInput when a model of that name exists already.

    `options` complete a training recipe: the one they name (`recipe`), else the one of the device
    the training will run on (`device_type`: cuda gets the GPU recipe, anything else the CPU one).
    The job's parameters, and so the model's, record every value used and the recipe's name."""
    from db.images import find_image
    from db.jobs import add_job
    from db.runs import reset_failed
    from db.trained_models import model_name_taken
    from style_engine.itn.recipes import with_recipe
    from style_engine.params import parse_params

    recipe = with_recipe(options, device_type)
    params = parse_params("itn-train", {**recipe, "name": name, "data": training_source(data)}).to_dict()
    with catalog.session() as session:
        if model_name_taken(session, name):
            raise BadInput(f"model name {name!r} is taken; choose another name (see `atelier models ls`)")
        job, _ = add_job(
            session, content_id=find_image(session, preview).id, style_ids=[find_image(session, s).id for s in styles],
            style_weights=style_weights or None, method="itn-train", params=params,
        )
        session.flush()
        job_id, status = job.id, job.status
    if status == "failed":  # the same request again, after a fix: run it again
        reset_failed(catalog, job_ids=[job_id])
    return job_id
