"""A Run's peak memory is its own (issue 19: a print's Run records the memory it took): counted
from the run's start, so a worker's second job does not inherit the peak of a larger one before it.
On this Linux CPU the figure is the process's peak resident set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.prefect import run_pending_job, tiny_gatys_job

pytestmark = [pytest.mark.integration]

GIB = 1024**3


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="the CPU peak needs Linux's /proc")
def test_a_cpu_run_records_its_own_peak_not_the_processs_earlier_one(atelier, tmp_path: Path) -> None:
    from db.models import Run
    from tasks.job import peak_memory
    from tests.fixtures.prefect import catalog_rows

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    tiny_gatys_job(app, tmp_path, "iterations=2")
    ballast = np.ones(GIB // 8, dtype=np.float64)  # 1 GiB resident, then freed: an earlier, larger job
    del ballast
    before = peak_memory("cpu")
    assert before is not None and before > GIB

    run_pending_job(app)

    (run,) = catalog_rows(app, Run)
    assert run.peak_memory_bytes is not None
    assert 100 * 1024**2 < run.peak_memory_bytes < before - GIB // 2  # torch and VGG in, the ballast's GiB out
