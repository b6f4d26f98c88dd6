"""Options generated from a method's parameter dataclass (`style_engine.params.GatysParams`),
so that `atelier stylize` and `atelier jobs add | matrix` take the same `--size`,
`--iterations`, ... and neither restates a default.

The dataclass is read from its source, not imported: importing the engine loads PyTorch,
seconds that every command's start-up (and `atelier --help`) would pay. A test checks the
generated options against the imported dataclass. Options default to None ("not given"), so
that a method takes its own defaults for what the user left out, and their help shows the
dataclass's default.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from collections.abc import Callable
from typing import Annotated, Any

import typer

from atelier.commands.signatures import Command, gather_options, given, keyword

PARAMS_MODULE = "style_engine.params"
PARAMS_CLASS = "GatysParams"
# What each engine parameter means, for --help. A parameter of the dataclass with a plain type
# (a number, a word, a flag) becomes an option when it is described here; the color options
# are one option of their own (--preserve-color), and layer lists stay --param values.
OPTION_HELP = {
    "size": "Long side of the output in px.",
    "iterations": "Loss evaluations.",
    "seed": "Random seed (noise init, Adam).",
    "content_weight": "Content loss weight (default: per VGG weights).",
    "style_weight": "Style loss weight (default: per VGG weights).",
    "tv_weight": "Total-variation weight (default: per VGG weights).",
    "init": "Start from: content, noise or style.",
    "optimizer": "lbfgs or adam.",
    "learning_rate": "Adam's step size.",
    "lbfgs_history": "L-BFGS history size.",
    "style_scale": "Style image size relative to the output.",
    "multiscale": "Optimize coarse-to-fine.",
    "scales": "Levels of --multiscale.",
    "pooling": "VGG pooling: max or avg.",
    "precision": "auto, bf16 or fp32.",
}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class ParamField:
    """One parameter of the dataclass as its source declares it."""

    name: str
    type: type
    default: Any


@cache
def param_fields(module: str = PARAMS_MODULE, class_name: str = PARAMS_CLASS) -> tuple[ParamField, ...]:
    """The plain-typed fields of a parameter dataclass, in order, with their literal defaults."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"cannot find {module}")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name]
    fields = []
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            continue
        words = [word.strip() for word in ast.unparse(node.annotation).split("|")]
        kinds = [_TYPES[word] for word in words if word in _TYPES]
        if len(kinds) == 1 and set(words) <= {*_TYPES, "None"}:
            fields.append(ParamField(node.target.id, kinds[0], ast.literal_eval(node.value)))
    return tuple(fields)


def _option(field: ParamField) -> inspect.Parameter:
    flag = f"--{field.name.replace('_', '-')}"
    decls = (f"{flag}/--no-{flag[2:]}",) if field.type is bool else (flag,)
    shown = "" if field.default is None else str(field.default).lower() if field.type is bool else str(field.default)
    # The option's own default is None (not given), so its help names the dataclass's; `\[`
    # keeps rich from reading the brackets as markup.
    text = OPTION_HELP[field.name] + (f" \\[default: {shown}]" if shown else "")
    option = typer.Option(*decls, help=text, show_default=False)
    return keyword(field.name, Annotated[field.type | None, option], None)


def method_parameters(*, besides: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """The method's parameters as options; `besides` names those whose option name the command
    already uses for something else (they stay `--param` values there)."""
    return [_option(field) for field in param_fields() if field.name in OPTION_HELP and field.name not in besides]


def method_options() -> Callable[[Command], Command]:
    """Decorator: the command takes the method's parameters as options, and receives those
    the user gave as `method_params: dict`."""
    return gather_options(method_parameters(), "method_params", given)
