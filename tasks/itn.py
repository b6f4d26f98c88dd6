"""Fast style networks in the job pipeline: ``itn-train`` trains and stores a model, ``itn`` uses one.

Both run inside :func:`tasks.job.perform_job` like any method (claimed, leased, recorded, retried):
only the compute step differs. A training job's content image is its preview photo: the job's
output is that photo stylized by the freshly trained network, so a training shows up in the
gallery and contact sheet like any artwork. Its photos come from ``params.data``.

Checkpoints go to the store every ``checkpoint_every`` steps (content-addressed, an Artifact row
on the run); a rerun of the job resumes from the newest one. A stylizing job (``itn``) names a
model; it loads that model's stored weights, checked against their sha256, and never trains.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from db.jobs import JobSpec
from db.models import ArtifactKind
from db.runs import ArtifactRecord
from style_engine.errors import InvalidInputError
from style_engine.gatys.render import StyleResult
from tasks.itn_data import load_training_photos, split_validation
from tasks.job import artifact_record
from tasks.provenance import library_versions

if TYPE_CHECKING:
    from PIL import Image

    from style_engine.itn.network import Network, TransformerNet
    from tasks.workshop import Workshop

StepCallback = Callable[[int, int, dict[str, float]], None]
TRAINING_METHOD = "itn-train"
STYLIZE_METHOD = "itn"
METHODS = (TRAINING_METHOD, STYLIZE_METHOD)
# By (store, weights sha256): a batch loads a model once, and a model is verified once per store.
_networks: OrderedDict[tuple[str, str], TransformerNet] = OrderedDict()
_runners: OrderedDict[tuple[str, str], Network] = OrderedDict()
_networks_lock = threading.Lock()
MAX_NETWORKS = 8
# In-process observers of training steps (the CLI's progress bar); Prefect logs get them anyway.
progress_listeners: list[Callable[[int, int, dict[str, float]], None]] = []


def render_itn(
    workshop: Workshop, spec: JobSpec, content: Image.Image, styles: list[Image.Image], on_step: StepCallback
) -> StyleResult:
    """The compute step of an ``itn`` or ``itn-train`` job."""
    if spec.method == TRAINING_METHOD:
        return train_model(workshop, spec, content, styles, on_step)
    return stylize_with_model(workshop, spec, content)


def stylize_with_model(workshop: Workshop, spec: JobSpec, content: Image.Image) -> StyleResult:
    from style_engine.itn.network import stylize_one
    from style_engine.itn.params import ITNParams

    params = ITNParams.from_dict(spec.params)
    started = time.perf_counter()
    info, net = load_model(workshop, params.model)
    out = stylize_one(
        fast_inference(workshop, info.sha256, net),
        content,
        size=params.size or None,
        preserve_color=params.preserve_color == "luminance",
        device=workshop.device,
    )
    engine = "onnxruntime" if workshop.device == "cpu" else "torch"
    return _result(out.image, {}, time.perf_counter() - started, workshop, engine, {
        "model_id": info.id, "model_sha256": info.sha256, "seconds_per_image": out.seconds,
    })


def load_model(workshop: Workshop, reference: str) -> tuple[Any, TransformerNet]:
    """The catalog's model ``reference`` (name or id) and its network, verified and cached by sha256."""
    from db.errors import NotFound
    from db.trained_models import find_model
    from style_engine.itn.network import network_from_state

    try:
        with workshop.catalog.reader() as session:
            info = find_model(session, reference)
    except NotFound as exc:
        raise InvalidInputError(str(exc)) from None
    key = (workshop.config.store_url, info.sha256)
    with _networks_lock:
        if key in _networks:
            _networks.move_to_end(key)
            return info, _networks[key]
    state = _fetch_state(workshop, info.uri, info.sha256, f"model {info.name!r}")
    if not isinstance(state.get("model"), dict) or "arch" not in state:
        raise InvalidInputError(f"model {info.name!r}: {info.uri} is not a fast-style-network model file")
    try:
        net = network_from_state(
            state["arch"], state["model"], output=state.get("output", "sigmoid"), pixel_scale=float(state.get("pixel_scale", 1.0))
        ).to(workshop.device)
    except InvalidInputError as exc:
        raise InvalidInputError(f"model {info.name!r}: {exc}") from None
    with _networks_lock:
        _networks[key] = net
        while len(_networks) > MAX_NETWORKS:
            _networks.popitem(last=False)
    return info, net


def fast_inference(workshop: Workshop, sha256: str, net: TransformerNet) -> Network:
    """What runs a model fastest on the workshop's device: ONNX Runtime on the CPU (2-2.5x eager
    PyTorch there, bench/itn.py), the network itself elsewhere. Exported once per model and store."""
    if workshop.device != "cpu":
        return net
    from style_engine.itn.export import OnnxRunner, onnx_bytes

    key = (workshop.config.store_url, sha256)
    with _networks_lock:
        runner = _runners.get(key)
    if runner is None:
        runner = OnnxRunner(onnx_bytes(net))
        with _networks_lock:
            _runners[key] = runner
            while len(_runners) > MAX_NETWORKS:
                _runners.popitem(last=False)
    return runner


