"""How much device memory one image of a Gatys optimization needs, and how many fit at once.

The figure is an estimate from the network's shape (activations kept for the backward pass, in
the precision the VGG runs in) plus the optimizer's state (L-BFGS keeps ``2 * history`` vectors
of the image's size). It is used twice: to plan, before any work, a render that cannot fit whole
(tiles of the size the free memory holds, style_engine.gatys.tiled_objective; refused with a message
that names the size and the memory only when even its image-sized buffers do not fit); and to
choose how many images a batch runs at once. It errs on the generous side; an out-of-memory error that still happens is handled
by splitting the batch (style_engine.gatys.batched).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from style_engine.errors import InvalidInputError
from style_engine.gatys.objective import level_sizes
from style_engine.params import GatysParams
from style_engine.gatys.tiled_objective import DEFAULT_HALO, GRID
from style_engine.vgg import LAYER_NAMES

GIB = 1024**3
HEADROOM = 0.85  # share of the free memory a batch may plan to use (allocator slack, cuDNN workspaces)
ACTIVATION_FACTOR = 2.0  # activations kept for backward + transient gradients and fp32 Gram copies; about 2.5 GiB measured at 1024 px on an H200 with the history
PIXEL_VECTORS = 8  # x, gradient, direction, trial, trial gradient, line-search gradient, best, scratch
MIN_TILE = 256  # below this the halo's share makes tiles a poor trade (a 256 px tile with 64 px halos is 2.25x its pixels)
TILED_HISTORY = 10  # L-BFGS pairs at the final level of a render that does not fit whole (measured, README "Print sizes")
TILED_PIXEL_BYTES = 96  # per pixel beside the optimizer: fp32 content features at relu4_2 (32), the tiled gradient, content and best images
CPU_DEFAULT_BATCH = 4  # on a CPU batching saves little (compute-bound); a few images keep memory modest


def activation_elements_per_pixel(layers: Sequence[str]) -> float:
    """Elements per input pixel of every VGG output up to the deepest of ``layers``."""
    deepest = max(LAYER_NAMES.index(name) for name in layers)
    channels, area, total = 3, 1.0, 0.0
    for name in LAYER_NAMES[: deepest + 1]:
        if name.startswith("conv"):
            block = int(name[4])
            channels = min(64 * 2 ** (block - 1), 512)
        elif name.startswith("pool"):
            area /= 4
        total += channels * area
    return total


def bytes_per_image(height: int, width: int, channels: int, layers: Sequence[str], precision: str, history: int,
                    coarse_levels: int = 0) -> int:
    """Estimated peak bytes one image adds to an optimization at ``height`` x ``width``.

    The final level of a coarse-to-fine run also runs VGG on the image scaled down to each of its
    ``coarse_levels`` (half, quarter ... the size: a quarter, a sixteenth ... of the activations).
    """
    return activation_bytes(height * width, layers, precision, coarse_levels) + optimizer_bytes(height * width, channels, history)


def activation_bytes(pixels: int, layers: Sequence[str], precision: str, coarse_levels: int = 0) -> int:
    """The VGG graph kept for the backward pass of ``pixels`` (plus its coarse levels' scaled-down copies)."""
    seen_by_vgg = pixels * (1 + sum(4.0**-k for k in range(1, coarse_levels + 1)))
    element = 2 if precision == "bf16" else 4
    return int(ACTIVATION_FACTOR * activation_elements_per_pixel(layers) * element * seen_by_vgg)


def optimizer_bytes(pixels: int, channels: int, history: int) -> int:
    """L-BFGS's ``2 * history`` curvature vectors and the optimization's other image-sized vectors, fp32."""
    return (2 * history + PIXEL_VECTORS) * channels * 4 * pixels


def gatys_bytes_per_image(params: GatysParams, shape: tuple[int, int], precision: str) -> int:
    """:func:`bytes_per_image` for a Gatys job at ``shape`` (height, width) with ``params``."""
    return bytes_per_image(*shape, _optimized_channels(params), _vgg_layers(params), precision, params.lbfgs_history,
                           len(level_sizes(params)) - 1)


def _optimized_channels(params: GatysParams) -> int:
    """Luminance transfer optimizes the Y channel alone."""
    return 1 if params.preserve_color == "luminance" else 3


def _vgg_layers(params: GatysParams) -> tuple[str, ...]:
    return tuple(params.content_layers) + tuple(params.style_layers)


def _tiled_buffer_bytes(params: GatysParams, shape: tuple[int, int], history: int) -> int:
    """What a tiled render keeps at its final size beside one tile's graph: the optimizer's
    vectors with ``history`` L-BFGS pairs and the other picture-sized buffers."""
    pixels = shape[0] * shape[1]
    return optimizer_bytes(pixels, _optimized_channels(params), history) + TILED_PIXEL_BYTES * pixels


@dataclass(frozen=True)
class RenderPlan:
    """How a render fits the device: each level's tile size (None: whole, as without tiling) and
    the L-BFGS history at the final level (the coarser levels keep the parameters')."""

    tiles: tuple[int | None, ...]
    final_history: int
    halo: int = DEFAULT_HALO

    @property
    def tiled(self) -> bool:
        return any(tile is not None for tile in self.tiles)

    @classmethod
    def whole(cls, params: GatysParams) -> RenderPlan:
        """Every level whole, with the parameters' history: how a render that fits is made."""
        return cls((None,) * len(level_sizes(params)), params.lbfgs_history)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], params: GatysParams) -> RenderPlan:
        """The plan a Run recorded in its metrics (``tile_plan``), to make the same render again
        whatever memory is free now (``atelier reproduce``)."""
        try:
            levels = [level.get("tile") for level in record["levels"]]
            plan = cls(tuple(levels), int(record["lbfgs_history"]), int(record["halo"]))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InvalidInputError(f"recorded tile plan {dict(record)!r}: not a tile plan ({exc!r})") from None
        expected = len(level_sizes(params))
        if len(levels) != expected:
            raise InvalidInputError(f"recorded tile plan has {len(levels)} levels; the parameters give {expected}")
        return plan


