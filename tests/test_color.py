"""Color-preservation math (Gatys et al. 2016) on real photographs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from style_engine.color import (
    chroma_error,
    color_stats,
    luminance_image,
    match_histogram,
    match_luminance,
    recombine_luminance,
    rgb_to_yiq,
    yiq_to_rgb,
)
from tests.fixtures.images import draw_strokes, skimage_image

pytestmark = pytest.mark.unit

# The I and Q channels span ±0.5957 and ±0.5226 for RGB in [0, 1].
IQ_RANGES = np.array([2 * 0.595716, 2 * 0.522591])


def _as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


@pytest.fixture(scope="module")
def photo_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two full-size photos with very different palettes: content and style."""
    return _as_float(skimage_image("astronaut")), _as_float(skimage_image("coffee"))


def test_yiq_round_trip_and_grey_has_no_chroma() -> None:
    rgb = torch.rand(2, 3, 16, 16)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, atol=1e-6)
    grey = torch.full((3, 4, 4), 0.4)
    yiq = rgb_to_yiq(grey)
    assert torch.allclose(yiq[0], torch.full((4, 4), 0.4), atol=1e-6)
    assert yiq[1:].abs().max() < 1e-6


def test_numpy_is_channels_last_and_keeps_dtype() -> None:
    rgb = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    yiq = rgb_to_yiq(rgb)
    assert yiq.shape == (5, 7, 3) and yiq.dtype == np.float32
    assert np.allclose(yiq[..., 0], rgb @ np.array([0.299, 0.587, 0.114]), atol=1e-6)
    with pytest.raises(TypeError, match="float"):
        rgb_to_yiq((rgb * 255).astype(np.uint8))


@pytest.mark.parametrize("mode", ["cholesky", "pca"])
def test_histogram_match_gives_content_mean_and_covariance(photo_pair, mode: str) -> None:
    content, style = photo_pair
    recolored = match_histogram(style, content, mode, clip=False)
    assert recolored.shape == style.shape
    mean, cov = color_stats(recolored)
    target_mean, target_cov = color_stats(content)
    assert torch.allclose(mean, target_mean, atol=1e-3)
    assert torch.allclose(cov, target_cov, atol=1e-3)
    # The style did start far from the content, so the test is not trivially true.
    style_mean, style_cov = color_stats(style)
    assert (style_mean - target_mean).abs().max() > 0.05
    assert (style_cov - target_cov).abs().max() > 0.01


def test_histogram_variants_differ_but_clipped_result_is_a_valid_image(photo_pair) -> None:
    content, style = photo_pair
    cholesky = match_histogram(style, content, "cholesky")
    pca = match_histogram(style, content, "pca")
    assert cholesky.min() >= 0 and cholesky.max() <= 1
    assert np.abs(cholesky - pca).mean() > 1e-3  # two different maps, same statistics


def test_histogram_match_works_on_tensors_and_greyscale_style(photo_pair) -> None:
    content, _ = photo_pair
    content_tensor = torch.from_numpy(content).permute(2, 0, 1).unsqueeze(0).float()
    grey = torch.rand(1, 1, 32, 32).expand(1, 3, 32, 32)  # singular covariance: needs the eps
    recolored = match_histogram(grey, content_tensor, "pca", clip=False)
    assert recolored.shape == grey.shape and recolored.dtype == torch.float32
    assert torch.isfinite(recolored).all()
    mean, _ = color_stats(recolored)
    assert torch.allclose(mean, color_stats(content_tensor)[0], atol=1e-3)


def test_unknown_histogram_mode_is_rejected(photo_pair) -> None:
    content, style = photo_pair
    with pytest.raises(ValueError, match="cholesky"):
        match_histogram(style, content, "lab")  # type: ignore[arg-type]


def test_match_luminance_gives_content_luminance_stats(photo_pair) -> None:
    content, style = photo_pair
    matched = match_luminance(style, content)
    assert matched.shape == style.shape
    assert np.allclose(matched[..., 0], matched[..., 2])  # a grey image
    y_matched, y_content = rgb_to_yiq(matched)[..., 0], rgb_to_yiq(content)[..., 0]
    assert abs(y_matched.mean() - y_content.mean()) < 1e-6
    assert abs(y_matched.std() - y_content.std()) < 1e-6


def test_luminance_image_is_grey_with_the_luminance(photo_pair) -> None:
    content, _ = photo_pair
    grey = luminance_image(content)
    assert np.allclose(grey[..., 0], rgb_to_yiq(content)[..., 0])
    assert np.abs(rgb_to_yiq(grey)[..., 1:]).max() < 1e-9


def test_recombined_output_has_content_chroma_within_one_level() -> None:
    """A stylized luminance (here: a painting's, the harshest case) plus the content's chroma
    gives an 8-bit image whose I and Q equal the content's within 1/255 of their range."""
    content_image = skimage_image("astronaut", 128)
    content = torch.from_numpy(_as_float(content_image)).permute(2, 0, 1).unsqueeze(0)
    painting = draw_strokes(*content_image.size)
    stylized = torch.from_numpy(_as_float(painting)).permute(2, 0, 1).unsqueeze(0)
    combined = recombine_luminance(stylized, content)
    assert combined.min() >= 0 and combined.max() <= 1
    as_8bit = torch.round(combined * 255) / 255
    iq_error = (rgb_to_yiq(as_8bit) - rgb_to_yiq(content))[0, 1:].abs()
    assert (iq_error.flatten(1).max(dim=1).values.numpy() <= IQ_RANGES / 255).all()
    # Luminance follows the stylized image except where the gamut forbids it.
    y_error = (rgb_to_yiq(combined) - rgb_to_yiq(stylized))[0, 0].abs()
    assert float((y_error < 1e-6).float().mean()) > 0.5


def test_chroma_error_is_zero_for_same_chroma_and_large_for_other_colors() -> None:
    content = torch.from_numpy(_as_float(skimage_image("astronaut", 64))).permute(2, 0, 1)
    assert chroma_error(content, content) == 0
    brighter = recombine_luminance((content + 0.1).clamp(0, 1), content)
    assert chroma_error(brighter, content) < 1e-6
    painting = torch.from_numpy(_as_float(draw_strokes(*reversed(content.shape[1:])))).permute(2, 0, 1)
    assert chroma_error(painting, content) > 0.05
