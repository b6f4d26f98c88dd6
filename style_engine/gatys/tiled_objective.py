"""The Gatys objective of a picture too large for the device, computed exactly, tile by tile.

The style term depends on the whole picture only through each layer's Gram matrix, a sum over
feature positions, and the content term is a sum over positions too. So:

1. **Pass 1** runs VGG on each tile plus a halo of context, without a graph, and adds the tile
   *interior's* features (at each layer's stride) into the layer's Gram sum; the content term's
   squared error is summed the same way.
2. **Pass 2**, with the whole picture's Grams known, runs each tile plus halo again with a graph and
   backpropagates a surrogate whose gradient with respect to the interior's features is the global
   loss's: for the style term ``s * mse(G, A)`` with ``G = F^T F / (C H W)`` (losses.gram) that is
   ``F @ M`` with ``M = 4 s (G - A) / (C^2 * C H W)``, applied as ``sum(F * (F.detach() @ M))``.
3. Each tile's input gradient (interior and halo, since the interior's features depend on the
   halo's pixels) is added into the picture's gradient.

Tiles start on multiples of :data:`GRID` px so that every pooling layer sees the same grid as in the
whole picture, and a feature position belongs to exactly one tile's interior. The halo decides the
exactness: an interior feature is computed exactly when its receptive field lies inside tile plus
halo. relu5_1's field is 156 px wide, so :data:`EXACT_HALO` (80 px) each side gives the whole
picture's features and gradient to float precision; a smaller halo is cheaper and approximate
(README "Print sizes" has the measured trade-off).

Peak memory is one tile's graph plus picture-sized buffers (the gradient, the content features at
relu4_2), whatever the picture's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from style_engine.vgg import VGGFeatures

GRID = 16  # VGG-19's four pooling layers: a tile offset on this grid keeps every layer's grid
EXACT_HALO = 80  # half relu5_1's 156 px receptive field, on the grid: exact to float precision
DEFAULT_HALO = 64  # measured: gradient cosine 1.000002, relative error 5e-4 at 64 px tiles (README "Print sizes")


def layer_stride(name: str) -> int:
    """Input pixels per feature position at a VGG layer (``relu3_1`` -> 4)."""
    block = int(name[4]) if not name.startswith("pool") else int(name[4]) + 1
    return 2 ** (block - 1)


def feature_extent(pixels: int, stride: int) -> int:
    """A layer's feature size along one axis for ``pixels`` of input (pooling floors at each stage)."""
    return pixels // stride


