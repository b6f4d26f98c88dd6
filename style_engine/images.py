"""Loading untrusted images into clean RGB, and writing results as tagged PNGs.

Everything that reaches the engine passes through :func:`load_image`, so that a bad upload fails
here, once, with a message naming the file and the problem (an :class:`InvalidInputError`, which
orchestration never retries), instead of deep inside the optimizer.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageCms, ImageOps, PngImagePlugin, UnidentifiedImageError

from style_engine.errors import InvalidInputError

if TYPE_CHECKING:  # torch loads only for the tensor conversions: validating an image needs Pillow alone
    import torch

ImageSource = str | Path | bytes | BinaryIO

DEFAULT_MAX_PIXELS = 64_000_000
# VGG-19 halves the resolution four times before conv5_1; below this the deepest style layer
# sees a feature map of one pixel and its Gram matrix is meaningless.
DEFAULT_MIN_SIDE = 32

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
# Errors Pillow's decoders raise on damaged data; anything else is a bug and keeps its traceback.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@dataclass(frozen=True)
class ImageInfo:
    """What the catalog records about an input: its oriented size and its file format."""

    width: int
    height: int
    format: str


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Image.Image:
    """Decode `source` fully into an 8-bit RGB image, upright per its EXIF orientation.

    `name` labels the input in error messages (defaults to the path). The pixel limit is checked
    on the header, before any decoding, so a decompression bomb costs nothing.
    """
    image, _ = _load(source, name, max_pixels, min_side)
    return image


def image_info(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> ImageInfo:
    """Validate `source` exactly as :func:`load_image` does and describe it.

    Decoding in full is deliberate: a truncated file has a valid header, and the catalog must not
    accept an image that every job using it would then fail on.
    """
    image, fmt = _load(source, name, max_pixels, min_side)
    return ImageInfo(width=image.width, height=image.height, format=fmt)


def _load(
    source: ImageSource, name: str | None, max_pixels: int, min_side: int
) -> tuple[Image.Image, str]:
    label, data = _read(source, name)
    if not data:
        raise InvalidInputError(f"{label}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own limit below is the authority; Pillow's global one only backs it up.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            raw = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidInputError(f"{label}: not a readable image (unknown format or corrupt header)") from None
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(f"{label}: image too large ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise InvalidInputError(f"{label}: corrupt image header ({exc})") from None
    fmt = raw.format or "unknown"
    width, height = raw.size
    if width * height > max_pixels:
        raise InvalidInputError(
            f"{label}: {width}x{height} is {width * height:,} pixels, "
            f"above the limit of {max_pixels:,} (decompression-bomb guard)"
        )
    try:
        raw.load()
        upright = ImageOps.exif_transpose(raw)
    except _DECODE_ERRORS as exc:
        raise InvalidInputError(f"{label}: corrupt or truncated {fmt} data ({exc})") from None
    if min(upright.size) < min_side:
        raise InvalidInputError(
            f"{label}: {upright.width}x{upright.height} is too small; "
            f"both sides must be at least {min_side} px"
        )
    try:
        return to_rgb(upright), fmt
    except ValueError as exc:
        raise InvalidInputError(f"{label}: cannot convert mode {upright.mode} to RGB ({exc})") from None


def _read(source: ImageSource, name: str | None) -> tuple[str, bytes]:
    """Return a label for messages and the raw bytes; unreadable paths are input errors."""
    if isinstance(source, bytes):
        return name or "image bytes", source
    if isinstance(source, str | Path):
        label = name or str(source)
        try:
            return label, Path(source).read_bytes()
        except FileNotFoundError:
            raise InvalidInputError(f"{label}: no such file") from None
        except IsADirectoryError:
            raise InvalidInputError(f"{label}: is a directory, not an image file") from None
        except OSError as exc:
            raise InvalidInputError(f"{label}: cannot read file ({exc.strerror or exc})") from None
    return name or str(getattr(source, "name", "image stream")), source.read()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any decoded mode to 8-bit sRGB.

    16-bit data is scaled (not clipped) to 8 bits, transparency is composited onto white (the
    background such images are meant to be seen on; black would add dark shapes the network
    would treat as content), and embedded ICC profiles (CMYK, Adobe RGB, P3) are honoured.
    """
    icc = image.info.get("icc_profile")
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.round(np.clip(wide, 0, 65535) / 257).astype(np.uint8), "L")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba).convert("RGB")
    if icc and image.mode in ("RGB", "CMYK"):
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source_profile, _SRGB_PROFILE, outputMode="RGB")
        except (OSError, ImageCms.PyCMSError):
            pass  # A broken profile is common in the wild; the plain conversion is still sensible.
    return image.convert("RGB")


