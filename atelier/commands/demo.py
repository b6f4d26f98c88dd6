"""`atelier demo` (`make demo`): the whole system on the embedded defaults, in minutes, on a CPU.

It goes through the same services a user's commands do: image registration as `catalog add`,
the job matrix as `jobs matrix`, and the gallery flow on Prefect's local ephemeral API.
Every step is idempotent, so running the demo again reuses the catalog and only does
what is still to do.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from atelier.commands.catalog import register_images, report_added
from atelier.commands.catalog_common import make_filters, read_session
from atelier.commands.gallery import (
    VerboseOpt,
    exit_code,
    print_report,
    quiet_embedded_prefect,
    run_flow_for_report,
)
from atelier.commands.jobs import add_matrix, print_matrix
from atelier.console import USER_ERROR_EXIT, console, fail, quiet_tracebacks, user_errors
from atelier.services.image_ingest import ImageRequest
from atelier.services.job_requests import JobRequest
from style_engine.itn.recipes import TRAINING_RECIPES

if TYPE_CHECKING:
    from db.models import Image
    from flows.report import BatchReport

DEMO_TAG = "demo"
# Pictures that scikit-image ships inside its wheel (no download): two photos to render,
# and two strongly textured images to lend them a style.
SAMPLE_CONTENTS = ("astronaut", "chelsea")
SAMPLE_STYLES = ("hubble_deep_field", "immunohistochemistry")
# The fast network's style: the stain's brown and blue cell texture has Grams a network can reach
# from a photo in a minute of training; the Hubble field (black, a few dots) teaches it to paint
# every photo black, which showed nothing of the method.
DEMO_ITN_STYLE = "immunohistochemistry"
# Small enough for a 2-core CPU: 8 jobs in a few minutes at most.
DEMO_SIZE = 128
DEMO_ITERATIONS = 40
DEMO_ITN_STEPS = TRAINING_RECIPES["demo"]["steps"]
# Plain Gatys, and Gatys keeping the photo's colors (luminance-only transfer).
VARIANTS: tuple[dict[str, str], ...] = ({}, {"preserve_color": "luminance"})
DEMO_MODEL = "demo-itn"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    data: Annotated[
        Path | None,
        typer.Option(help="A folder with content/ and style/ subfolders of your own images.", show_default=False),
    ] = None,
    size: Annotated[int, typer.Option(help="Long side of the outputs in px.")] = DEMO_SIZE,
    iterations: Annotated[int, typer.Option(help="Optimizer evaluations per job.")] = DEMO_ITERATIONS,
    verbose: VerboseOpt = False,
    itn_steps: Annotated[int, typer.Option(help="Training steps of the demo's fast style network.")] = DEMO_ITN_STEPS,
) -> None:
    """Run the system end to end on sample images: catalog, jobs, gallery flow, contact sheet.

    The jobs are Gatys, and Gatys keeping the photo's colors, for every content x style; then a
    small fast style network is trained on the photos (once) and applied to each of them.
    """
    quiet_embedded_prefect()
    folders = user_folders(data) if data else write_samples(Path(".atelier/demo-inputs"))
    tag = demo_tag(data)
    with user_errors():
        console.rule("1. catalog: register the images")
        for role, folder in folders.items():
            outcomes = register_images([folder], ImageRequest(role=role, tags=(tag,)))
            report_added(outcomes, as_json=False)
            if any(o.status == "invalid" for o in outcomes):
                raise typer.Exit(USER_ERROR_EXIT)
        console.rule("2. jobs: one per content x style x variant")
        for extra in VARIANTS:
            request = JobRequest("gatys", {"size": size, "iterations": iterations, **extra})
            print_matrix(add_matrix([f"tag:{tag}"], [f"tag:{tag}"], request), as_json=False)
        console.rule("3. the gallery flow (Prefect, local ephemeral API)")
        from flows.gallery import gallery

        quiet_tracebacks(verbose)
        report = run_flow_for_report(gallery, limit=1000, tags=[tag])
    print_report(report)
    if not report.lines:
        console.print("nothing left to do: every demo job has already run")
    console.rule("4. a fast style network: trained once (then reused), applied by itn jobs")
    fast = demo_fast_style(tag, size, itn_steps)
    print_report(fast)
    print_catalog_summary(tag)
    console.print(f"open the gallery of this catalog: {gallery_command()}   (then http://127.0.0.1:8000/)",
                  highlight=False, soft_wrap=True)
    raise typer.Exit(max(exit_code(report), exit_code(fast)))


def demo_fast_style(tag: str, size: int, steps: int) -> BatchReport:
    """Train a small light model on the demo photos once, then stylize every demo photo with it
    through gallery jobs of method itn.

    The model is trained only when the catalog has none under its name, so a second demo reuses it.
    """
    from atelier.commands.models import train_model, workshop_from_settings
    from atelier.services.job_requests import select_images
    from db.trained_models import model_name_taken

    with user_errors(), read_session() as session:
        trained = model_name_taken(session, DEMO_MODEL)
        style = itn_style(select_images(session, f"tag:{tag}", "style")).sha256
        photos = select_images(session, f"tag:{tag}", "content")
        preview, folder = photos[0].sha256, Path(".atelier/demo-training")
        if not trained:
            folder.mkdir(parents=True, exist_ok=True)
            for image in photos:  # the photos as files: a folder is the common training source
                target = folder / f"{image.sha256[:16]}.{image.format.lower()}"
                if not target.exists():
                    target.write_bytes(workshop_from_settings(device="cpu").inputs.fetch(image.uri, image.sha256))
    if not trained:
        options = {"recipe": "demo", "steps": steps, "checkpoint_every": steps, "validate_every": steps}
        if size < TRAINING_RECIPES["demo"]["crop"]:  # tiny demos (the tests'): crops no larger than the outputs
            options.update(crop=size, style_size=2 * size)
        train_model(DEMO_MODEL, [style], str(folder), preview, options)
    with user_errors():
        request = JobRequest("itn", {"model": DEMO_MODEL, "size": size})
        print_matrix(add_matrix([f"tag:{tag}"], [style], request), as_json=False)
        from flows.gallery import gallery

        return run_flow_for_report(gallery, limit=1000, methods=["itn"], tags=[tag])


def itn_style(styles: list[Image]) -> Image:
    """The demo network's style: the sample chosen for it when present, else the first (`--data`)."""
    return next((image for image in styles if Path(image.source_name or "").stem == DEMO_ITN_STYLE), styles[0])


