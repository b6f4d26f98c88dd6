"""Taking work from the catalog a unit at a time, so that every host keeps drawing on one queue.

A run that claimed all its jobs before starting the first left the other hosts nothing
(two gallery runs started together on 12 jobs: one host ran all 12). A run now claims what
it can start at once: one job per free GPU slot, topped up to one batch when that job's
optimization can be shared (tasks.batch_job), and claims again each time a unit finishes,
until the queue is empty or its `limit` is reached.

Jobs of a topped-up claim that cannot join the batch wait for a slot: their leases are
renewed here while they wait, or another host would take them up as abandoned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from db.claims import renew_waiting_leases
from db.jobs import job_spec
from db.session import retry_unavailable
from tasks.batch_job import batch_capacity_of, plan_batches
from tasks.workshop import Workshop

# Claim up to `n` jobs, restricted to these methods when given (None: the run's own filter).
Claim = Callable[[int, Sequence[str] | None], list[int]]


@dataclass
class Claimer:
    """The run's claims: what it has taken so far, and whether the queue ran dry."""

    workshop: Workshop
    claim: Claim
    limit: int
    claimed: list[int] = field(default_factory=list)
    waiting: list[list[int]] = field(default_factory=list)  # claimed units not submitted yet
    exhausted: bool = False
    _renewed_at: float = field(default_factory=time.monotonic)

    def next_unit(self) -> list[int] | None:
        """The next unit to start: a waiting one, else a fresh claim; None when there is no more work."""
        if not self.waiting:
            self.waiting = self._claim_units()
        return self.waiting.pop(0) if self.waiting else None

    def put_back(self, unit: list[int]) -> None:
        """A unit to run next (a job a batch handed back to be retried alone)."""
        self.waiting.insert(0, unit)

    def keep_waiting_leases(self) -> None:
        """Renew the leases of claimed jobs not started yet (a third of the lease after the last
        renewal), dropping any whose lease was lost meanwhile."""
        lease = self.workshop.config.lease_seconds
        if not self.waiting or time.monotonic() - self._renewed_at < lease / 3:
            return
        ids = [job_id for unit in self.waiting for job_id in unit]
        held = set(retry_unavailable(
            lambda: renew_waiting_leases(self.workshop.catalog, ids, self.workshop.worker, lease),
            "renewing the leases of waiting jobs"))
        self.waiting = [kept for unit in self.waiting if (kept := [job_id for job_id in unit if job_id in held])]
        self._renewed_at = time.monotonic()

    def _claim_units(self) -> list[list[int]]:
        room = self.limit - len(self.claimed)
        if self.exhausted or room < 1:
            return []
        first = self._take(1, None)
        if not first:
            self.exhausted = True
            return []
        with self.workshop.catalog.reader() as session:
            spec = job_spec(session, first[0])
        capacity = min(batch_capacity_of(spec, self.workshop.device), room)
        more = self._take(capacity - 1, [spec.method]) if capacity > 1 else []
        self._renewed_at = time.monotonic()
        return retry_unavailable(lambda: plan_batches(self.workshop, first + more), "planning the batches")

    def _take(self, n: int, methods: Sequence[str] | None) -> list[int]:
        ids = retry_unavailable(lambda: self.claim(n, methods), "claiming jobs")
        self.claimed += ids
        return ids


def narrowed(methods: Sequence[str] | None, only: Sequence[str] | None) -> list[str] | None:
    """A run's method filter narrowed to `only` (a batch top-up's method); None: any method."""
    if only is None:
        return list(methods) if methods else None
    return [method for method in only if not methods or method in methods]
