"""Color preservation for style transfer (Gatys et al. 2016, "Preserving Color in Neural
Artistic Style Transfer", arXiv 1606.05897).

Two ways to keep the content photo's colors:

- *luminance*: transfer style on the YIQ luminance only, then put the content's chroma (I, Q)
  back. The style's luminance is first matched to the content's mean and spread so the
  optimization does not have to fight a global brightness difference.
- *histogram*: before transfer, recolor the style image by an affine map so its pixel mean and
  covariance equal the content's.

Inputs are floats in [0, 1]: torch tensors with channels at dim -3 (CHW or NCHW, the engine's
layout) or numpy arrays with channels last (HW3, the Pillow/scikit-image layout). Results come
back in the input's type, layout and dtype. The math runs in float64: covariance square roots
and inverses lose several digits in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import numpy as np
import torch

HistogramMode = Literal["cholesky", "pca"]
Array = TypeVar("Array", torch.Tensor, np.ndarray)

# NTSC 1953 (FCC) RGB -> YIQ. The I and Q rows sum to zero, so grey pixels have no chroma and
# a change of Y shifts R, G and B equally: that is what lets recombination keep chroma exact.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)

# Added to covariance diagonals: a flat or greyscale image has a singular covariance, which
# neither Cholesky nor an inverse square root survives. Small next to any real image's
# variance (about 1e-2 for colors in [0, 1]).
DEFAULT_EPS = 1e-5


def _channels_last(x: Array) -> tuple[torch.Tensor, Callable[[torch.Tensor], Array]]:
    """View `x` as a float64 tensor (..., 3) plus the function that restores its form."""
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"expected a float array in [0, 1], got dtype {x.dtype}")
        dtype = x.dtype
        return torch.from_numpy(np.asarray(x, dtype=np.float64)), lambda y: y.numpy().astype(dtype)
    if not x.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1], got dtype {x.dtype}")
    original = x
    return x.movedim(-3, -1).double(), lambda y: y.movedim(-1, -3).to(original.dtype)


def _apply_matrix(x: Array, matrix: torch.Tensor) -> Array:
    flat, restore = _channels_last(x)
    return restore(flat @ matrix.to(flat.device).T)


def rgb_to_yiq(rgb: Array) -> Array:
    """RGB -> YIQ (Y in [0, 1], I in ±0.596, Q in ±0.523)."""
    return _apply_matrix(rgb, _RGB_TO_YIQ)


def yiq_to_rgb(yiq: Array) -> Array:
    """YIQ -> RGB, the exact inverse of :func:`rgb_to_yiq` (no clipping)."""
    return _apply_matrix(yiq, _YIQ_TO_RGB)


def luminance_image(rgb: Array) -> Array:
    """The luminance Y repeated on three channels: a grey RGB image VGG can take as input."""
    flat, restore = _channels_last(rgb)
    y = flat @ _RGB_TO_YIQ[0].to(flat.device)
    return restore(y.unsqueeze(-1).expand(*y.shape, 3))


def match_luminance(style: Array, content: Array) -> Array:
    """Grey style image whose luminance has the content's mean and standard deviation.

    Gatys et al. do this before luminance-only transfer so that the style's tone range is
    expressed within the photo's. It is not clipped: VGG takes values slightly outside [0, 1]
    well, and clipping would undo part of the match.
    """
    style_flat, restore = _channels_last(style)
    content_flat, _ = _channels_last(content)
    luma = _RGB_TO_YIQ[0].to(style_flat.device)
    y_style, y_content = style_flat @ luma, content_flat @ luma
    scale = y_content.std(correction=0) / y_style.std(correction=0).clamp_min(1e-8)
    matched = (y_style - y_style.mean()) * scale + y_content.mean()
    return restore(matched.unsqueeze(-1).expand(*matched.shape, 3))


def recombine_luminance(stylized: Array, content: Array) -> Array:
    """Take the luminance of `stylized` and the chroma (I, Q) of `content` (same size).

    Where that color falls outside the RGB cube, the luminance is clamped into the range that
    keeps it inside, rather than clipping R, G and B separately: clipping channels would shift
    the hue, while moving Y changes only brightness. The interval is never empty because the
    content pixel itself, with its own Y, is inside the cube.
    """
    stylized_flat, restore = _channels_last(stylized)
    content_flat, _ = _channels_last(content)
    to_yiq = _RGB_TO_YIQ.to(stylized_flat.device)
    y = stylized_flat @ to_yiq[0]
    chroma = (content_flat @ to_yiq.T)[..., 1:]
    # RGB = Y * (1, 1, 1) + offset(I, Q), since the inverse matrix's first column is all ones.
    offset = chroma @ _YIQ_TO_RGB[:, 1:].to(chroma.device).T
    low = -offset.amin(dim=-1)
    high = 1 - offset.amax(dim=-1)
    y = torch.minimum(torch.maximum(y, low), high)
    rgb = (y.unsqueeze(-1) + offset).clamp(0, 1)  # only removes float rounding
    return restore(rgb)


def color_stats(rgb: Array) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel mean (3,) and population covariance (3, 3), float64."""
    flat, _ = _channels_last(rgb)
    pixels = flat.reshape(-1, 3)
    mean = pixels.mean(dim=0)
    centered = pixels - mean
    return mean, centered.T @ centered / pixels.shape[0]


