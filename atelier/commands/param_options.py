"""Engine parameters on the command line: `--param key=value`, shared by every command that
creates or runs work (`jobs add | matrix`, `models train`, `stylize-video`), beside the
options generated from the method's parameters (`atelier.commands.method_options`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from atelier.console import fail

ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", help="key=value (value parsed as JSON when it can be, else a string). Repeatable."),
]


def parse_param_options(pairs: list[str] | None) -> dict[str, Any]:
    """`--param size=512 --param init=noise` -> {"size": 512, "init": "noise"}."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise fail(f"--param {pair!r}: expected key=value")
        if key in params:
            raise fail(f"--param {key!r} is given twice")
        try:
            params[key] = json.loads(raw, parse_constant=_no_constant)
        except json.JSONDecodeError:
            params[key] = raw
        except ValueError as exc:
            raise fail(f"--param {pair!r}: {exc}") from None
    return params


def merged_params(pairs: list[str] | None, options: dict[str, Any]) -> dict[str, Any]:
    """The `--param` pairs and the parameter options (`--size 64`) as one mapping; a parameter
    given both ways is refused rather than one silently winning."""
    params = parse_param_options(pairs)
    twice = sorted(set(params) & set(options))
    if twice:
        raise fail(f"--{twice[0].replace('_', '-')} is given twice (as an option and as --param {twice[0]}=...)")
    return {**params, **options}


def _no_constant(name: str) -> float:
    """JSON's Infinity, -Infinity and NaN are no parameter values (and the catalog's JSON can't hold them)."""
    raise ValueError(f"{name} is not a finite number")
