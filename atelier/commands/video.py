"""`atelier stylize-video`: one clip in the style of one or more paintings, or of a trained network.

Ruder et al.'s temporally consistent Gatys (``--method gatys``), or a trained fast style network
(``--method itn --model NAME``) on every frame, steadied along the flow (``--no-stabilize``: not).
``--per-frame`` gives Gatys's flickering baseline. Writes an H.264 MP4 with the source's audio, and
prints the clip's metrics. Gatys needs no catalog (Prefect, boto3 and SQLAlchemy are never
imported); itn reads its model from the catalog and store of the settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from atelier.console import err_console, fail, user_errors
from atelier.settings import get_settings

# CLI method names -> engine methods.
VIDEO_METHODS = {"gatys": "video_gatys", "itn": "video_itn"}


def register(app: typer.Typer) -> None:
    app.command("stylize-video")(stylize_video)


def stylize_video(
    source: Annotated[Path, typer.Argument(help="The clip to render.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Where to write the MP4.", show_default=False)],
    style: Annotated[
        list[Path] | None,
        typer.Option(help="Style image (repeat to blend several); with itn optional, checked against the model's.",
                     show_default=False),
    ] = None,
    method: Annotated[str, typer.Option(help="gatys (Ruder et al. 2016) or itn (a trained network).")] = "gatys",
    model: Annotated[str | None, typer.Option(help="With --method itn: the trained model's name or id.")] = None,
    stabilize: Annotated[
        bool, typer.Option("--stabilize/--no-stabilize", help="With itn: blend with the previous output along the flow.")
    ] = True,
    size: Annotated[int | None, typer.Option(help="Long side of the frames in px (an odd one is rounded up to even) [default: 512].")] = None,
    start: Annotated[int, typer.Option(help="First frame (from 0).")] = 0,
    frames: Annotated[int | None, typer.Option(help="Number of frames [default: to the end].")] = None,
    iterations: Annotated[int | None, typer.Option(help="First frame's evaluations [default: 300].")] = None,
    frame_iterations: Annotated[int | None, typer.Option(help="Later frames' evaluations [default: 150].")] = None,
    temporal_weight: Annotated[float | None, typer.Option(help="Temporal loss weight [default: per weights].")] = None,
    flow: Annotated[str | None, typer.Option(help="Optical flow: dis, farneback or deepflow [default: dis].")] = None,
    per_frame: Annotated[bool, typer.Option("--per-frame", help="Each frame alone (no temporal loss).")] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Any other parameter, key=value (repeatable).")
    ] = None,
    weights: Annotated[str | None, typer.Option(help="VGG weights [default: setting].")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cuda, mps or cpu [default: setting].")] = None,
) -> None:
    """Render SOURCE in the style of --style (or of --model's network), frame by frame along optical flow, into the MP4 OUTPUT."""
    from atelier.commands.param_options import parse_param_options

    if output.suffix.lower() != ".mp4":
        raise fail(f"{output}: the output must be an .mp4 file")
    if method not in VIDEO_METHODS:
        raise fail(f"--method {method!r}: expected one of {', '.join(VIDEO_METHODS)}")
    options: dict[str, Any] = {"size": size, "start": start, "frames": frames, "flow": flow}
    if method == "itn":
        if not model:
            raise fail("--method itn needs --model NAME_OR_ID (see `atelier models ls`)")
        gatys_only = {"--iterations": iterations, "--frame-iterations": frame_iterations,
                      "--temporal-weight": temporal_weight, "--per-frame": per_frame or None, "--weights": weights}
        given = [name for name, value in gatys_only.items() if value is not None]
        if given:
            raise fail(f"{', '.join(given)}: not used by --method itn (use --no-stabilize for the per-frame baseline)")
        options |= {"model": model, "stabilize": stabilize}
    else:
        if not style:
            raise fail("--style: give at least one style image (or --method itn --model NAME)")
        if model is not None or not stabilize:
            raise fail("--model and --no-stabilize are for --method itn (Gatys's baseline is --per-frame)")
        options |= {"iterations": iterations, "frame_iterations": frame_iterations,
                    "temporal_weight": temporal_weight, "temporal": False if per_frame else None}
    raw = parse_param_options(param) | {key: value for key, value in options.items() if value is not None}
    settings = get_settings()
    with user_errors():
        from atelier.services.outputs import refuse_input_as_output
        from storage.files import atomic_path
        from style_engine.images import load_image
        from tasks.video_render import render_clip, video_params

        from tasks.local_frames import LocalFrames

        params = video_params(VIDEO_METHODS[method], raw)
        if not source.is_file():
            raise fail(f"{source}: no such file")
        poster, preview = output.with_suffix(".poster.png"), output.with_suffix(".preview.webp")
        for target in (output, poster, preview):
            refuse_input_as_output(target, [source, *(style or [])])
        if method == "itn":
            stylizer, painter = _itn_stylizer(params, style or [], device or settings.device)
        else:
            from style_engine.video.ruder import RuderGatys

            style_images = [load_image(path, max_pixels=settings.max_image_pixels) for path in style or []]
            stylizer = RuderGatys(style_images, params, device=device or settings.device,  # type: ignore[arg-type]
                                  weights=weights or settings.vgg_weights)
            painter = {"styles": [_sha256(path) for path in style or []], "weights": weights or settings.vgg_weights}
        kept = LocalFrames.for_render(output, source, params.to_dict(), painter)
        finished = kept.finished()
        if finished:
            err_console.print(f"resuming after the {len(finished)} frames kept in {kept.folder}", highlight=False,
                              soft_wrap=True)
        started = time.perf_counter()
        # Opened before the render, so an output that cannot be written fails before the first frame.
        with atomic_path(output) as temp:
            with _frame_progress() as on_frame, _interrupted(kept):
                clip = render_clip(source, temp, stylizer, params, finished=finished, checkpoint=kept.save,
                                   on_frame=on_frame)
            with atomic_path(poster) as poster_temp:
                clip.poster.save(poster_temp)
            with atomic_path(preview) as preview_temp:
                preview_temp.write_bytes(clip.preview)
        kept.remove()
    for note in clip.metrics["notes"]:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    m = clip.metrics
    typer.echo(
        f"{output} {clip.width}x{clip.height} {clip.frames} frames at {clip.fps:g} fps in "
        f"{time.perf_counter() - started:.1f}s ({m['seconds_per_frame']:.2f} s/frame, flow {100 * m['flow_share']:.1f}%) "
        f"warping_error={m['warping_error']:.3g}"
        + (f" style_dist={m['style_dist']:.4g}" if "style_dist" in m else "")
        + f" scene_cuts={int(m['scene_cuts'])}"
    )


def _itn_stylizer(params: Any, styles: list[Path], device: str) -> tuple[Any, dict[str, Any]]:
    """The model's stylizer and the model's identity; a --style given with it must be one the
    model was trained on."""
    from atelier.commands.models import workshop_from_settings
    from tasks.video_render import itn_stylizer

    for path in styles:
        if not path.is_file():
            raise fail(f"{path}: no such file")
    given = [(str(path), _sha256(path)) for path in styles]
    return itn_stylizer(workshop_from_settings(device=device), params, styles=given)


def _sha256(path: Path) -> str:
    from storage.files import file_digest

    return file_digest(path)[0]


@contextmanager
def _interrupted(kept: Any) -> Iterator[None]:
    """Ctrl-C (or SIGTERM): say what is kept and how to go on, and exit 130, as `gallery run` does.

    Every finished frame is already on disk (`kept`), so the same command resumes after it.
    """
    import signal

    from flows.foreground import INTERRUPTED_EXIT  # no Prefect behind it: stylize-video stays light

    def terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    except KeyboardInterrupt:
        done = kept.count()
        err_console.print(f"interrupted: {done} finished frame{'s' if done != 1 else ''} kept in {kept.folder}; "
                          "run the same command again to resume after them", highlight=False, soft_wrap=True)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _frame_progress() -> Iterator[Callable[[Any], None]]:
    """A per-frame progress bar on stderr, fed by the engine's frame reports; it clears itself.

    Where stderr is no terminal (a log file, a pipe) a bar shows nothing until the end (a
    20-frame run once logged nothing for 25 minutes), so a line is written at every tenth of
    the clip instead, as `stylize` does.
    """
    if not err_console.is_terminal:
        from atelier.commands.stylize import progress_lines

        lines = progress_lines(unit="frame")
        yield lambda report: lines(report.index + 1, report.total or report.index + 1, report.losses)
        return
    columns = (TextColumn("frames"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("frames", total=None, info="")

        def on_frame(report: Any) -> None:
            info = f"{report.seconds + report.flow_seconds:.1f} s/frame"
            if report.warping_error is not None:
                info += f", warping error {report.warping_error:.2e}"
            bar.update(task, completed=report.index + 1, total=report.total, info=info)

        yield on_frame
