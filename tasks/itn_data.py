"""Where a training job's photos come from: a folder on the worker, a catalog tag, or catalog videos.

``data`` is ``tag:NAME`` (the catalog's content images with that tag, fetched through the
sha256-checked input cache), ``video:REF`` (frames of one catalog video: id, sha256, title or
file name), ``video:tag:NAME`` (frames of every catalog video with that tag), or a folder path.

A video gives :data:`FRAMES_PER_VIDEO` frames, drawn without replacement by the training seed
and the clip's sha256: the same seed picks the same frames (so the dataset hash, and the whole
training, repeat), another seed other frames. Neighbouring frames are near duplicates, so a
sample spread over the clip is worth more than its first seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from style_engine.errors import InvalidInputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from tasks.workshop import Workshop

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
FRAMES_PER_VIDEO = 32
VALIDATION_SHARE = 10  # one photo in ten (at least one) is held out for the validation losses
logger = logging.getLogger(__name__)


def load_training_photos(workshop: Workshop, data: str, seed: int = 0) -> list[Image.Image]:
    """The usable photos of ``data``, in a stable order; none usable is an InvalidInputError naming ``data``.

    ``seed`` picks the frames of video sources (and nothing else).
    """
    from style_engine.itn.train import usable

    kept = [photo for photo in _source_photos(workshop, data, seed) if usable(photo)]
    if not kept:
        raise _nothing_usable(data)
    return kept


def check_training_data(workshop: Workshop, data: str) -> None:
    """Refuse ``data`` as :func:`load_training_photos` would, reading only up to its first usable photo.

    Run before a training job is created: a source without a usable photo then costs one line,
    not a job that fails (and stays failed in the catalog) after the flow has started.
    """
    from style_engine.itn.train import usable

    if not any(usable(photo) for photo in _source_photos(workshop, data, seed=0)):
        raise _nothing_usable(data)


def _nothing_usable(data: str) -> InvalidInputError:
    return InvalidInputError(f"training data {data!r}: no usable image (photos must be at least 64 px on each side)")


def _source_photos(workshop: Workshop, data: str, seed: int) -> Iterator[Image.Image]:
    """The photos of ``data`` one at a time, usable or not."""
    if not data:
        raise InvalidInputError("itn-train job: parameter data (a photo folder, tag:NAME or video:REF) is required")
    kind, _, name = data.partition(":")
    if kind == "tag" and name:
        return _tagged_photos(workshop, name)
    if kind == "video" and name:
        return _video_frames(workshop, name, seed)
    return _folder_photos(Path(data), workshop.config.max_image_pixels)


def _folder_photos(folder: Path, max_pixels: int) -> Iterator[Image.Image]:
    if not folder.is_dir():
        raise InvalidInputError(f"training data {str(folder)!r}: not a folder (give a photo folder or tag:NAME)")
    return _loaded(sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES), max_pixels)


def _loaded(paths: list[Path], max_pixels: int) -> Iterator[Image.Image]:
    from style_engine.images import load_image

    for path in paths:
        try:
            yield load_image(path, max_pixels=max_pixels)
        except InvalidInputError as exc:  # one bad file must not sink a folder of good ones; say so
            logger.warning("training data: skipping %s (%s)", path, exc)


def _tagged_photos(workshop: Workshop, tag: str) -> Iterator[Image.Image]:
    from db.images import images_with_tag
    from db.models import ImageRole
    from style_engine.images import load_image

    with workshop.catalog.reader() as session:
        refs = [(image.id, image.uri, image.sha256) for image in images_with_tag(session, tag, role=ImageRole.CONTENT)]
    return (
        load_image(workshop.inputs.fetch(uri, sha), name=f"image {image_id}", max_pixels=workshop.config.max_image_pixels)
        for image_id, uri, sha in sorted(refs, key=lambda ref: ref[2])
    )


def _video_frames(workshop: Workshop, selector: str, seed: int) -> Iterator[Image.Image]:
    """Frames of the catalog videos ``selector`` names (``tag:NAME`` or one video), sampled by ``seed``.
    The selector is checked at once; the clips are read as the frames are asked for."""
    from db.errors import NotFound
    from db.images import find_image, images_with_tag
    from db.models import ImageRole

    with workshop.catalog.reader() as session:
        if selector.startswith("tag:"):
            videos = images_with_tag(session, selector[4:], role=ImageRole.VIDEO)
            if not videos:
                raise InvalidInputError(f"training data 'video:{selector}': no catalog video has tag {selector[4:]!r}")
        else:
            try:
                videos = [find_image(session, selector, role=ImageRole.VIDEO)]
            except NotFound as exc:
                raise InvalidInputError(f"training data 'video:{selector}': {exc}") from None
        refs = sorted((video.sha256, video.id, video.uri) for video in videos)
    return _sampled_frames(workshop, refs, seed)


def _sampled_frames(workshop: Workshop, refs: list[tuple[str, int, str]], seed: int) -> Iterator[Image.Image]:
    from PIL import Image

    from tasks.video_io import probe_video, read_frames

    for sha256, video_id, uri in refs:
        label = f"video {video_id} ({uri})"
        path = workshop.inputs.fetch_path(uri, sha256)
        info = probe_video(path, name=label)
        picked = set(sample_frame_indices(info.frames, sha256, seed).tolist())
        decoded = read_frames(path, info, count=max(picked) + 1, name=label)
        yield from (Image.fromarray(frame) for index, frame in enumerate(decoded) if index in picked)


def sample_frame_indices(count: int, sha256: str, seed: int) -> np.ndarray:
    """:data:`FRAMES_PER_VIDEO` distinct frame indices of a ``count``-frame clip (all when shorter), sorted.

    Drawn from a generator keyed by (seed, the clip's sha256): reproducible, and different clips of
    one training get independent draws.
    """
    rng = np.random.default_rng([seed, int(sha256[:16], 16)])
    return np.sort(rng.choice(count, size=min(count, FRAMES_PER_VIDEO), replace=False))


def split_validation(photos: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(training, validation): every tenth photo (at least one, when there are two or more) is held out."""
    if len(photos) < 2:
        return photos, []
    count = max(1, len(photos) // VALIDATION_SHARE)
    return photos[:-count], photos[-count:]
