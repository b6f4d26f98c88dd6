"""`atelier models train | import | ls | show | export`, and `atelier stylize --method itn` on files and folders.

Training is a catalog job (method ``itn-train``) run by the ``train_style_model`` flow in this
process, with a progress bar; the same job can run nightly under a deployment instead. Stylizing
with a model loads it from the catalog and the store (sha256-checked) and never trains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from atelier.commands.catalog_common import JsonOpt, opened_catalog, print_json, print_record, print_rows, read_session
from atelier.commands.param_options import ParamOpt, parse_param_options
from atelier.console import console, err_console, fail, user_errors
from atelier.settings import get_settings

if TYPE_CHECKING:
    from tasks.workshop import Workshop

models_app = typer.Typer(help="Fast style networks: train, import, list, show, export.", no_args_is_help=True)
EXPORT_FORMATS = ("onnx", "torchscript")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


@models_app.command("train")
def train(
    name: Annotated[str, typer.Option(help="The new model's name (unique).")],
    style: Annotated[list[str], typer.Option(help="Style image in the catalog: id, sha256, title or file name (repeat to blend).")],
    data: Annotated[str, typer.Option(help="Training photos: a folder, or tag:NAME for the catalog's content images with that tag.")],
    preview: Annotated[str, typer.Option(help="A content image in the catalog, rendered by the trained model as the job's output.")],
    style_weight: Annotated[list[float] | None, typer.Option(help="Blend weight per --style, in order.")] = None,
    steps: Annotated[int | None, typer.Option(help="Training steps [default: the recipe's].")] = None,
    arch: Annotated[str | None, typer.Option(help="johnson or light [default: the recipe's].")] = None,
    recipe: Annotated[str | None, typer.Option(help="cpu or gpu [default: the one of the device that trains].")] = None,
    param: ParamOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a fast style network as a catalog job, store it, and record it as a model.

    With no option it follows the recipe of the device it trains on (README, "Fast style
    networks"); options given override the recipe's values, and `models show` says which recipe.
    """
    given = (("steps", steps), ("arch", arch), ("recipe", recipe))
    options = {**parse_param_options(param), **{k: v for k, v in given if v is not None}}
    job_id, output_uri = train_model(name, style, data, preview, options, style_weights=style_weight)
    with user_errors(), read_session() as session:
        from db.trained_models import find_model

        info = find_model(session, name)
    if as_json:
        print_json({"job_id": job_id, **info.to_dict()})
    else:
        losses = info.metrics.get("validation_losses") or info.metrics.get("losses", {})
        console.print(f"model {info.id} {info.name!r} ({recipe_text(info.params)}): "
                      f"{info.metrics['steps']} steps in {info.metrics['wall_seconds']:.0f} s, "
                      f"validation loss {losses.get('total', float('nan')):.4g}; preview {output_uri}")


def train_model(
    name: str, styles: list[str], data: str, preview: str, options: dict[str, Any], *, style_weights: list[float] | None = None
) -> tuple[int, str]:
    """Create (or reopen, after a failure) the itn-train job and run the train_style_model flow on it here.

    Returns (job id, preview URI); a failed training exits 2 with the job's recorded reason.
    """
    from atelier.commands.gallery import quiet_embedded_prefect, run_flow_for_report

    quiet_embedded_prefect()
    with user_errors():
        from atelier.services.model_training import request_training, training_source
        from style_engine.device import resolve_device
        from tasks.itn_data import check_training_data

        check_training_data(workshop_from_settings(device="cpu"), training_source(data))  # a bad source is no job
        device_type = resolve_device(get_settings().device).type
        with opened_catalog() as catalog:
            job_id = request_training(catalog, name, styles, data, preview, options, device_type=device_type,
                                      style_weights=style_weights)
        from flows.train_style_model import train_style_model

        with _training_bar():
            report = run_flow_for_report(train_style_model, job_ids=[job_id])
    line = next((line for line in report.lines if line.job_id == job_id), None)
    if line is None or line.status != "succeeded":
        reason = line.error if line is not None else f"job {job_id} was not run (it is held by another worker)"
        raise fail(f"training job {job_id} failed: {reason}")
    return job_id, line.output_uri or ""


