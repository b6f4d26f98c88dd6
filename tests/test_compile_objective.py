"""The compiled batch objective: compiled once per shape in a process, and eager when compiling fails."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from style_engine.gatys.batched import stylize_batch
from style_engine.gatys.compiled_objective import clear_objectives
from style_engine.params import GatysParams

pytestmark = pytest.mark.unit
PARAMS = GatysParams(size=40, iterations=4)


@pytest.fixture(autouse=True)
def fresh_objectives() -> None:
    clear_objectives()


@pytest.fixture(scope="module")
def content() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((64, 64), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def style() -> Image.Image:
    return Image.fromarray(data.coffee()).resize((64, 48), Image.Resampling.LANCZOS)


def failing_backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> object:
    raise RuntimeError("forced: the C++ compiler is missing")


def test_a_compile_failure_falls_back_to_eager_with_a_warning(content: Image.Image, style: Image.Image) -> None:
    """A real torch.compile whose backend fails on the first call: the job completes eager and says why."""
    compiled = stylize_batch([content], [style], PARAMS, compile=True,
                             compiler=lambda function: torch.compile(function, backend=failing_backend))[0]
    assert compiled.error is None
    assert len(compiled.warnings) == 1
    assert "compiling the objective failed" in compiled.warnings[0] and "forced" in compiled.warnings[0]
    eager = stylize_batch([content], [style], PARAMS, compile=False)[0]
    assert eager.warnings == []
    assert compiled.result.losses == eager.result.losses
    assert np.array_equal(np.asarray(compiled.result.image), np.asarray(eager.result.image))


def test_the_compiled_objective_is_built_once_per_shape(content: Image.Image, style: Image.Image) -> None:
    compiled_shapes: list[int] = []

    def counting(function):
        compiled_shapes.append(PARAMS.size)
        return function

    wide = content.resize((64, 32))
    for _ in range(2):  # a second batch of the same shapes reuses the first one's objectives
        outcomes = stylize_batch([content, content, wide], [style], PARAMS, compile=True, compiler=counting)
        assert all(outcome.error is None for outcome in outcomes)
    assert len(compiled_shapes) == 2  # (2, 3, 40, 40) and (1, 3, 20, 40)
