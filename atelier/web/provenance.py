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
ITN_METHOD = "itn"  # stylizing with a trained model (tasks.itn.STYLIZE_METHOD, a module that loads torch)
STYLIZE_OPTIONS = ("size", "iterations", "seed", "content_weight", "style_weight", "tv_weight", "init", "optimizer",
                   "style_scale")


@cache
def method_defaults(method: str) -> dict[str, Any]:
    """The method's default parameters (loads the engine's parameter module, and torch, once).

    Read from the dataclass fields rather than by building an instance: some methods have a
    parameter without a default (`itn` needs its model), and their validation would refuse one.
    """
    import dataclasses

    from style_engine.params import METHOD_PARAMS

    cls = METHOD_PARAMS.get(method)
    if cls is None:
        return {}
    return {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
            for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def reproduce_command(
    method: str, params: Mapping[str, Any], content_file: str, style_files: Sequence[str],
    style_weights: Sequence[float], weights_source: str | None, output: str,
) -> tuple[str, dict[str, Any]]:
    """(the shell command, the non-default parameters it cannot pass); file names are shell-quoted.

    An `itn` artwork is made by its model, which carries the style: stylize then takes no style
    file, and `--model` names the network.
    """
    rest = dict(params)
    model = rest.pop("model", None) if method == ITN_METHOD else None
    args = ["atelier", "stylize", content_file, *([] if model else style_files), "-o", output, "--method", method]
    if model:
        args += ["--model", str(model)]
    defaults = method_defaults(method)
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
    if len(style_files) > 1 and not model:
        args += ["--style-weights", ",".join(f"{w:g}" for w in style_weights)]
    if weights_source and not model:
        args += ["--weights", weights_source]
    unsupported = {k: v for k, v in rest.items() if k not in defaults or defaults[k] != v}
    return shlex.join(args), unsupported


def reproduce_video_command(method: str, params: Mapping[str, Any], clip_file: str, style_files: Sequence[str],
                            output: str) -> str:
    """`atelier stylize-video` with the recorded parameters that differ from the method's defaults;
    `method` is the catalog's (video_gatys)."""
    args = ["atelier", "stylize-video", clip_file, output, "--method", method.removeprefix("video_")]
    for style in style_files:
        args += ["--style", style]
    defaults = method_defaults(method)
    for name, value in sorted(params.items()):
        if name not in defaults or defaults[name] != value:
            args += ["--param", f"{name}={json.dumps(value)}"]
    return shlex.join(args)
