"""The deployments `atelier serve` runs; deployments/prefect.yaml declares the same two.

Keeping names, entrypoints and defaults here means `serve` and `prefect deploy --all`
offer users the same runs (a test checks the YAML against this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect.schedules import Cron

from flows.gallery import gallery
from flows.rerun_failed import rerun_failed
from flows.video import stylize_video

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

NIGHTLY_GALLERY = "nightly-gallery"
RERUN_FAILED = "rerun-failed"
STYLIZE_VIDEO = "stylize-video"


def served_deployments(cron: str, timezone: str) -> list[RunnerDeployment]:
    """The nightly gallery on `cron` in `timezone`, and rerun-failed and stylize-video (run on demand)."""
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
        stylize_video.to_deployment(
            name=STYLIZE_VIDEO,
            description="Stylize pending video jobs, one task per video, resuming from per-frame checkpoints.",
            tags=["atelier"],
        ),
    ]