@dataclass(frozen=True)
class Tile:
    """One tile: its interior (the pixels whose features it owns) and the region VGG runs on
    (interior plus halo, cut at the picture's edges). Rows/columns are half-open ranges."""

    top: int
    left: int
    bottom: int
    right: int
    region_top: int
    region_left: int
    region_bottom: int
    region_right: int

    def region(self, image: torch.Tensor) -> torch.Tensor:
        return image[..., self.region_top:self.region_bottom, self.region_left:self.region_right]

    def interior(self, features: torch.Tensor, stride: int, shape: tuple[int, int]) -> torch.Tensor:
        """The interior's share of one layer's features computed on :meth:`region`."""
        return _feature_box(features, self, stride, shape, self.region_top // stride, self.region_left // stride)


@dataclass(frozen=True)
class TilePlan:
    """How one level is cut: square tiles of ``tile`` px (a multiple of :data:`GRID`) with ``halo``
    px of context each side. A picture no larger than one tile runs whole (one tile, no halo)."""

    tile: int
    halo: int = DEFAULT_HALO

    def __post_init__(self) -> None:
        if self.tile <= 0 or self.tile % GRID or self.halo < 0 or self.halo % GRID:
            raise ValueError(f"tile plan {self.tile} px / halo {self.halo} px: both must be multiples of {GRID} px")

    def tiles(self, shape: tuple[int, int]) -> list[Tile]:
        height, width = shape
        return [
            Tile(top, left, min(top + self.tile, height), min(left + self.tile, width),
                 max(top - self.halo, 0), max(left - self.halo, 0),
                 min(top + self.tile + self.halo, height), min(left + self.tile + self.halo, width))
            for top in range(0, height, self.tile)
            for left in range(0, width, self.tile)
        ]

    def count(self, shape: tuple[int, int]) -> int:
        return len(self.tiles(shape))

    def to_dict(self) -> dict[str, int]:
        return {"tile": self.tile, "halo": self.halo}


@dataclass(frozen=True)
class Terms:
    """What the tiled objective asks of one picture: style Grams' targets with each layer's full
    weight (style weight x layer weight), and optionally content targets (whole feature maps)."""

    style_targets: Mapping[str, torch.Tensor]
    style_weights: Mapping[str, float]
    content_targets: Mapping[str, torch.Tensor]
    content_weight: float = 0.0


@dataclass
class Sums:
    """Pass 1's result: each style layer's Gram (whole picture) and the content term's squared error."""

    grams: dict[str, torch.Tensor]
    content_squared: float


def gram_pass(vgg: VGGFeatures, rgb: torch.Tensor, plan: TilePlan, style_layers: tuple[str, ...],
              content_targets: Mapping[str, torch.Tensor] | None = None,
              collect: tuple[str, ...] = ()) -> tuple[Sums, dict[str, torch.Tensor]]:
    """Pass 1 on ``rgb`` (1, 3, H, W): the whole picture's Grams (losses.gram's normalization), the
    content squared error against ``content_targets``, and the full feature maps of ``collect``
    layers (assembled from interiors; how a tiled level gets its content targets)."""
    shape = (rgb.shape[-2], rgb.shape[-1])
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    collected: dict[str, torch.Tensor] = {}
    content_squared = 0.0
    with torch.no_grad():
        for tile in plan.tiles(shape):
            features = vgg(tile.region(rgb))
            for name in style_layers:
                flat = _flat(tile.interior(features[name], layer_stride(name), shape))
                product = flat.T @ flat
                sums[name] = product if name not in sums else sums[name] + product
                counts[name] = counts.get(name, 0) + flat.shape[0]
            for name, target in (content_targets or {}).items():
                ours = tile.interior(features[name], layer_stride(name), shape).float()
                content_squared += float((ours - _target_crop(target, tile, layer_stride(name), shape)).pow(2).sum())
            for name in collect:
                stride = layer_stride(name)
                ours = tile.interior(features[name], stride, shape).float()
                if name not in collected:
                    full = (1, ours.shape[1], feature_extent(shape[0], stride), feature_extent(shape[1], stride))
                    collected[name] = torch.zeros(full, device=rgb.device)
                _target_crop(collected[name], tile, stride, shape).copy_(ours)
    grams = {name: total / (total.shape[0] * counts[name]) for name, total in sums.items()}
    return Sums(grams, content_squared), collected


def values(sums: Sums, terms: Terms) -> tuple[float, float]:
    """The weighted style and content terms of a picture whose pass 1 gave ``sums``."""
    style = sum(weight * float((sums.grams[name] - terms.style_targets[name]).pow(2).mean())
                for name, weight in terms.style_weights.items())
    elements = sum(target.numel() for target in terms.content_targets.values())
    content = terms.content_weight * sums.content_squared / elements if terms.content_targets else 0.0
    return float(style), content


def loss_and_gradient(vgg: VGGFeatures, rgb: torch.Tensor, plan: TilePlan,
                      terms: Terms) -> tuple[float, float, torch.Tensor]:
    """The weighted style and content terms of ``rgb`` and their gradient with respect to it.

    A picture that fits one tile runs once, with its graph (nothing to gain from two passes).
    """
    shape = (rgb.shape[-2], rgb.shape[-1])
    tiles = plan.tiles(shape)
    layers = tuple(terms.style_weights)
    if len(tiles) == 1:
        return _whole(vgg, rgb, terms)
    sums, _ = gram_pass(vgg, rgb, plan, layers, terms.content_targets)
    style, content = values(sums, terms)
    slopes = {name: _gram_slope(sums.grams[name], terms.style_targets[name], weight, shape, name)
              for name, weight in terms.style_weights.items()}
    content_scale = {name: terms.content_weight / sum(t.numel() for t in terms.content_targets.values())
                     for name in terms.content_targets}
    gradient = torch.zeros_like(rgb)
    for tile in tiles:
        region = tile.region(rgb).detach().requires_grad_(True)
        features = vgg(region)
        surrogate = torch.zeros((), device=rgb.device)
        for name, slope in slopes.items():
            flat = _flat(tile.interior(features[name], layer_stride(name), shape))
            surrogate = surrogate + (flat * (flat.detach() @ slope)).sum()
        for name, target in terms.content_targets.items():
            stride = layer_stride(name)
            ours = tile.interior(features[name], stride, shape).float()
            surrogate = surrogate + content_scale[name] * (ours - _target_crop(target, tile, stride, shape)).pow(2).sum()
        (region_gradient,) = torch.autograd.grad(surrogate, region)
        tile.region(gradient).add_(region_gradient)
    return style, content, gradient


def _whole(vgg: VGGFeatures, rgb: torch.Tensor, terms: Terms) -> tuple[float, float, torch.Tensor]:
    from style_engine.losses import content_loss, layer_distances

    image = rgb.detach().requires_grad_(True)
    features = vgg(image)
    distances = layer_distances(features, terms.style_targets)
    style = sum(weight * distances[name] for name, weight in terms.style_weights.items())
    total = style
    content = 0.0
    if terms.content_targets:
        content_term = terms.content_weight * content_loss(features, terms.content_targets)
        total, content = total + content_term, float(content_term.detach())
    (gradient,) = torch.autograd.grad(total, image)
    return float(style.detach()), content, gradient


def _gram_slope(gram: torch.Tensor, target: torch.Tensor, weight: float, shape: tuple[int, int], name: str) -> torch.Tensor:
    """``M`` such that the gradient of ``weight * mse(G, A)`` with respect to the (positions x
    channels) features ``F`` is ``F @ M``: d mse/dG = 2 (G - A) / C^2 and dG/dF = 2 F / (C H W)
    for symmetric ``G``."""
    channels = gram.shape[0]
    stride = layer_stride(name)
    positions = feature_extent(shape[0], stride) * feature_extent(shape[1], stride)
    return (4.0 * weight / (channels**2 * channels * positions)) * (gram - target)


def _flat(features: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) -> (h*w, C) in float32 (a free view for channels_last activations)."""
    channels = features.shape[1]
    return features.float().permute(0, 2, 3, 1).reshape(-1, channels)


def _target_crop(target: torch.Tensor, tile: Tile, stride: int, shape: tuple[int, int]) -> torch.Tensor:
    """The part of a whole-picture feature map that ``tile``'s interior owns."""
    return _feature_box(target, tile, stride, shape, 0, 0)


def _feature_box(features: torch.Tensor, tile: Tile, stride: int, shape: tuple[int, int], top: int,
                 left: int) -> torch.Tensor:
    """``tile``'s interior at a layer of ``stride``, in a feature map whose origin is feature
    (``top``, ``left``) of the picture. A tile on the picture's last row/column owns the features
    up to the picture's own feature edge (pooling floors), as the whole picture has them."""
    height, width = shape
    bottom = feature_extent(height, stride) if tile.bottom == height else tile.bottom // stride
    right = feature_extent(width, stride) if tile.right == width else tile.right // stride
    return features[..., tile.top // stride - top:bottom - top, tile.left // stride - left:right - left]