def plan_render(params: GatysParams, shapes: Sequence[tuple[int, int]], precision: str, available: int,
                device: torch.device) -> RenderPlan:
    """Whole levels where the whole render fits (the same computation as before tiling existed); else
    the largest tile (a multiple of 16 px) whose graph fits beside the final size's image-sized
    buffers, for every level whose own graph does not fit there.

    A render that does not fit whole keeps :data:`TILED_HISTORY` L-BFGS pairs at most at its final
    level: 50 pairs are 1.2 KB per pixel, 40 GB at 8K, and at the same evaluations a short history
    costs little (README "Print sizes"); a coarser level's history is a fraction of that. Refuses, with the memory it would need, a render whose buffers alone do not fit.
    """
    layers = _vgg_layers(params)
    final = shapes[-1]
    if gatys_bytes_per_image(params, final, precision) <= available:
        return RenderPlan.whole(params)
    history = min(params.lbfgs_history, TILED_HISTORY)
    buffers = _tiled_buffer_bytes(params, final, history)
    budget = int(HEADROOM * available) - buffers
    smallest = activation_bytes((MIN_TILE + 2 * DEFAULT_HALO) ** 2, layers, precision)
    if budget < smallest:
        raise InvalidInputError(
            f"size {params.size} px ({final[1]}x{final[0]}) needs about {(buffers + smallest) / HEADROOM / GIB:.1f} GiB "
            f"of {device.type} memory even in tiles of {MIN_TILE} px, but only {available / GIB:.1f} GiB is free; "
            "choose a smaller size"
        )
    side = math.isqrt(int(budget / activation_bytes(1, layers, precision) * 0.999))  # the region's side that fits
    # Tiles come in powers of two from MIN_TILE: a render replayed (atelier reproduce) with a little
    # more or less memory free gets the same plan, hence the same bytes.
    tile = MIN_TILE * 2 ** max(0, int(math.log2(max(side - 2 * DEFAULT_HALO, MIN_TILE) / MIN_TILE)))
    tiles = tuple(
        None if activation_bytes(h * w, layers, precision, level) <= budget else tile
        for level, (h, w) in enumerate(shapes)
    )
    return RenderPlan(tiles, history)


def check_replay_fits(plan: RenderPlan, params: GatysParams, shapes: Sequence[tuple[int, int]], precision: str,
                      available: int, device: torch.device) -> None:
    """Refuse, before any work, a recorded plan whose final level cannot fit here (a render made
    whole on a larger device, or in larger tiles): replayed in other tiles it would give other
    bytes, so it is said, with the memory it needs, instead of failing out of memory midway."""
    final, tile = shapes[-1], plan.tiles[-1]
    if tile is None:
        needed = gatys_bytes_per_image(params, final, precision)
    else:
        needed = (_tiled_buffer_bytes(params, final, plan.final_history)
                  + activation_bytes((tile + 2 * plan.halo) ** 2, _vgg_layers(params), precision))
    if needed > available:
        cut = "whole" if tile is None else f"in {tile} px tiles"
        raise InvalidInputError(
            f"size {params.size} px ({final[1]}x{final[0]}) was rendered {cut}, which needs about {needed / GIB:.1f} GiB "
            f"of {device.type} memory, but only {available / GIB:.1f} GiB is free; make it again on a device with that memory"
        )


def forced_plan(params: GatysParams, shapes: Sequence[tuple[int, int]], tile: int) -> RenderPlan:
    """Tiles of ``tile`` px at every level larger than that, with the tiled levels' usual history."""
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < GRID or tile % GRID:
        raise InvalidInputError(f"tile size {tile!r}: must be a positive multiple of {GRID} px")
    tiles = tuple(tile if max(shape) > tile else None for shape in shapes)
    history = min(params.lbfgs_history, TILED_HISTORY) if tiles[-1] else params.lbfgs_history
    return RenderPlan(tiles, history)


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: the CUDA allocator's view, else the host's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free) + int(torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    return _host_available()


def _host_available() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def ensure_fits(size: int, shape: tuple[int, int], per_image: int, available: int, device: torch.device) -> None:
    """Refuse, before any work, a size whose single image needs more than the device has free."""
    if per_image > available:
        height, width = shape
        raise InvalidInputError(
            f"size {size} px ({width}x{height}) needs about {per_image / GIB:.1f} GiB of {device.type} memory "
            f"per image, but only {available / GIB:.1f} GiB is free; choose a smaller size"
        )


def batch_capacity(per_image: int, available: int, device: torch.device, limit: int | None = None) -> int:
    """How many images to optimize at once: as many as the free memory holds (a few on a CPU)."""
    fits = max(1, int(HEADROOM * available) // max(per_image, 1))
    if device.type != "cuda":
        fits = min(fits, CPU_DEFAULT_BATCH)
    return min(fits, limit) if limit else fits
