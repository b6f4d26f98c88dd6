"""Image loading: every bad input fails with a message naming the file, and every odd mode
becomes sensible RGB."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from style_engine.errors import InvalidInputError
from style_engine.images import (
    image_info,
    image_to_tensor,
    load_image,
    png_bytes,
    resize_long_side,
    save_png,
    tensor_to_image,
    thumbnail,
)

pytestmark = pytest.mark.unit


def _noise(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """Incompressible pixels, so that cutting a file surely cuts into the pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims `width` x `height`, with no pixel data: a decompression bomb's
    calling card, caught before any decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    idat = zlib.compress(b"\x00" * 64)
    chunk += struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + chunk


def _garble(data: bytes, start: int, length: int = 200) -> bytes:
    """Flip bits in the middle of a file: a valid header followed by damaged pixel data."""
    return data[:start] + bytes(b ^ 0x5A for b in data[start : start + length]) + data[start + length :]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("empty.png", b"", "empty file"),
        ("notes.png", b"just some text, not pixels\n" * 10, "not a readable image"),
        ("random.jpg", bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)), "not a readable image"),
        ("bad_ihdr.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image"),
        ("garbled.png", _garble(_encode(_noise(), "PNG"), 200), "corrupt or truncated PNG"),
        ("cut.png", _encode(_noise(), "PNG")[:3000], "truncated"),
        ("cut.jpg", _encode(_noise(), "JPEG", quality=95)[:2000], "truncated"),
        ("bomb.png", _png_header_only(10_000, 10_000), "above the limit of 64,000,000"),
        ("huge_bomb.png", _png_header_only(100_000, 100_000), "too large"),
        ("tiny.png", _encode(_noise(16, 16), "PNG"), "too small"),
        ("thin.png", _encode(_noise(400, 20), "PNG"), "at least 32 px"),
    ],
)
def test_bad_file_raises_invalid_input_naming_file_and_problem(
    tmp_path: Path, name: str, data: bytes, problem: str
) -> None:
    path = _write(tmp_path, name, data)
    with pytest.raises(InvalidInputError) as caught:
        load_image(path)
    message = str(caught.value)
    assert str(path) in message
    assert problem in message
    with pytest.raises(InvalidInputError):
        image_info(path)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = _write(tmp_path, "photo.png", _encode(_noise(64, 48), "PNG"))
    assert load_image(path, max_pixels=64 * 48).size == (64, 48)
    with pytest.raises(InvalidInputError, match=r"3,072 pixels, above the limit of 3,071"):
        load_image(path, max_pixels=64 * 48 - 1)


def test_min_side_is_configurable() -> None:
    data = _encode(_noise(40, 40), "PNG")
    assert load_image(data, min_side=40).size == (40, 40)
    with pytest.raises(InvalidInputError, match="at least 41 px"):
        load_image(data, min_side=41)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"nope\.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(InvalidInputError, match="is a directory"):
        load_image(tmp_path)


def test_given_name_labels_bytes_and_streams() -> None:
    with pytest.raises(InvalidInputError, match=r"^upload\.png: empty file"):
        load_image(b"", name="upload.png")
    with pytest.raises(InvalidInputError, match=r"^catalog:42: not a readable image"):
        load_image(io.BytesIO(b"hello"), name="catalog:42")


# --- sources and formats ---------------------------------------------------------------------


def test_path_bytes_and_stream_give_the_same_pixels(tmp_path: Path) -> None:
    data = _encode(_noise(), "PNG")
    path = _write(tmp_path, "a.png", data)
    expected = np.asarray(_noise())
    for source in (path, str(path), data, io.BytesIO(data)):
        assert np.array_equal(np.asarray(load_image(source)), expected)


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("PNG", {}), ("JPEG", {}), ("GIF", {}), ("BMP", {}), ("TIFF", {}), ("WEBP", {}), ("TGA", {}), ("PPM", {})],
)
def test_common_formats_load_as_rgb(fmt: str, options: dict[str, object]) -> None:
    data = _encode(_noise(64, 48), fmt, **options)
    info = image_info(data)
    assert (info.width, info.height, info.format) == (64, 48, fmt)
    image = load_image(data)
    assert image.mode == "RGB" and image.size == (64, 48)


# --- mode conversion -------------------------------------------------------------------------


