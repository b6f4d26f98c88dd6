"""Batched Gatys on tiny images: it matches the job alone, and one image's trouble stays its own.

Faults are injected through the engine's ``compiler`` seam (what wraps the batched objective):
a NaN in one image's loss, a simulated out-of-memory error above some batch size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from style_engine.gatys.batched import batchable, stylize_batch
from style_engine.gatys.compiled_objective import clear_objectives
from style_engine.errors import InvalidInputError, OptimizationError
from style_engine.gatys.render import stylize
from style_engine.gatys.memory import GIB, ensure_fits
from style_engine.params import GatysParams

pytestmark = pytest.mark.unit
PARAMS = GatysParams(size=40, iterations=10)


@pytest.fixture(autouse=True)
def fresh_objectives() -> None:
    clear_objectives()


@pytest.fixture(scope="module")
def contents() -> list[Image.Image]:
    pictures = (data.astronaut(), data.chelsea())
    return [Image.fromarray(p).resize((64, 64), Image.Resampling.LANCZOS) for p in pictures]


@pytest.fixture(scope="module")
def style() -> Image.Image:
    y, x = np.mgrid[0:64, 0:64] / 64.0
    rgb = np.stack([np.sin(12 * x + 4 * y), np.cos(9 * y - 3 * x), np.sin(20 * x * y)], axis=-1)
    return Image.fromarray(((rgb + 1) * 127.5).astype(np.uint8))


@pytest.fixture(scope="module")
def alone(contents: list[Image.Image], style: Image.Image) -> list[object]:
    """Each content through the batched engine on its own (a batch of one)."""
    return [stylize_batch([content], [style], PARAMS)[0].result for content in contents]


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255


def test_a_batch_matches_each_job_alone(contents: list[Image.Image], style: Image.Image, alone: list[object]) -> None:
    steps: list[list[int]] = [[], []]
    outcomes = stylize_batch(contents, [style], PARAMS, on_steps=[lambda i, n, _: steps[0].append(i),
                                                                      lambda i, n, _: steps[1].append(i)])
    for outcome, solo, content in zip(outcomes, alone, contents):
        assert outcome.error is None and outcome.result is not None
        assert_same_job(outcome.result, solo)
        # And as today's single-image engine (torch's L-BFGS) renders it.
        assert_same_job(outcome.result, stylize(content, [style], PARAMS))
        # 10 evaluations at 40 px lower the balanced objective (every layer starts at its weight) 1.3-1.6x
        assert outcome.result.losses["total"] < outcome.result.initial_losses["total"] * 0.8
    assert steps == [list(range(1, 11))] * 2


def assert_same_job(result: object, reference: object) -> None:
    """Same loss within 2% and the same look (mean pixel difference under 2%).

    Not bit for bit on a CPU: oneDNN and the batched matmul block their work by batch size, so
    last-bit differences appear, and L-BFGS amplifies them over the evaluations.
    """
    assert math.isclose(result.losses["total"], reference.losses["total"], rel_tol=0.02)
    assert np.abs(pixels(result.image) - pixels(reference.image)).mean() < 0.02


def nan_in_row(row: int):
    """A 'compiler' that poisons one image's loss (and so its gradient) with NaN."""
    def compiler(function):
        def poisoned(x, *targets):
            terms = function(x, *targets)
            mask = torch.ones(x.shape[0], 1)
            mask[row] = math.nan
            return terms * mask
        return poisoned
    return compiler


def test_a_nan_fails_that_image_only(contents: list[Image.Image], style: Image.Image, alone: list[object]) -> None:
    outcomes = stylize_batch(contents, [style], PARAMS, compile=True, compiler=nan_in_row(1))
    assert isinstance(outcomes[1].error, OptimizationError) and outcomes[1].result is None
    assert "not finite" in str(outcomes[1].error)
    assert outcomes[0].error is None
    assert_same_job(outcomes[0].result, alone[0])


def test_a_failing_progress_callback_stops_that_image_only(contents: list[Image.Image], style: Image.Image,
                                                           alone: list[object]) -> None:
    class LeaseLost(Exception):
        pass

    def lose_lease(step: int, total: int, losses: dict[str, float]) -> None:
        if step == 3:
            raise LeaseLost("job 2 is held by another worker")

    outcomes = stylize_batch(contents, [style], PARAMS, on_steps=[None, lose_lease])
    assert isinstance(outcomes[1].error, LeaseLost)
    assert_same_job(outcomes[0].result, alone[0])


