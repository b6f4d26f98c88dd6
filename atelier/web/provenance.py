"""The command lines that make an artwork again: `atelier reproduce ID` on the catalog, and
the explicit `atelier stylize` (or `stylize-video`) one for someone with just the files.

Parameters map onto stylize's options by name (`content_weight` -> `--content-weight`);
the few that stylize has no option for are returned apart, so the page can say so instead
of printing a command that silently differs. `stylize-video` takes every recorded parameter
as `--param key=value`, so it needs no such list.
"""

from __future__ import annotations

import json
import shlex
from functools import cache
from collections.abc import Mapping, Sequence
from typing import Any

# Recorded parameters that `atelier stylize` takes as options of the same name.
STYLIZE_OPTIONS = ("size", "iterations", "seed", "content_weight", "style_weight", "tv_weight", "init", "optimizer",
                   "style_scale")


@cache
def method_defaults(method: str) -> dict[str, Any]:
    """The method's default parameters (loads the engine's parameter module, and torch, once)."""
    from style_engine.params import METHOD_PARAMS

    cls = METHOD_PARAMS.get(method)
    return cls().to_dict() if cls is not None else {}


def reproduce_command(
    method: str, params: Mapping[str, Any], content_file: str, style_files: Sequence[str],
    style_weights: Sequence[float], weights_source: str | None, output: str,
) -> tuple[str, dict[str, Any]]:
    """(the shell command, the non-default parameters it cannot pass); file names are shell-quoted."""
    args = ["atelier", "stylize", content_file, *style_files, "-o", output, "--method", method]
    defaults = method_defaults(method)
    rest = dict(params)
    for name in STYLIZE_OPTIONS:
        value = rest.pop(name, None)
        if value is not None:
            args += [f"--{name.replace('_', '-')}", str(value)]
    if rest.pop("multiscale", False):
        args.append("--multiscale")
    color = rest.pop("preserve_color", None)
    mode = rest.pop("histogram_mode", None)
    if color:
        args += ["--preserve-color", f"{color}:{mode}" if color == "histogram" and mode else color]
    if len(style_files) > 1:
        args += ["--style-weights", ",".join(f"{w:g}" for w in style_weights)]
    if weights_source:
        args += ["--weights", weights_source]
    unsupported = {k: v for k, v in rest.items() if k not in defaults or defaults[k] != v}
    return shlex.join(args), unsupported


def reproduce_video_command(method: str, params: Mapping[str, Any], clip_file: str, style_files: Sequence[str],
                            output: str) -> str:
    """`atelier stylize-video` with the recorded parameters; `method` is the catalog's (video_gatys)."""
    args = ["atelier", "stylize-video", clip_file, output, "--method", method.removeprefix("video_")]
    for style in style_files:
        args += ["--style", style]
    for name, value in sorted(params.items()):
        args += ["--param", f"{name}={json.dumps(value)}"]
    return shlex.join(args)
