"""`atelier stylize`: one content image in the style of one or more paintings, no catalog.

It runs the engine in-process and writes a PNG (text chunks) or a JPEG or WebP (EXIF) whose
metadata records how it was made, so a result found later can be reproduced. Only Typer and
rich load at import time: the engine (and torch) load when the command runs, and Prefect,
boto3 and SQLAlchemy never do. The engine's parameters are options generated from the
method's parameter class (`atelier.commands.method_options`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from atelier.commands.method_options import method_options
from atelier.console import err_console, fail, user_errors
from atelier.settings import get_settings

if TYPE_CHECKING:
    from style_engine.gatys.render import StyleResult

PRESERVE_COLOR_CHOICES = ("luminance", "histogram", "histogram:cholesky", "histogram:pca")


def register(app: typer.Typer) -> None:
    app.command("stylize")(stylize)


@method_options()
def stylize(
    content: Annotated[Path, typer.Argument(help="The photo to render.", show_default=False)],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write: .png, .jpg or .webp (a folder for a folder).",
                           show_default=False)
    ],
    styles: Annotated[
        list[Path] | None, typer.Argument(help="One or more style images (none with --method itn).", show_default=False)
    ] = None,
    method: Annotated[str, typer.Option(help="Engine method: gatys, itn (a trained model), or noop (resize only).")] = "gatys",
    model: Annotated[str | None, typer.Option(help="With --method itn: the trained model's name or id.")] = None,
    style_weights: Annotated[
        list[str] | None,
        typer.Option(help="Blend weights, one per style: '0.7,0.3' or the option repeated."),
    ] = None,
    preserve_color: Annotated[
        str | None,
        typer.Option(help="Keep the photo's colors: luminance, or histogram[:cholesky|pca]."),
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="VGG weights: caffe, torchvision or a state-dict path (default: the setting).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cuda, mps or cpu (default: the setting).")] = None,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality, 1-100 (PNG is lossless).", min=1, max=100)] = 92,
    *,
    method_params: dict[str, Any],
) -> None:
    """Render CONTENT in the style of STYLE and write a PNG, JPEG or WebP with its provenance.

    Several styles are blended. The output's suffix picks the format; its metadata records
    how it was made (PNG text chunks, or EXIF for JPEG and WebP). With --method itn, CONTENT
    may be a folder and no STYLE is given: the model carries the style. The defaults shown
    are Gatys's; another method takes those of these options it has, with its own defaults.
    """
    if method == "itn":
        from atelier.commands.models import stylize_with_model

        unused = sorted(set(method_params) - {"size"})
        if unused:
            raise fail(f"--{unused[0].replace('_', '-')}: --method itn takes only --size (the model holds the rest)")

        return stylize_with_model(content, model, output, size=method_params.get("size"),
                                  preserve_color=preserve_color, device=device)
    if not styles:
        raise fail("give at least one STYLE image (or --method itn --model NAME)")
    if output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise fail(f"{output}: the output must end in .png, .jpg, .jpeg or .webp")
    raw_params = {**method_params, **_color_options(preserve_color)}
    blend = _parse_style_weights(style_weights) if style_weights else None
    settings = get_settings()

    with user_errors():
        from atelier.services.outputs import refuse_input_as_output
        from storage.files import atomic_path
        from style_engine.images import load_image, save_image
        from style_engine.methods import run_method
        from style_engine.params import parse_params

        refuse_input_as_output(output, [content, *styles])
        params = parse_params(method, raw_params)
        limits = {"max_pixels": settings.max_image_pixels}
        content_image = load_image(content, **limits)
        style_images = [load_image(path, **limits) for path in styles]
        started = time.perf_counter()
        # Opened before the render, so an output that cannot be written fails at once.
        with atomic_path(output) as temp:
            with _progress_bar() as on_step:
                result = run_method(
                    method,
                    content_image,
                    style_images,
                    params,
                    style_weights=blend,
                    device=device or settings.device,
                    weights=weights or settings.vgg_weights,
                    cache=None,
                    style_keys=None,
                    on_step=on_step,
                )
            save_image(result.image, temp, _metadata(method, params.to_dict(), content, styles, blend, result),
                       quality=quality)
    seconds = time.perf_counter() - started
    losses = " ".join(f"{name}={value:.4g}" for name, value in result.losses.items())
    width, height = result.image.size
    typer.echo(f"{output} {width}x{height} {result.iterations} iterations {seconds:.1f}s {losses}".rstrip())


def _color_options(preserve_color: str | None) -> dict[str, str]:
    """'histogram:pca' -> preserve_color='histogram', histogram_mode='pca'."""
    if preserve_color is None:
        return {}
    if preserve_color not in PRESERVE_COLOR_CHOICES:
        raise fail(f"--preserve-color: {preserve_color!r} is not one of {', '.join(PRESERVE_COLOR_CHOICES)}")
    mode, _, variant = preserve_color.partition(":")
    return {"preserve_color": mode, **({"histogram_mode": variant} if variant else {})}


def _parse_style_weights(values: list[str]) -> list[float]:
    """Accept '0.7,0.3' as well as the option repeated; the engine checks count and signs."""
    parsed = []
    for item in (part.strip() for value in values for part in value.split(",")):
        try:
            value = float(item)
        except ValueError:
            raise fail(f"--style-weights: {item!r} is not a number") from None
        if not math.isfinite(value):
            raise fail(f"--style-weights: {item!r} is not a finite number")
        parsed.append(value)
    return parsed


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int, dict[str, float]], None]]:
    """A progress bar on stderr, fed by the engine's step callback. It clears itself at the end,
    leaving stdout with only the summary line.

    Where stderr is no terminal (a log file, a pipe, a batch system) a bar shows nothing until
    the end, so a line is written at every tenth of the run instead.
    """
    if not err_console.is_terminal:
        yield progress_lines()
        return
    columns = (TextColumn("stylizing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TextColumn("{task.fields[losses]}"), console=err_console, transient=True) as bar:
        task = bar.add_task("stylize", total=None, losses="")

        def on_step(step: int, total: int, losses: dict[str, float]) -> None:
            text = " ".join(f"{name} {value:.3g}" for name, value in losses.items())
            bar.update(task, completed=step, total=total, losses=text)

        yield on_step


class _StderrLines:
    """The `info(format, *args)` of a logger, writing timestamped lines to stderr."""

    def info(self, message: str, *args: object) -> None:
        err_console.print(f"{time.strftime('%H:%M:%S')} {message % args}", highlight=False, soft_wrap=True)


def progress_lines(unit: str = "step") -> Callable[[int, int, dict[str, float]], None]:
    """An `on_step` callback that prints "stylizing: step N/T (P%)" (or frame N/T) on stderr at each 10 %."""
    from tasks.progress import throttled_progress

    return throttled_progress(_StderrLines(), "stylizing", unit=unit)  # type: ignore[arg-type]


def _metadata(
    method: str,
    params: dict[str, Any],
    content: Path,
    styles: list[Path],
    blend: list[float] | None,
    result: StyleResult,
) -> dict[str, object]:
    """What a PNG needs to be reproduced: method, canonical parameters, seed, inputs, versions."""
    import torch

    from tasks.provenance import png_provenance

    return png_provenance(
        method, params, content=content.name, styles=[path.name for path in styles],
        style_weights=blend or [1.0] * len(styles), device=result.device, weights=result.weights_source,
        weights_sha256=result.weights_sha256, torch_version=torch.__version__,
    )
