"""The dashboard's progress of a film shared by the fleet: frames done across every host.

A flow run's own progress artifact counts the jobs it claimed; a film's segments are spread
over many hosts' runs, so each run that renders a segment also shows the whole film's progress,
read from the catalog (the frames every host has stored), not from its own share.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from db.segments import film_progress, films_of, segment_states
from db.session import retry_unavailable
from tasks.workshop import Workshop

READ_EVERY_SECONDS = 5.0  # a catalog read per film; the dashboard needs no more


class FilmProgress:
    """One progress artifact per film whose segments this flow run renders."""

    def __init__(self, workshop: Workshop) -> None:
        self.workshop = workshop
        self.artifacts: dict[int, UUID] = {}
        self.shown: dict[int, float] = {}
        self.read_at = 0.0

    def started(self, job_ids: Iterable[int]) -> None:
        """Jobs this run has just started: the films of those that are segments get an artifact."""
        films = retry_unavailable(lambda: films_of(self.workshop.catalog, list(job_ids)), "reading the films of jobs")
        for film_id in set(films.values()) - set(self.artifacts):
            self.artifacts[film_id] = create_progress_artifact(
                self.percent(film_id), description=f"film job {film_id}: frames stored by every host")

    def update(self, *, now: bool = False) -> None:
        """Re-read each film's frames done (at most every few seconds, unless `now`) and update its
        artifact where it moved."""
        if not now and time.monotonic() - self.read_at < READ_EVERY_SECONDS:
            return
        self.read_at = time.monotonic()
        for film_id, artifact in self.artifacts.items():
            percent = self.percent(film_id)
            if percent != self.shown.get(film_id):
                update_progress_artifact(artifact, percent)
                self.shown[film_id] = percent

    def percent(self, film_id: int) -> float:
        states = retry_unavailable(lambda: segment_states(self.workshop.catalog, film_id), f"reading film {film_id}")
        done, total = film_progress(states)
        return 100.0 * done / total if total else 0.0
