"""Where a training job's photos come from: a folder on the worker, or a catalog tag.

``data`` is ``tag:NAME`` (the catalog's content images with that tag, fetched through the
sha256-checked input cache) or a folder path. Frames of catalog videos are the third source the
design names; they arrive with the video work as another ``video:`` branch of
:func:`load_training_photos`, returning PIL frames like the other two.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from style_engine.errors import InvalidInputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from tasks.workshop import Workshop

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
VALIDATION_SHARE = 10  # one photo in ten (at least one) is held out for the validation losses
logger = logging.getLogger(__name__)


def load_training_photos(workshop: Workshop, data: str) -> list[Image.Image]:
    """The usable photos of ``data``, in a stable order; none usable is an InvalidInputError naming ``data``."""
    from style_engine.itn_train import usable

    if not data:
        raise InvalidInputError("itn-train job: parameter data (a photo folder or tag:NAME) is required")
    kind, _, name = data.partition(":")
    if kind == "tag" and name:
        photos = _tagged_photos(workshop, name)
    elif kind == "video":
        raise InvalidInputError(f"training data {data!r}: frames of catalog videos are not supported yet")
    else:
        photos = _folder_photos(Path(data), workshop.config.max_image_pixels)
    kept = [photo for photo in photos if usable(photo)]
    if not kept:
        raise InvalidInputError(f"training data {data!r}: no usable image (photos must be at least 64 px on each side)")
    return kept


def _folder_photos(folder: Path, max_pixels: int) -> list[Image.Image]:
    from style_engine.images import load_image

    if not folder.is_dir():
        raise InvalidInputError(f"training data {str(folder)!r}: not a folder (give a photo folder or tag:NAME)")
    photos = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES):
        try:
            photos.append(load_image(path, max_pixels=max_pixels))
        except InvalidInputError as exc:  # one bad file must not sink a folder of good ones; say so
            logger.warning("training data: skipping %s (%s)", path, exc)
    return photos


def _tagged_photos(workshop: Workshop, tag: str) -> list[Image.Image]:
    from db.images import images_with_tag
    from db.models import ImageRole
    from style_engine.images import load_image

    with workshop.catalog.reader() as session:
        refs = [(image.id, image.uri, image.sha256) for image in images_with_tag(session, tag, role=ImageRole.CONTENT)]
    return [
        load_image(workshop.inputs.fetch(uri, sha), name=f"image {image_id}", max_pixels=workshop.config.max_image_pixels)
        for image_id, uri, sha in sorted(refs, key=lambda ref: ref[2])
    ]


def split_validation(photos: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(training, validation): every tenth photo (at least one, when there are two or more) is held out."""
    if len(photos) < 2:
        return photos, []
    count = max(1, len(photos) // VALIDATION_SHARE)
    return photos[:-count], photos[-count:]
