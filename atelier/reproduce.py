"""Making a catalog artwork again on this machine, and saying how close it came.

The recorded job is re-run through the same task-layer steps a worker uses
(`tasks.job.load_inputs`, `render` and `upload_outputs`), from the inputs fetched by their
sha256, the run's recorded parameters and seed. Nothing is written to the catalog: the new
PNG goes to a scratch store, so its bytes are exactly those a worker would have stored and
can be compared with the artwork's sha256.

On the CPU, with the recorded versions and VGG weights, PyTorch is deterministic and the
bytes must be identical. On a GPU (or with other versions) bit-exactness is not promised, so
the useful answer is how far the losses, metrics and pixels moved. Differences in versions or
weights are found before the engine runs, so they are named before the minutes it takes.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from db.errors import NotFound
from db.jobs import JobSpec, job_spec
from db.queries import show_artwork, show_run
from tasks.workshop import Workshop, WorkshopConfig, workshop_for

# A reproduction claims nothing, so it has no lease to renew: with a lease this long,
# `tasks.job.lease_keeper` never calls the catalog.
NO_LEASE_SECONDS = 10**9


class CannotReproduce(ValueError):
    """The artwork cannot be re-run: unknown id, a missing or damaged stored input, an unsupported method."""


@dataclass(frozen=True)
class Difference:
    """One recorded value beside the value here (a version, a weights digest, a metric)."""

    name: str
    recorded: Any
    here: Any

    @property
    def relative(self) -> float | None:
        """|here - recorded| / |recorded| for numbers, else None."""
        if not (isinstance(self.recorded, int | float) and isinstance(self.here, int | float)):
            return None
        if self.recorded == 0:
            return 0.0 if self.here == 0 else math.inf
        return abs(self.here - self.recorded) / abs(self.recorded)


@dataclass(frozen=True)
class Plan:
    """What will be re-run, and what differs from the recorded run before it starts."""

    artwork_id: int
    spec: JobSpec
    run_id: int
    recorded_sha256: str
    recorded_uri: str
    recorded_device: str
    device: str
    recorded_metrics: dict[str, Any]
    mismatches: tuple[Difference, ...]

    @property
    def expects_identical_bytes(self) -> bool:
        """Byte-exact is the promise on the CPU with the recorded code and weights only."""
        return self.recorded_device.startswith("cpu") and self.device.startswith("cpu") and not self.mismatches


@dataclass(frozen=True)
class Reproduction:
    """The outcome: the new output's sha256 beside the recorded one, and how the numbers moved."""

    plan: Plan
    sha256: str
    seconds: float
    metric_differences: tuple[Difference, ...]
    max_pixel_difference: int
    mean_pixel_difference: float
    output: Path | None

    @property
    def identical(self) -> bool:
        return self.sha256 == self.plan.recorded_sha256


def unsupported_reason(method: str) -> str | None:
    """Why `reproduce` will not re-run `method`, or None when it can.

    A training run records a Model and checkpoints in the catalog as it goes, a video run frame
    checkpoints: re-running either would not be the read-only act a reproduction must be.
    """
    from style_engine.itn.params import ITNTrainParams
    from tasks.job import is_video_method

    if method == ITNTrainParams.method or is_video_method(method):
        return (f"method {method} writes checkpoints to the catalog as it runs; reproduce re-runs gatys, noop "
                "and itn (stylizing with a stored model)")
    return None


def open_reproduction_workshop(config: WorkshopConfig) -> Workshop:
    """The process's Workshop for `config`, with no lease to keep (see NO_LEASE_SECONDS)."""
    return workshop_for(replace(config, lease_seconds=NO_LEASE_SECONDS))


def plan_reproduction(workshop: Workshop, artwork_id: int) -> Plan:
    """Read the artwork's run and job, and compare its versions and weights with this machine's."""
    from style_engine.params import recorded_params
    from tasks.job import weights_provenance
    from tasks.provenance import device_name, library_versions

    try:
        with workshop.catalog.reader() as session:
            art = show_artwork(session, artwork_id)
            run = show_run(session, art["run_id"])
            spec = job_spec(session, art["job_id"])
    except NotFound as exc:
        raise CannotReproduce(f"artwork {artwork_id}: {exc}") from None
    why_not = unsupported_reason(spec.method)
    if why_not:
        raise CannotReproduce(f"artwork {artwork_id}: {why_not}")
    # The run's recorded parameters, not the job's: they are what made these pixels.
    spec = replace(spec, params=recorded_params(spec.method, run["params"]))
    here = {**library_versions(), **weights_provenance(spec.method, workshop)}
    recorded = run["versions"] or {}
    mismatches = tuple(Difference(name, recorded.get(name), here.get(name)) for name in sorted(set(recorded) | set(here))
                       if recorded.get(name) != here.get(name))
    return Plan(artwork_id, spec, run["id"], art["sha256"], art["uri"], run["device"] or "", device_name(workshop.device),
                dict(run["metrics"] or {}), mismatches)