@contextmanager
def _training_bar() -> Iterator[None]:
    """A progress bar fed by the training task running in this process."""
    from tasks.itn import progress_listeners

    columns = (TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[loss]}"))
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("train", total=None, loss="")

        def on_step(step: int, total: int, losses: dict[str, float]) -> None:
            bar.update(task, completed=step, total=total, loss=f"loss {losses.get('total', 0):.4g}")

        progress_listeners.append(on_step)
        try:
            yield
        finally:
            progress_listeners.remove(on_step)


@models_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A pytorch/examples TransformerNet: a state dict (.pth) or an ONNX export (.onnx).")],
    name: Annotated[str, typer.Option(help="The model's name (unique).")],
    style: Annotated[str, typer.Option(help="The style image in the catalog it was trained on: id, sha256, title or file name.")],
    origin: Annotated[str, typer.Option(help="Where the file comes from (a URL, a paper, a person), kept in the catalog.")] = "",
    pixel_range: Annotated[int, typer.Option(help="White's pixel value in the file's input and output: 255 (pytorch/examples, "
                                                  "the ONNX zoo) or 1.")] = 255,
    as_json: JsonOpt = False,
) -> None:
    """Import a fast style network trained elsewhere: validated (layout, shapes, a test image), stored, recorded."""
    if pixel_range not in (1, 255):
        raise fail(f"--pixel-range {pixel_range}: use 255 or 1")
    with user_errors():
        from tasks.itn_import import import_model

        import_model(workshop_from_settings(device="cpu"), file, name=name, style=style, origin=origin,
                                pixel_scale=float(pixel_range))
        with read_session() as session:
            from db.trained_models import find_model

            info = find_model(session, name)
    if as_json:
        print_json(info.to_dict())
    else:
        source = info.metrics["import"]
        console.print(f"model {info.id} {info.name!r}: {info.params['arch']} network from {source['file']} "
                      f"({source['format']}, sha256 {source['sha256'][:12]}), pixels {info.params['input_range']}", highlight=False)


def recipe_text(params: dict[str, Any]) -> str:
    """Where a model's parameters come from: `cpu recipe`, `gpu recipe, steps changed`, `imported`..."""
    from style_engine.itn.recipes import TRAINING_RECIPES

    if params.get("source") == "imported":
        return "imported"
    name = params.get("recipe")
    if not name:
        return "no recipe"
    changed = sorted(k for k, v in TRAINING_RECIPES.get(name, {}).items() if params.get(k) != v)
    return f"{name} recipe" + (f", {', '.join(changed)} changed" if changed else "")


MODEL_COLUMNS = {
    "id": "id",
    "name": "name",
    "recipe": lambda r: recipe_text(r["params"]),
    "arch": lambda r: r["params"].get("arch"),
    "steps": lambda r: r["metrics"].get("steps"),
    "styles": lambda r: ", ".join(str(s["id"]) for s in r["metrics"].get("styles", [])),
    "data": lambda r: r["metrics"].get("dataset", {}).get("source"),
    "val. loss": lambda r: (r["metrics"].get("validation_losses") or {}).get("total"),
    "created": "created_at",
}


@models_app.command("ls")
def ls(as_json: JsonOpt = False) -> None:
    """List trained models, newest first."""
    with user_errors():
        from db.trained_models import list_models

        with read_session() as session:
            rows = [model.to_dict() for model in list_models(session)]
    print_rows(rows, MODEL_COLUMNS, as_json=as_json, empty="no trained models")


@models_app.command("show")
def show(model: Annotated[str, typer.Argument(help="Model name or id.")], as_json: JsonOpt = False) -> None:
    """Show a model: its parameters, dataset, losses, versions and stored weights."""
    with user_errors():
        from db.trained_models import find_model

        with read_session() as session:
            record = find_model(session, model).to_dict()
    if not as_json:
        record = {"name": record["name"], "recipe": recipe_text(record["params"]), **record}
    print_record(record, as_json=as_json)