def _cholesky_map(cov_style: torch.Tensor, cov_content: torch.Tensor) -> torch.Tensor:
    """A = L_c L_s^-1: maps the style's Cholesky factor onto the content's."""
    l_style = torch.linalg.cholesky(cov_style)
    l_content = torch.linalg.cholesky(cov_content)
    return l_content @ torch.linalg.inv(l_style)


def _pca_map(cov_style: torch.Tensor, cov_content: torch.Tensor) -> torch.Tensor:
    """A = Σ_c^½ Σ_s^-½ with symmetric square roots (eigendecomposition).

    Unlike Cholesky, it does not depend on the channel order, and it rotates colors the least.
    """

    def symmetric_power(cov: torch.Tensor, power: float) -> torch.Tensor:
        values, vectors = torch.linalg.eigh(cov)
        return vectors @ torch.diag(values.clamp_min(1e-12) ** power) @ vectors.T

    return symmetric_power(cov_content, 0.5) @ symmetric_power(cov_style, -0.5)


_MAPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cholesky": _cholesky_map,
    "pca": _pca_map,
}


def match_histogram(
    style: Array,
    content: Array,
    mode: HistogramMode = "cholesky",
    *,
    eps: float = DEFAULT_EPS,
    clip: bool = True,
) -> Array:
    """Recolor `style` by x' = A(x - μ_s) + μ_c so its mean and covariance become the content's.

    With `clip=False` the statistics match exactly (up to `eps`); clipping to [0, 1], needed for
    a valid image, moves them slightly where the map leaves the RGB cube.
    """
    if mode not in _MAPS:
        raise ValueError(f"unknown histogram mode {mode!r}; expected one of {sorted(_MAPS)}")
    mean_style, cov_style = color_stats(style)
    mean_content, cov_content = color_stats(content)
    ridge = eps * torch.eye(3, dtype=torch.float64)
    transform = _MAPS[mode](cov_style + ridge, cov_content + ridge)
    flat, restore = _channels_last(style)
    recolored = (flat - mean_style.to(flat.device)) @ transform.to(flat.device).T + mean_content.to(
        flat.device
    )
    return restore(recolored.clamp(0, 1) if clip else recolored)


def chroma_error(a: Array, b: Array) -> float:
    """Mean absolute difference of the I and Q channels: how far `a`'s colors are from `b`'s.

    Near 0 means color preservation worked; a plain style transfer of a photo typically scores
    several times higher.
    """
    yiq_a, _ = _channels_last(rgb_to_yiq(a))
    yiq_b, _ = _channels_last(rgb_to_yiq(b))
    return float((yiq_a[..., 1:] - yiq_b[..., 1:]).abs().mean())