def resize_long_side(image: Image.Image, long_side: int) -> Image.Image:
    """Scale so the longer side is `long_side` px, keeping the aspect ratio (Lanczos)."""
    size = long_side_size(image.size, long_side)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def long_side_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    """The (width, height) that :func:`resize_long_side` gives, without touching pixels (memory checks)."""
    if long_side < 1:
        raise InvalidInputError(f"size must be at least 1 px, got {long_side}")
    scale = long_side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def thumbnail(image: Image.Image, max_side: int = 256) -> Image.Image:
    """A small copy for galleries and dashboards; never enlarges.

    Resized straight from `image`, never through a full-size copy (a print-size render is
    200 MB and more): a box reduction by whole factors first, then Lanczos on the small result,
    as Pillow's own `thumbnail` does.
    """
    if max(image.size) <= max_side:
        return image.copy()
    return image.resize(long_side_size(image.size, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)


def image_to_tensor(image: Image.Image, device: str | torch.device = "cpu") -> torch.Tensor:
    """RGB image -> float32 tensor of shape (1, 3, H, W) in [0, 1], the engine's working form."""
    import torch

    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous().to(device)


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> 8-bit RGB image (clamped, rounded)."""
    import torch

    chw = tensor.detach().squeeze(0) if tensor.dim() == 4 else tensor.detach()
    array = chw.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def save_png(
    image: Image.Image, target: str | Path | BinaryIO, metadata: Mapping[str, object] | None = None
) -> None:
    """Write an 8-bit sRGB PNG carrying `metadata` as text chunks.

    Non-string values are stored as JSON, so parameters round-trip with `json.loads`. The sRGB
    chunk tells viewers how to interpret the pixels without embedding a whole ICC profile.
    """
    info = PngImagePlugin.PngInfo()
    info.add(b"sRGB", b"\x00")  # rendering intent: perceptual
    for key, value in (metadata or {}).items():
        # Pillow falls back to iTXt for text outside Latin-1.
        info.add_text(key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
    rgb = image if image.mode == "RGB" else to_rgb(image)
    if isinstance(target, str | Path):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    rgb.save(target, format="PNG", pnginfo=info)


def png_bytes(image: Image.Image, metadata: Mapping[str, object] | None = None) -> bytes:
    """The bytes :func:`save_png` would write, for uploading to the artifact store."""
    buffer = io.BytesIO()
    save_png(image, buffer, metadata)
    return buffer.getvalue()


# Output formats by file suffix. PNG is lossless and the master kept in the store; JPEG and
# WebP are for sharing, smaller, with a quality setting; TIFF is lossless (deflate), for print shops.
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}
DEFAULT_QUALITY = 92
_EXIF_SOFTWARE = 0x0131
_EXIF_IMAGE_DESCRIPTION = 0x010E


def output_format(target: str | Path) -> str:
    """The format a file name asks for (by suffix); InvalidInputError for anything else."""
    suffix = Path(target).suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise InvalidInputError(f"{target}: the output must end in {', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[suffix]


def save_image(
    image: Image.Image,
    target: str | Path,
    metadata: Mapping[str, object] | None = None,
    *,
    quality: int = DEFAULT_QUALITY,
) -> None:
    """Write `image` in the format its suffix names, with `metadata` as provenance.

    PNG keeps it in text chunks (:func:`save_png`); JPEG, WebP and TIFF in EXIF tags (a TIFF's
    own tags): the software in `Software`, and every field as one JSON object in
    `ImageDescription` (ASCII, as EXIF requires), which `read_exif_metadata` reads back. TIFF is
    deflate-compressed and ignores `quality`.
    """
    fmt = output_format(target)
    if not 1 <= quality <= 100:
        raise InvalidInputError(f"quality {quality}: must be between 1 and 100")
    if fmt == "PNG":
        save_png(image, target, metadata)
        return
    exif = Image.Exif()
    fields = {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True)
              for key, value in (metadata or {}).items()}
    if "Software" in fields:
        exif[_EXIF_SOFTWARE] = fields["Software"]
    exif[_EXIF_IMAGE_DESCRIPTION] = json.dumps(fields, sort_keys=True, ensure_ascii=True)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    rgb = image if image.mode == "RGB" else to_rgb(image)
    if fmt == "TIFF":
        rgb.save(target, format=fmt, compression="tiff_adobe_deflate", exif=exif, icc_profile=_SRGB_PROFILE.tobytes())
        return
    rgb.save(target, format=fmt, quality=quality, exif=exif.tobytes(), icc_profile=_SRGB_PROFILE.tobytes())


def read_exif_metadata(image: Image.Image) -> dict[str, str]:
    """The provenance fields :func:`save_image` stored in a JPEG's or WebP's EXIF ({} if none)."""
    description = image.getexif().get(_EXIF_IMAGE_DESCRIPTION)
    try:
        fields = json.loads(description) if description else {}
    except json.JSONDecodeError:
        return {}
    return fields if isinstance(fields, dict) else {}
