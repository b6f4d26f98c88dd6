"""The batched L-BFGS on small smooth problems (float64): each image's run is its own."""

from __future__ import annotations

import math

import pytest
import torch

from style_engine.gatys.batched_lbfgs import minimize

pytestmark = pytest.mark.unit
SIZE = 30


def problems(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Convex quadratics plus a quartic: curvature varies along the path, so line searches differ per image."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, SIZE, SIZE, generator=generator, dtype=torch.float64)
    return a @ a.transpose(1, 2) + 0.1 * torch.eye(SIZE, dtype=torch.float64), torch.randn(batch, SIZE, generator=generator,
                                                                                          dtype=torch.float64)


def objective(a: torch.Tensor, c: torch.Tensor, poisoned: int | None = None, after: int = 0):
    calls = [0]

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls[0] += 1
        x = x.detach().requires_grad_(True)
        loss = 0.5 * torch.einsum("bi,bij,bj->b", x, a, x) - (c * x).sum(1) + 0.01 * x.pow(4).sum(1)
        if poisoned is not None and calls[0] > after:
            loss = loss * torch.tensor([math.nan if row == poisoned else 1.0 for row in range(x.shape[0])],
                                       dtype=x.dtype)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        return loss.detach()[:, None], grad

    return evaluate


def test_each_image_in_a_batch_follows_exactly_its_own_run() -> None:
    a, c = problems(3)
    batch = minimize(objective(a, c), torch.zeros(3, SIZE, dtype=torch.float64), 40, history=8)
    for row in range(3):
        alone = minimize(objective(a[row:row + 1], c[row:row + 1]), torch.zeros(1, SIZE, dtype=torch.float64), 40,
                         history=8)
        assert torch.equal(batch.best_x[row], alone.best_x[0])
        assert batch.best_terms[row] == alone.best_terms[0]
    assert batch.evaluations == [40, 40, 40]


def test_it_minimizes_as_well_as_torch_lbfgs_for_the_same_evaluations() -> None:
    a, c = problems(1, seed=1)
    ours = minimize(objective(a, c), torch.zeros(1, SIZE, dtype=torch.float64), 60, history=8).best_terms[0][0]
    z = torch.zeros(SIZE, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([z], max_iter=60, max_eval=60, history_size=8, line_search_fn="strong_wolfe")
    evaluate = objective(a, c)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        terms, grad = evaluate(z.detach()[None])
        z.grad = grad[0]
        return terms[0, 0]

    optimizer.step(closure)
    theirs = evaluate(z.detach()[None])[0][0, 0].item()
    assert ours <= theirs + 1e-4 * abs(theirs)  # as low, within 0.01 % (the line searches differ in detail)


def test_a_nan_stops_only_its_own_image() -> None:
    a, c = problems(2)
    batch = minimize(objective(a, c, poisoned=1, after=5), torch.zeros(2, SIZE, dtype=torch.float64), 30, history=8)
    alone = minimize(objective(a[:1], c[:1]), torch.zeros(1, SIZE, dtype=torch.float64), 30, history=8)
    assert batch.failures[0] is None and "not finite at evaluation 6" in batch.failures[1]
    assert batch.evaluations == [30, 6]
    assert torch.equal(batch.best_x[0], alone.best_x[0])
    assert math.isfinite(batch.best_terms[1][0])  # its best point before the NaN is kept
