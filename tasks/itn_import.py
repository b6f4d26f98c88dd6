"""Bringing a network trained elsewhere into the catalog (`atelier models import`).

The file is read and checked by :mod:`style_engine.itn.importing`, converted to Atelier's layout and
stored like a trained model's weights (content-addressed), with a Model row that records where it
came from: the file's name, size and sha256, the origin as the user gave it, and the pixel range
the weights expect. From then on `load_model` cannot tell it from a trained one, apart from its
pixel convention, which the stored file carries.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from style_engine.errors import InvalidInputError

if TYPE_CHECKING:
    from tasks.workshop import Workshop

IMPORTED = "imported"


def file_format(path: Path) -> str:
    """``onnx`` for an ``.onnx`` file; anything else is read as a ``torch.save`` file (``.pth``, ``.pt``, ``.model``)."""
    return "onnx" if path.suffix.lower() == ".onnx" else "pytorch"


def import_model(workshop: Workshop, path: Path, *, name: str, style: str, origin: str, pixel_scale: float) -> int:
    """Validate ``path``, store the converted weights and record the Model row; returns its id."""
    from db.errors import InvalidRequest, NotFound
    from db.images import find_image
    from db.models import ArtifactKind
    from db.trained_models import model_name_taken, record_import
    from style_engine.itn.importing import SOURCE_LAYOUT, read_network
    from style_engine.itn.train import MODEL_FORMAT
    from tasks.itn import put_state

    if not name.strip():
        raise InvalidInputError("--name: the model needs a name")
    try:
        with workshop.catalog.reader() as session:
            if model_name_taken(session, name):
                raise InvalidInputError(f"model name {name!r} is taken; choose another name (see `atelier models ls`)")
            style_id = find_image(session, style, role="style").id
    except NotFound as exc:
        raise InvalidInputError(f"--style: {exc}") from None
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    fmt = file_format(path)
    imported = read_network(data, str(path), file_format=fmt, pixel_scale=pixel_scale)
    params = {"arch": imported.arch, "source": IMPORTED, "input_range": f"0-{pixel_scale:g}",
              "output_range": f"0-{pixel_scale:g}, clamped", "pixel_scale": pixel_scale}
    state = {"format": MODEL_FORMAT, "arch": imported.arch, "output": "clamp", "pixel_scale": pixel_scale,
             "params": params, "model": imported.state}
    metrics = {
        "import": {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "format": fmt,
                   "layout": SOURCE_LAYOUT, "origin": origin, "dropped_keys": imported.dropped_keys},
        "checks": imported.checks,
    }
    weights = put_state(workshop, state, ArtifactKind.MODEL)
    try:
        return record_import(workshop.catalog, name=name, style_id=style_id, weights=weights, params=params, metrics=metrics)
    except InvalidRequest as exc:
        raise InvalidInputError(str(exc)) from None