def _fetch_state(workshop: Workshop, uri: str, sha256: str, what: str) -> dict[str, Any]:
    """A stored torch file, verified against the catalog's sha256; any defect is the input's fault."""
    from storage.errors import ChecksumMismatch, ObjectNotFound

    try:
        data = workshop.inputs.fetch(uri, sha256)
    except ChecksumMismatch as exc:
        raise InvalidInputError(f"{what}: the stored file's sha256 does not match the catalog ({exc})") from None
    except ObjectNotFound as exc:
        raise InvalidInputError(f"{what}: the stored file is missing ({exc})") from None
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise InvalidInputError(f"{what}: unreadable ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(state, dict):
        raise InvalidInputError(f"{what}: unreadable (not a dict)")
    return state


def train_model(
    workshop: Workshop, spec: JobSpec, preview: Image.Image, styles: list[Image.Image], on_step: StepCallback
) -> StyleResult:
    """Train (or resume training) the job's network, store it with its Model row, render the preview."""
    from db.errors import InvalidRequest
    from db.trained_models import current_run_id, latest_checkpoint, record_model
    from style_engine.itn.network import stylize_one
    from style_engine.itn.params import ITNTrainParams
    from style_engine.itn.train import (
        CropSampler,
        dataset_sha256,
        model_state,
        perceptual_network,
        prepare_photo,
        style_targets,
        train,
        validation_batch,
    )

    params = ITNTrainParams.from_dict(spec.params)
    if not params.name:
        raise InvalidInputError("itn-train job: parameter name (the model's name) is required")
    run_id = current_run_id(workshop.catalog, spec.id, workshop.worker)
    photos = [prepare_photo(image, params.crop) for image in load_training_photos(workshop, params.data, params.seed)]
    training, validation = split_validation(photos)
    device = torch.device(workshop.device)
    vgg = perceptual_network(params, workshop.config.weights, device)
    targets = style_targets(vgg, styles, list(spec.style_weights), params)
    resume = None
    found = latest_checkpoint(workshop.catalog, spec.id)
    if found is not None:
        resume = _fetch_state(workshop, *found, f"training checkpoint of job {spec.id}")

    def step_done(step: int, total: int, losses: dict[str, float]) -> None:
        on_step(step, total, losses)
        for listener in list(progress_listeners):
            listener(step, total, losses)

    def store_checkpoint(checkpoint: dict[str, Any]) -> None:
        from db.trained_models import add_checkpoint

        add_checkpoint(workshop.catalog, run_id, spec.id, put_state(workshop, checkpoint, ArtifactKind.CHECKPOINT))

    logger = _run_logger()
    result = train(
        CropSampler(training, params.crop, params.batch_size, params.seed),
        params,
        vgg,
        targets,
        validation=validation_batch(validation, params.crop) if validation else None,
        resume=resume,
        on_step=step_done,
        on_validation=lambda step, losses: logger.info("job %d: validation losses at step %d: %s", spec.id, step, _losses_text(losses)),
        on_checkpoint=store_checkpoint,
    )
    weights = put_state(workshop, model_state(result, params), ArtifactKind.MODEL)
    metrics = {
        "styles": [{"id": ref.id, "sha256": ref.sha256, "weight": w} for ref, w in zip(spec.styles, spec.style_weights)],
        "dataset": {"source": params.data, "sha256": dataset_sha256(photos), "photos": len(training), "validation": len(validation)},
        "steps": result.steps,
        "resumed_from_step": int(resume["step"]) if resume else 0,
        "losses": result.losses,
        "validation_losses": result.validation_losses,
        "validation_history": result.history,
        "versions": library_versions(),
        "vgg_weights": vgg.weights_source,
        "vgg_weights_sha256": vgg.weights_sha256,
        "device": str(device),
        "precision": result.precision,
        "wall_seconds": round(result.seconds, 3),
    }
    try:
        model_id = record_model(
            workshop.catalog, name=params.name, method=STYLIZE_METHOD, style_id=spec.styles[0].id, run_id=run_id,
            job_id=spec.id, weights=weights, params=params.to_dict(), metrics=metrics,
        )
    except InvalidRequest as exc:
        raise InvalidInputError(str(exc)) from None
    out = stylize_one(result.network, preview, size=512, device=device)
    return _result(out.image, result.losses, result.seconds, workshop, result.precision, {
        "model_id": model_id, "steps": result.steps, "validation_loss": result.validation_losses.get("total"),
    }, iterations=result.steps, vgg=vgg)


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow or task run (the dashboard's run logs), else this module's."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _losses_text(losses: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in losses.items())


def put_state(workshop: Workshop, state: dict[str, Any], kind: ArtifactKind) -> ArtifactRecord:
    """Store a torch state (checkpoint or model) by its sha256; the record is what the catalog files."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    stored = workshop.store.put_bytes(buffer.getvalue(), suffix=".pt", content_type="application/octet-stream")
    return artifact_record(kind, stored)


def _result(
    image: Image.Image,
    losses: dict[str, float],
    seconds: float,
    workshop: Workshop,
    precision: str,
    metrics: dict[str, Any],
    *,
    iterations: int = 0,
    vgg: Any = None,
) -> StyleResult:
    return StyleResult(
        image=image,
        losses=losses,
        initial_losses={},
        iterations=iterations,
        seconds=seconds,
        cache_hit=False,
        metrics=metrics,
        device=workshop.device,
        weights_source=vgg.weights_source if vgg is not None else "none",
        weights_sha256=vgg.weights_sha256 if vgg is not None else "",
        precision=precision,
    )
