"""Gatys et al.'s method: the output image itself is optimized against VGG-19 content and style targets.

Grouped because its modules make one objective and its optimizers: ``objective`` (targets, levels,
terms) is shared by ``render`` (one image, the entry point :func:`stylize`) and ``batched`` (B
images at once, with ``batched_lbfgs`` and ``compiled_objective``); ``memory`` plans renders and
batches from the free device memory, and ``tiled_objective`` computes a level too large for it in
tiles. The video method (style_engine.video) optimizes each frame with ``render``.

``stylize`` is re-exported lazily (PEP 562), as in style_engine/__init__.py: importing a module
of this package (``memory`` or ``tiled_objective``, say) does not load ``render`` and the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["stylize"]


def __getattr__(name: str) -> Any:
    if name == "stylize":
        return importlib.import_module("style_engine.gatys.render").stylize
    raise AttributeError(f"module 'style_engine.gatys' has no attribute {name!r}")
