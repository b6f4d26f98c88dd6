"""Atelier's style engine: PIL images and typed parameters in, images and metrics out.

It imports nothing else of Atelier's and never touches files, the catalog or the network.

The public names below are re-exported lazily (PEP 562): ``style_engine.errors`` is imported by
every CLI command for error handling, and must not drag in PyTorch (1-2 s) on the way.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InvalidInputError": "errors",
    "OptimizationError": "errors",
    "TransientError": "errors",
    "load_image": "images",
    "image_info": "images",
    "save_png": "images",
    "png_bytes": "images",
    "thumbnail": "images",
    "GatysParams": "params",
    "NoopParams": "params",
    "METHOD_PARAMS": "params",
    "parse_params": "params",
    "VGGFeatures": "vgg",
    "WeightsError": "vgg",
    "load_vgg": "vgg",
    "resolve_device": "device",
    "StyleResult": "gatys.render",
    "StyleTargetCache": "gatys.render",
    "stylize": "gatys.render",
    "run_method": "methods",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'style_engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"style_engine.{module}"), name)


def __dir__() -> list[str]:
    return __all__