def gallery_command() -> str:
    """`atelier web` as this folder runs it: through the project's .venv when there is one (`make demo`)."""
    venv = Path(".venv/bin/atelier")
    return f"{venv} web" if venv.exists() else "atelier web"


def demo_tag(data: Path | None) -> str:
    """The tag that keeps one demo's images together: `demo` for the samples, and one tag per
    `--data` folder, so that your pictures are never crossed with the samples or another folder's."""
    if data is None:
        return DEMO_TAG
    import hashlib

    return f"{DEMO_TAG}-data-{hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]}"


def write_samples(root: Path) -> dict[str, Path]:
    """Write the scikit-image samples as PNG files (byte-identical on every run)."""
    import skimage.data
    from PIL import Image

    folders = {"content": root / "content", "style": root / "style"}
    for role, names in (("content", SAMPLE_CONTENTS), ("style", SAMPLE_STYLES)):
        folders[role].mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folders[role] / f"{name}.png"
            if not target.exists():
                Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(target)
    return folders


def user_folders(data: Path) -> dict[str, Path]:
    folders = {"content": data / "content", "style": data / "style"}
    missing = [str(path) for path in folders.values() if not path.is_dir()]
    if missing:
        raise fail(f"--data {data}: expected folders {', '.join(missing)}")
    return folders


def print_catalog_summary(tag: str = DEMO_TAG) -> None:
    """Jobs of the demo by method variant and status, with the median runtime of successes."""
    from statistics import median

    from db.queries import list_jobs, list_runs

    with read_session() as session:
        jobs = list_jobs(session, make_filters(tags=[tag], limit=None))
        runs = list_runs(session, make_filters(tags=[tag], status="succeeded", limit=None))
    variant = {job["id"]: _variant(job["method"], job["params"]) for job in jobs}
    counts = Counter((variant[job["id"]], job["status"]) for job in jobs)
    seconds: dict[str, list[float]] = {}
    for run in runs:
        seconds.setdefault(variant[run["job_id"]], []).append(run["duration_s"] or 0.0)
    table = Table("variant", "status", "jobs", "median seconds", title="catalog: demo jobs")
    for (name, status), count in sorted(counts.items()):
        runtime = f"{median(seconds[name]):.1f}" if status == "succeeded" and seconds.get(name) else ""
        table.add_row(name, status, str(count), runtime)
    console.print(table)


def _variant(method: str, params: dict) -> str:
    return f"{method} + {params['preserve_color']}" if params.get("preserve_color") else method
