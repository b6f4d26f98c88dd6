"""The deployments `atelier serve` runs; deployments/prefect.yaml declares the same ones for
a work pool.

Keeping entrypoints and defaults here means `serve` and `prefect deploy --all` offer users
the same runs (a test checks the YAML against this module). Their names differ on purpose
(`SERVED_SUFFIX`): a deployment is identified by flow and name, so `serve` registering
`nightly-gallery` would overwrite the work-pool deployment of that name with one that has
no work pool and no working-directory step, and the worker would then crash its runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.schedules import Cron

from flows.gallery import gallery
from flows.rerun_failed import rerun_failed
from flows.train_style_model import train_style_model
from flows.video import stylize_video

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

NIGHTLY_GALLERY = "nightly-gallery"
RERUN_FAILED = "rerun-failed"
STYLIZE_VIDEO = "stylize-video"
TRAIN_STYLE_MODEL = "train-style-model"
SERVED_SUFFIX = "-served"


def served_deployments(cron: str, timezone: str) -> list[RunnerDeployment]:
    """The nightly gallery on `cron` in `timezone`; rerun-failed, stylize-video and
    train-style-model on demand."""
    return [
        gallery.to_deployment(
            name=NIGHTLY_GALLERY + SERVED_SUFFIX,
            schedules=[Cron(cron, timezone=timezone)],
            description="Stylize the catalog's pending jobs and lay out a contact sheet.",
            tags=["atelier"],
        ),
        rerun_failed.to_deployment(
            name=RERUN_FAILED + SERVED_SUFFIX,
            description="Reset failed jobs (by id, date, method or error text) and run them again.",
            tags=["atelier"],
        ),
        stylize_video.to_deployment(
            name=STYLIZE_VIDEO + SERVED_SUFFIX,
            description="Stylize pending video jobs, one task per video, resuming from per-frame checkpoints.",
            tags=["atelier"],
        ),
        train_style_model.to_deployment(
            name=TRAIN_STYLE_MODEL + SERVED_SUFFIX,
            description="Train the fast style networks of pending itn-train jobs and store them as models.",
            tags=["atelier"],
        ),
    ]
