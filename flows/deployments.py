"""The deployments `atelier serve` runs; deployments/prefect.yaml declares the same ones.

Keeping names, entrypoints and defaults here means `serve` and `prefect deploy --all`
offer users the same runs (a test checks the YAML against this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.schedules import Cron

from flows.gallery import gallery
from flows.rerun_failed import rerun_failed
from flows.train_style_model import train_style_model

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

NIGHTLY_GALLERY = "nightly-gallery"
RERUN_FAILED = "rerun-failed"
TRAIN_STYLE_MODEL = "train-style-model"


def served_deployments(cron: str, timezone: str) -> list[RunnerDeployment]:
    """The nightly gallery on `cron` in `timezone`; rerun-failed and train-style-model on demand."""
    return [
        gallery.to_deployment(
            name=NIGHTLY_GALLERY,
            schedules=[Cron(cron, timezone=timezone)],
            description="Stylize the catalog's pending jobs and lay out a contact sheet.",
            tags=["atelier"],
        ),
        rerun_failed.to_deployment(
            name=RERUN_FAILED,
            description="Reset failed jobs (by id, date, method or error text) and run them again.",
            tags=["atelier"],
        ),
        train_style_model.to_deployment(
            name=TRAIN_STYLE_MODEL,
            description="Train the fast style networks of pending itn-train jobs and store them as models.",
            tags=["atelier"],
        ),
    ]