def test_grayscale_becomes_equal_channels() -> None:
    grey = Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64) % 251, "L")
    rgb = np.asarray(load_image(_encode(grey, "PNG")))
    assert np.array_equal(rgb[..., 0], np.asarray(grey))
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    wide = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    data = _encode(Image.fromarray(wide), "PNG")
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")
    rgb = np.asarray(load_image(data))
    assert np.array_equal(rgb[..., 1], np.round(wide / 257).astype(np.uint8))
    assert rgb.min() == 0 and rgb.max() == 255


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[:20] = (255, 0, 0, 255)  # opaque red
    rgba[20:] = (0, 0, 255, 0)  # fully transparent blue
    rgba[20:, :20] = (0, 0, 0, 128)  # half-transparent black
    rgb = np.asarray(load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[39, 39]) == (255, 255, 255)
    assert np.all(np.abs(rgb[39, 0].astype(int) - 127) <= 1)


def test_palette_transparency_becomes_white() -> None:
    palette_image = Image.new("P", (40, 40), 0)
    palette_image.putpalette([0, 128, 0, 200, 0, 0] + [0] * 762)
    palette_image.paste(1, (0, 0, 20, 40))
    data = _encode(palette_image, "PNG", transparency=0)
    rgb = np.asarray(load_image(data))
    assert tuple(rgb[0, 0]) == (200, 0, 0)
    assert tuple(rgb[0, 39]) == (255, 255, 255)


@pytest.mark.parametrize(("fmt", "tolerance"), [("TIFF", 0), ("JPEG", 12)])
def test_cmyk_converts_back_to_its_colors(fmt: str, tolerance: int) -> None:
    original = Image.new("RGB", (64, 64), (200, 60, 30))
    original.paste((30, 90, 220), (0, 32, 64, 64))
    data = _encode(original.convert("CMYK"), fmt)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    rgb = np.asarray(load_image(data)).astype(int)
    assert np.abs(rgb[8, 8] - (200, 60, 30)).max() <= tolerance
    assert np.abs(rgb[56, 8] - (30, 90, 220)).max() <= tolerance


def test_exif_orientation_is_applied() -> None:
    stored = Image.new("RGB", (64, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (32, 0, 64, 40))  # left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    data = _encode(stored, "JPEG", exif=exif, quality=95)
    upright = load_image(data)
    assert upright.size == (40, 64)
    top, bottom = np.asarray(upright)[5, 20].astype(int), np.asarray(upright)[58, 20].astype(int)
    assert top[0] > 200 and top[2] < 50  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 50
    assert image_info(data).width == 40


def test_embedded_srgb_profile_keeps_pixels_and_broken_profile_is_ignored() -> None:
    image = _noise()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with_profile = np.asarray(load_image(_encode(image, "PNG", icc_profile=srgb))).astype(int)
    assert np.abs(with_profile - np.asarray(image)).max() <= 2
    broken = load_image(_encode(image, "PNG", icc_profile=b"not a profile"))
    assert np.array_equal(np.asarray(broken), np.asarray(image))


# --- outputs and helpers ---------------------------------------------------------------------


def test_save_png_writes_8bit_srgb_with_metadata(tmp_path: Path) -> None:
    image = _noise()
    metadata = {"atelier:params": {"size": 64, "seed": 7}, "atelier:seed": "7", "title": "Café Nuit ☕"}
    target = tmp_path / "out" / "result.png"
    save_png(image, target, metadata)
    saved = Image.open(target)
    assert saved.format == "PNG" and saved.mode == "RGB"
    assert saved.info.get("srgb") == 0
    assert json.loads(saved.text["atelier:params"]) == {"seed": 7, "size": 64}
    assert saved.text["atelier:seed"] == "7" and saved.text["title"] == "Café Nuit ☕"
    assert np.array_equal(np.asarray(saved), np.asarray(image))
    assert png_bytes(image, metadata) == target.read_bytes()


def test_save_png_converts_other_modes_to_rgb(tmp_path: Path) -> None:
    save_png(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").getpixel((0, 0)) == (255, 255, 255)


def test_resize_long_side_and_thumbnail_keep_aspect() -> None:
    image = _noise(300, 200)
    assert resize_long_side(image, 150).size == (150, 100)
    assert resize_long_side(image, 600).size == (600, 400)
    assert resize_long_side(image, 300) is image
    with pytest.raises(InvalidInputError, match="size"):
        resize_long_side(image, 0)
    assert thumbnail(image, 64).size == (64, 43)
    assert thumbnail(image, 1000).size == (300, 200)


def test_tensor_round_trip_is_exact() -> None:
    image = _noise()
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == torch.float32
    assert 0 <= float(tensor.min()) and float(tensor.max()) <= 1
    assert np.array_equal(np.asarray(tensor_to_image(tensor)), np.asarray(image))
    assert np.array_equal(np.asarray(tensor_to_image(tensor[0] * 2 - 0.5)).max(), 255)
