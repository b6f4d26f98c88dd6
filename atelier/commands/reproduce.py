"""`atelier reproduce ARTWORK_ID`: make a catalog artwork again here and compare (atelier.reproduce)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from atelier.console import err_console, fail, say, user_errors
from atelier.settings import get_settings

MISMATCH_EXIT = 1


def register(app: typer.Typer) -> None:
    app.command("reproduce")(reproduce)


def reproduce(
    artwork_id: Annotated[int, typer.Argument(help="The artwork's id (`atelier artworks ls`).", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the new PNG here.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cuda, mps or cpu (default: the ATELIER_DEVICE setting).")] = None,
) -> None:
    """Re-run ARTWORK_ID's job from its recorded inputs, parameters and seed, and compare.

    On the CPU, with the recorded versions and weights, the new PNG must be byte-identical (exit 1 if not); elsewhere it reports how far the metrics and pixels moved.

    Differences in versions or VGG weights are printed before the run starts.
    """
    from dataclasses import replace

    from atelier.commands.catalog_common import require_catalog
    from atelier.reproduce import CannotReproduce, open_reproduction_workshop, plan_reproduction
    from atelier.reproduce import reproduce as run_reproduction
    from tasks.workshop import WorkshopConfig

    settings = get_settings()
    require_catalog(settings.database_url)
    with user_errors():
        config = WorkshopConfig.from_settings(settings)
        workshop = open_reproduction_workshop(replace(config, device=device) if device else config)
        try:
            plan = plan_reproduction(workshop, artwork_id)
            say(f"artwork {artwork_id}: job {plan.spec.id} ({plan.spec.method}), run {plan.run_id}, recorded on "
                f"{plan.recorded_device or 'an unrecorded device'}; running on {plan.device}")
            for m in plan.mismatches:
                err_console.print(f"[yellow]differs:[/] {m.name}: recorded {m.recorded}, here {m.here}",
                                  highlight=False, soft_wrap=True)
            result = run_reproduction(workshop, plan, _progress_logger(), output)
        except CannotReproduce as exc:
            raise fail(str(exc)) from None
    verdict = "identical bytes" if result.identical else "different bytes"
    say(f"{verdict}: recorded sha256 {plan.recorded_sha256[:16]}, reproduced {result.sha256[:16]} "
        f"in {result.seconds:.1f} s; pixels differ by at most {result.max_pixel_difference} "
        f"(mean {result.mean_pixel_difference:.3g})")
    for d in result.metric_differences:
        relative = f" ({d.relative:.2%})" if d.relative is not None else ""
        say(f"  {d.name}: recorded {d.recorded:.6g}, here {d.here:.6g}{relative}")
    if output is not None:
        say(f"wrote {output}")
    if plan.expects_identical_bytes and not result.identical:
        err_console.print("[bold red]error:[/] on the CPU with the recorded versions and weights the bytes must be "
                          "identical: this run is not reproducible", highlight=False, soft_wrap=True)
        raise typer.Exit(MISMATCH_EXIT)


def _progress_logger() -> logging.Logger:
    """A logger whose progress lines ("job N: step i/T") go to stderr, once per tenth of the run."""
    logger = logging.getLogger("atelier.reproduce")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
