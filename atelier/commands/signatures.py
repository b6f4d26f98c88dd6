"""Adding a shared group of options to Typer commands without writing them out in each.

Typer reads a command's options from its signature. `gather_options` appends a group of
parameters to that signature and hands the command their values as one typed argument, so
a group (the listing filters, a method's parameters) is declared once and every command
that takes it takes it alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

Command = Callable[..., Any]


def keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """One option of a group: a keyword parameter with its `Annotated[type, typer.Option(...)]`."""
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def gather_options(
    group: list[inspect.Parameter], into: str, build: Callable[[dict[str, Any]], Any]
) -> Callable[[Command], Command]:
    """Decorator: the command gets the options of `group` after its own, and receives
    `build(values of the group)` as its parameter `into` (which the CLI does not show)."""
    names = [parameter.name for parameter in group]

    def decorate(command: Command) -> Command:
        own = inspect.signature(command)
        clash = set(names) & set(own.parameters)
        if clash:
            raise TypeError(f"{command.__name__} already has the options {sorted(clash)}")
        # The command's own annotations are evaluated (Typer needs objects), except that of
        # `into`, whose type the command may import only for type checking.
        shown = [p.replace(annotation=_evaluated(p.annotation, command)) for name, p in own.parameters.items()
                 if name != into]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            gathered = {name: values.pop(name) for name in names}
            return command(**values, **{into: build(gathered)})

        wrapper.__signature__ = own.replace(parameters=[*shown, *group])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*shown, *group]}
        del wrapper.__wrapped__  # Typer must read the signature above, not the command's
        return wrapper

    return decorate


def _evaluated(annotation: Any, command: Command) -> Any:
    return eval(annotation, command.__globals__) if isinstance(annotation, str) else annotation  # noqa: S307


def given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options the user gave (None means not given)."""
    return {name: value for name, value in values.items() if value is not None}
