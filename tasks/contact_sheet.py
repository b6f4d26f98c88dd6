"""The contact sheet: one picture of a night's results, each tile captioned.

It is the first thing a curator opens in the morning, so failures get a tile too
(with the error type): a missing picture would be easy to overlook. A thumbnail that
cannot be read (gone from the store, corrupt) gets a grey placeholder tile and a note,
never a failed report: the jobs themselves are recorded already.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps
from prefect import task
from prefect.cache_policies import NO_CACHE

from db.text import display_text
from storage.base import ArtifactStore
from tasks.retry import retry_on_transient
from tasks.workshop import Workshop

TILE = 192
CAPTION_LINES = 2
LINE_HEIGHT = 15
PADDING = 8
BACKGROUND = (245, 243, 238)
FAILED_TILE = (196, 72, 60)
MISSING_TILE = (170, 170, 170)
TEXT = (30, 30, 30)


@dataclass(frozen=True)
class Tile:
    """One cell: a thumbnail (None for a failed job) and up to two caption lines.

    `missing` marks a job whose thumbnail could not be read: a grey tile instead of a red one.
    """

    image: Image.Image | None
    caption: tuple[str, ...]
    missing: bool = False


@dataclass(frozen=True)
class ContactSheet:
    """The stored sheet and what it could not show (one note per unreadable thumbnail)."""

    uri: str
    notes: tuple[str, ...] = ()


def compose_contact_sheet(tiles: Sequence[Tile], *, columns: int | None = None) -> Image.Image:
    """Lay tiles out in a near-square grid, thumbnails centred above their captions."""
    if not tiles:
        raise ValueError("a contact sheet needs at least one tile")
    columns = columns or max(1, math.ceil(math.sqrt(len(tiles))))
    rows = math.ceil(len(tiles) / columns)
    cell_w = TILE + 2 * PADDING
    cell_h = TILE + 2 * PADDING + CAPTION_LINES * LINE_HEIGHT
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for index, tile in enumerate(tiles):
        left = (index % columns) * cell_w + PADDING
        top = (index // columns) * cell_h + PADDING
        _paste_picture(sheet, draw, tile, left, top)
        for line_no, line in enumerate(tile.caption[:CAPTION_LINES]):
            y = top + TILE + 2 + line_no * LINE_HEIGHT
            draw.text((left, y), _fit(draw, font, display_text(line, limit=200)), fill=TEXT, font=font)
    return sheet


def _paste_picture(sheet: Image.Image, draw: ImageDraw.ImageDraw, tile: Tile, left: int, top: int) -> None:
    if tile.image is None:
        fill = MISSING_TILE if tile.missing else FAILED_TILE
        draw.rectangle((left, top, left + TILE - 1, top + TILE - 1), fill=fill)
        if tile.missing:
            draw.text((left + PADDING, top + TILE // 2), "no thumbnail", fill=TEXT)
        return
    picture = ImageOps.contain(tile.image.convert("RGB"), (TILE, TILE))
    sheet.paste(picture, (left + (TILE - picture.width) // 2, top + (TILE - picture.height) // 2))


def _fit(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> str:
    """Shorten `text` with an ellipsis until it fits under its tile."""
    if draw.textlength(text, font=font) <= TILE:
        return text
    while text and draw.textlength(text + "…", font=font) > TILE:
        text = text[:-1]
    return text + "…"


def load_tile(store: ArtifactStore, uri: str | None, caption: tuple[str, ...]) -> tuple[Tile, str | None]:
    """The tile for one job, and a note when its thumbnail could not be shown.

    A store that is unreachable raises (the task retries it); a thumbnail that is missing or
    unreadable becomes a placeholder, because another attempt would find the same.
    """
    from storage.errors import StorageError

    if uri is None:
        return Tile(None, caption), None
    try:
        image = Image.open(io.BytesIO(store.get_bytes(uri)))
        image.load()
    except StorageError as exc:
        if exc.transient:
            raise
        return Tile(None, caption, missing=True), f"{caption[0]}: thumbnail not shown ({display_text(str(exc), 200)})"
    except (OSError, ValueError) as exc:  # Pillow's "cannot identify image file", truncated data
        return Tile(None, caption, missing=True), f"{caption[0]}: thumbnail unreadable ({display_text(str(exc), 200)})"
    return Tile(image, caption), None


def contact_sheet_png(
    store: ArtifactStore, entries: Sequence[tuple[str | None, tuple[str, ...]]]
) -> tuple[bytes, tuple[str, ...]]:
    """Fetch each thumbnail (None for a failed job) and render the sheet as PNG bytes; also
    returns a note for each thumbnail that could not be shown."""
    loaded = [load_tile(store, uri, caption) for uri, caption in entries]
    buffer = io.BytesIO()
    compose_contact_sheet([tile for tile, _ in loaded]).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue(), tuple(note for _, note in loaded if note)


@task(
    name="contact-sheet",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_on_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def upload_contact_sheet(workshop: Workshop, entries: list[tuple[str | None, tuple[str, ...]]]) -> ContactSheet:
    """Render the sheet of `entries` (thumbnail URI, caption) into the store."""
    data, notes = contact_sheet_png(workshop.store, entries)
    return ContactSheet(workshop.store.put_bytes(data, suffix=".png", content_type="image/png").uri, notes)