def out_of_memory_above(limit: int, calls: list[int]):
    """A 'compiler' whose objective runs out of memory for batches larger than ``limit``."""
    def compiler(function):
        def limited(x, *targets):
            calls.append(x.shape[0])
            if x.shape[0] > limit:
                raise torch.OutOfMemoryError(f"simulated: {x.shape[0]} images do not fit")
            return function(x, *targets)
        return limited
    return compiler


def test_out_of_memory_splits_the_batch_and_every_job_completes(contents: list[Image.Image], style: Image.Image,
                                                                alone: list[object]) -> None:
    calls: list[int] = []
    outcomes = stylize_batch(contents, [style], PARAMS, compile=True, compiler=out_of_memory_above(1, calls))
    assert calls[0] == 2 and set(calls[1:]) == {1}  # 2 -> [1] + [1]
    for outcome, solo in zip(outcomes, alone):
        assert outcome.error is None
        assert outcome.result.losses == solo.losses  # each half ran as a batch of one, exactly as alone
        assert any("out of memory in a batch of" in warning for warning in outcome.warnings)


def test_out_of_memory_for_one_image_fails_it_alone(contents: list[Image.Image], style: Image.Image) -> None:
    outcomes = stylize_batch(contents, [style], PARAMS, compile=True, compiler=out_of_memory_above(0, []))
    assert all(isinstance(o.error, InvalidInputError) and "out of device memory" in str(o.error) for o in outcomes)


def test_a_size_that_cannot_fit_is_refused_before_any_work(contents: list[Image.Image], style: Image.Image) -> None:
    steps: list[int] = []
    params = GatysParams(size=8192, iterations=2, multiscale=False)  # about 230 GiB per image: more than any test machine has free
    outcomes = stylize_batch(contents[:1], [style], params, on_steps=[lambda i, n, _: steps.append(i)])
    message = str(outcomes[0].error)
    assert isinstance(outcomes[0].error, InvalidInputError)
    assert "size 8192 px (8192x8192)" in message and "GiB" in message
    assert steps == []


def test_the_memory_check_names_size_and_need() -> None:
    with pytest.raises(InvalidInputError, match=r"size 2048 px \(2048x1536\) needs about 14.5 GiB of cuda memory"):
        ensure_fits(2048, (1536, 2048), int(14.5 * GIB), 8 * GIB, torch.device("cuda"))
    ensure_fits(2048, (1536, 2048), int(14.5 * GIB), 16 * GIB, torch.device("cuda"))


def test_a_coarse_to_fine_batch_matches_each_job_alone(style: Image.Image) -> None:
    """Coarse-to-fine jobs (the default above 724 px) batch level by level: at the final size each
    image keeps its coarser level's style term, as the same job alone does (issue 11)."""
    params = GatysParams(size=128, iterations=8, multiscale=True)  # levels 64 and 128 px
    contents = [Image.fromarray(p).resize((128, 128), Image.Resampling.LANCZOS) for p in (data.astronaut(), data.coffee())]
    steps: list[int] = []
    outcomes = stylize_batch(contents, [style], params, on_steps=[lambda i, n, _: steps.append(i), None])
    for outcome, content in zip(outcomes, contents):
        assert outcome.error is None and outcome.result is not None
        solo = stylize(content, [style], params)
        assert outcome.result.losses.keys() == solo.losses.keys() == {"total", "content", "style", "tv", "coarse_style"}
        assert outcome.result.losses["coarse_style"] > 0
        assert_same_job(outcome.result, solo)
        assert outcome.result.image.size == (128, 128)
    assert steps == list(range(1, 9))  # one count over both levels, as alone
    assert batchable(GatysParams(size=1024)) and not batchable(GatysParams(init="image"))


def test_contents_whose_shapes_agree_only_at_the_final_size_run_apart(style: Image.Image) -> None:
    """320x242 and 320x243 both give 128x97 at 128 px, but 64x48 and 64x49 at the 64 px level."""
    params = GatysParams(size=128, iterations=4, multiscale=True)
    photo = Image.fromarray(data.astronaut())
    contents = [photo.resize((320, 242)), photo.resize((320, 243))]
    outcomes = stylize_batch(contents, [style], params)
    assert [outcome.error for outcome in outcomes] == [None, None]
    assert [outcome.result.image.size for outcome in outcomes] == [(128, 97), (128, 97)]