def _refuse_stored_files(workshop: Workshop, plan: Plan, output: Path) -> None:
    """`-o` must not name a file of a local store: the recorded output or one of the job's inputs."""
    from atelier.services.outputs import refuse_input_as_output

    path_for_uri = getattr(workshop.store, "path_for_uri", None)  # a local store only
    if path_for_uri is not None:
        uris = [plan.recorded_uri, plan.spec.content.uri, *(ref.uri for ref in plan.spec.styles)]
        refuse_input_as_output(output, [path_for_uri(uri) for uri in uris], what="a stored file of the catalog")


def reproduce(workshop: Workshop, plan: Plan, logger: logging.Logger, output: Path | None = None) -> Reproduction:
    """Re-run the plan's job through the task layer; write the new PNG to `output` when given."""
    from PIL import Image

    from storage.errors import ChecksumMismatch, ObjectNotFound
    from storage.files import atomic_path
    from storage.local import LocalStore
    from tasks.job import load_inputs, render, upload_outputs
    from tasks.loss_curve import LossCurve

    spec = plan.spec
    if output is not None:
        _refuse_stored_files(workshop, plan, output)
    try:
        content, styles = load_inputs(workshop, spec)
    except (ObjectNotFound, ChecksumMismatch) as exc:
        raise CannotReproduce(f"artwork {plan.artwork_id}: a recorded input cannot be fetched: {exc}") from None
    try:  # fetched before the compute: the comparison needs it, so its absence is said at once
        recorded_image = workshop.store.get_bytes(plan.recorded_uri, sha256=plan.recorded_sha256)
    except (ObjectNotFound, ChecksumMismatch) as exc:
        raise CannotReproduce(f"artwork {plan.artwork_id}: the recorded output cannot be fetched: {exc}") from None
    started = time.perf_counter()
    result = render(workshop, spec, content, styles, logger, LossCurve(), tiles=_recorded_render_plan(plan))
    seconds = time.perf_counter() - started
    metrics = {**result.metrics, "losses": result.losses, "iterations": result.iterations}
    with tempfile.TemporaryDirectory(prefix="atelier-reproduce-") as scratch:
        # A view of the workshop whose store is the scratch folder: upload_outputs then writes
        # the very bytes a worker stores, and the catalog's store is left untouched.
        view = _with_store(workshop, LocalStore(scratch))
        new_output = upload_outputs(view, spec, result.image)[0]
        if output is not None:
            with atomic_path(output) as temp:
                shutil.copyfile(view.store.path_for_uri(new_output.uri), temp)
    largest, mean = _pixel_difference(Image.open(io.BytesIO(recorded_image)), result.image)
    return Reproduction(plan, new_output.sha256, seconds, tuple(metric_differences(plan.recorded_metrics, metrics)),
                        largest, mean, output)


def _recorded_render_plan(plan: Plan) -> Any:
    """How the recorded run cut its levels (whole where it recorded no tile plan), for a Gatys
    render: planned from this machine's free memory, the tiles could differ, and so the bytes."""
    from style_engine.gatys.memory import RenderPlan
    from style_engine.params import GatysParams, parse_params

    params = parse_params(plan.spec.method, plan.spec.params)
    if not isinstance(params, GatysParams):
        return None
    record = plan.recorded_metrics.get("tile_plan")
    return RenderPlan.from_record(record, params) if record else RenderPlan.whole(params)


def metric_differences(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> Iterator[Difference]:
    """Every number of the recorded metrics (nested ones as `losses.total`) that changed, timings
    (`seconds_per_image`, ...) aside: they describe the machine's load, not the result."""
    flat_here = dict(_numbers(here))
    for name, value in _numbers(recorded):
        if "seconds" not in name and name in flat_here and flat_here[name] != value:
            yield Difference(name, value, flat_here[name])


def _numbers(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in values.items():
        if isinstance(value, Mapping):
            yield from _numbers(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield f"{prefix}{key}", value


def _pixel_difference(recorded: Any, here: Any) -> tuple[int, float]:
    """(largest, mean) absolute difference of the 8-bit RGB values; 255 when the sizes differ."""
    import numpy as np

    a = np.asarray(recorded.convert("RGB"), dtype=np.int16)
    b = np.asarray(here.convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return 255, 255.0
    diff = np.abs(a - b)
    return int(diff.max()), float(diff.mean())


def _with_store(workshop: Workshop, store: Any) -> Workshop:
    view = copy.copy(workshop)
    view.store = store
    return view
