"""How much device memory one image of a Gatys optimization needs, and how many fit at once.

The figure is an estimate from the network's shape (activations kept for the backward pass, in
the precision the VGG runs in) plus the optimizer's state (L-BFGS keeps ``2 * history`` vectors
of the image's size). It is used twice: to refuse, before any work, a size that cannot fit even
alone, with a message that names the size and the memory; and to choose how many images a batch
runs at once. It errs on the generous side; an out-of-memory error that still happens is handled
by splitting the batch (style_engine.batched_gatys).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from style_engine.errors import InvalidInputError
from style_engine.gatys_objective import level_sizes
from style_engine.params import GatysParams
from style_engine.vgg import LAYER_NAMES

GIB = 1024**3
HEADROOM = 0.85  # share of the free memory a batch may plan to use (allocator slack, cuDNN workspaces)
ACTIVATION_FACTOR = 2.0  # activations kept for backward + transient gradients and fp32 Gram copies; about 2.5 GiB measured at 1024 px on an H200 with the history
PIXEL_VECTORS = 8  # x, gradient, direction, trial, trial gradient, line-search gradient, best, scratch
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
    pixels = height * width
    seen_by_vgg = pixels * (1 + sum(4.0**-k for k in range(1, coarse_levels + 1)))
    element = 2 if precision == "bf16" else 4
    activations = ACTIVATION_FACTOR * activation_elements_per_pixel(layers) * element * seen_by_vgg
    optimizer = (2 * history + PIXEL_VECTORS) * channels * 4 * pixels
    return int(activations + optimizer)


def gatys_bytes_per_image(params: GatysParams, shape: tuple[int, int], precision: str) -> int:
    """:func:`bytes_per_image` for a Gatys job at ``shape`` (height, width) with ``params``."""
    channels = 1 if params.preserve_color == "luminance" else 3
    layers = tuple(params.content_layers) + tuple(params.style_layers)
    return bytes_per_image(*shape, channels, layers, precision, params.lbfgs_history, len(level_sizes(params)) - 1)


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