@models_app.command("export")
def export(
    model: Annotated[str, typer.Argument(help="Model name or id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (.onnx or .pt).")],
    fmt: Annotated[str, typer.Option("--format", help="onnx or torchscript.")] = "onnx",
) -> None:
    """Export a model to ONNX or TorchScript (input RGB in [0,1], any size; output in (0,1), same size)."""
    if fmt not in EXPORT_FORMATS:
        raise fail(f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    with user_errors():
        from atelier.services.outputs import refuse_input_as_output
        from storage.files import atomic_path
        from style_engine.itn.export import export_onnx, export_torchscript
        from tasks.itn import load_model

        workshop = workshop_from_settings(device="cpu")
        info, net = load_model(workshop, model)
        refuse_input_as_output(output, _model_files(workshop, info), what=f"model {info.name!r}'s stored weights")
        with atomic_path(output) as temp:
            (export_onnx if fmt == "onnx" else export_torchscript)(net, temp)
    console.print(f"{output}: model {info.id} {info.name!r} as {fmt}")


def _model_files(workshop: Workshop, info: Any) -> list[Path]:
    """The local files that hold a model's weights: the local store's object and the input cache's copy."""
    files = [workshop.inputs.fetch_path(info.uri, info.sha256)]
    path_for_uri = getattr(workshop.store, "path_for_uri", None)  # a local store only
    return files + ([path_for_uri(info.uri)] if path_for_uri else [])


def stylize_with_model(
    source: Path, model: str | None, output: Path, *, size: int | None, preserve_color: str | None, device: str | None
) -> None:
    """`atelier stylize --method itn`: one photo to a PNG, or a folder of photos to a folder of PNGs."""
    if not model:
        raise fail("--method itn needs --model NAME_OR_ID (see `atelier models ls`)")
    if preserve_color not in (None, "luminance"):
        raise fail(f"--preserve-color {preserve_color!r}: the itn method supports only luminance")
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not inputs:
            raise fail(f"{source}: no images in this folder")
        targets = [output / f"{p.stem}.png" for p in inputs]
    else:
        if output.suffix.lower() != ".png":
            raise fail(f"{output}: the output must be a .png file")
        inputs, targets = [source], [output]
    settings = get_settings()
    with user_errors():
        from atelier.services.outputs import refuse_input_as_output
        from storage.files import atomic_path
        from style_engine.images import load_image, save_png
        from style_engine.itn.network import stylize_images
        from style_engine.itn.params import ITNParams

        for target in targets:
            refuse_input_as_output(target, inputs)
        params = ITNParams(model=model, size=512 if size is None else size, preserve_color=preserve_color)
        workshop = workshop_from_settings(device=device or settings.device)
        from tasks.itn import fast_inference, load_model
        from tasks.provenance import png_provenance

        info, net = load_model(workshop, params.model)
        engine = fast_inference(workshop, info.sha256, net)
        images = (load_image(path, max_pixels=settings.max_image_pixels) for path in inputs)
        with _image_bar(len(inputs)) as advance:
            outputs = stylize_images(
                engine, images, size=params.size or None, preserve_color=params.preserve_color == "luminance",
                device=workshop.device, on_image=advance,
            )
            for path, target, out in zip(inputs, targets, outputs):
                provenance = png_provenance("itn", params.to_dict(), content=path.name, styles=[],
                                            model=info.name, model_sha256=info.sha256)
                with atomic_path(target) as temp:
                    save_png(out.image, temp, provenance)
                typer.echo(f"{target} {out.image.width}x{out.image.height} {out.seconds:.2f}s")


@contextmanager
def _image_bar(total: int) -> Iterator[Callable[[int], None]]:
    columns = (TextColumn("stylizing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("stylize", total=total)
        yield lambda n: bar.advance(task, n)


def workshop_from_settings(device: str) -> Workshop:
    """The services a model is read from (catalog, store, input cache), per the settings."""
    from dataclasses import replace

    from tasks.workshop import WorkshopConfig, workshop_for

    return workshop_for(replace(WorkshopConfig.from_settings(get_settings()), device=device))

