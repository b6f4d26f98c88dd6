"""L-BFGS over a leading batch dimension: B independent problems, one batched evaluation per round.

Batching Gatys jobs pays only if every image still gets the optimizer it would get alone: its
own curvature history, its own step length, its own decision to accept a step. So the state here
is batched tensors (points, gradients, directions, a ring of curvature pairs per image) and
per-image scalars (the line search of each image is a small state machine of floats), and every
round evaluates each live image once, whatever phase its own iteration is in: one image may be
trying its first step while another is zooming. No image ever waits for another, so the batch
spends exactly the evaluations the images would spend alone.

The algorithm per image is textbook L-BFGS (Nocedal & Wright, Alg. 7.4 two-loop recursion) with
a strong-Wolfe line search (Alg. 3.5 and 3.6, cubic interpolation). The first step moves the most
sensitive pixel by ``first_step`` (the reason is in :mod:`style_engine.gatys.render`); later first
trials are the unit step.

An image whose loss or gradient turns non-finite is failed alone: its row is parked on its best
point, its evaluations are ignored, and the others go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

ARMIJO = 1e-4  # sufficient decrease (c1)
CURVATURE = 0.9  # strong-Wolfe curvature (c2), the usual value for quasi-Newton methods
MAX_TRIALS = 25  # line-search evaluations before an iteration settles for its best point
EXTRAPOLATION = 10.0  # how far the bracketing phase may grow the step per trial

# evaluate(points (B, ...)) -> (terms (B, K) with the loss in column 0, gradient (B, ...))
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# on_round(terms (B, K) on the CPU, live (B,) bools) after each batched evaluation -> rows to stop now
OnRound = Callable[[torch.Tensor, list[bool]], set[int]]


@dataclass
class BatchOutcome:
    """Per image: its best point and terms, the evaluations it spent, and why it stopped early (if it did)."""

    best_x: torch.Tensor
    best_terms: list[list[float] | None]
    first_terms: list[list[float] | None]
    evaluations: list[int]
    failures: list[str | None] = field(default_factory=list)  # a message per failed image


class _LineSearch:
    """One image's strong-Wolfe search along its direction: floats in, the next trial step out.

    ``lo`` is always the best point found that satisfies sufficient decrease (t = 0 at first),
    ``hi`` the other end of the bracket once one exists.
    """

    def __init__(self, f0: float, slope0: float, t: float) -> None:
        self.f0, self.slope0 = f0, slope0
        self.t = t
        self.lo = (0.0, f0, slope0)
        self.hi: tuple[float, float, float] | None = None
        self.previous = (0.0, f0, slope0)
        self.trials = 0
        self.lo_is_latest = False  # the last trial became ``lo``: the caller keeps its gradient

    def tell(self, f: float, slope: float) -> str:
        """Take the loss and directional derivative at ``self.t``; say ``accept``, ``lo``, ``fail`` or ``next``.

        ``next`` leaves the next trial step in ``self.t``; ``lo`` means settle for ``self.lo``.
        """
        self.trials += 1
        t = self.t
        self.lo_is_latest = False
        sufficient = f <= self.f0 + ARMIJO * t * self.slope0
        if self.hi is None:  # bracketing phase
            if not sufficient or (self.trials > 1 and f >= self.previous[1]):
                self.hi = (t, f, slope)
                self.lo = self.previous
            elif abs(slope) <= -CURVATURE * self.slope0:
                return "accept"
            elif slope >= 0:
                self.hi, self.lo = self.previous, (t, f, slope)
                self.lo_is_latest = True
            else:
                self.lo = (t, f, slope)
                self.lo_is_latest = True
                low, high = t + 0.01 * (t - self.previous[0]), EXTRAPOLATION * t
                guess = _cubic_minimum(self.previous, (t, f, slope), low, high, default=high)
                self.previous = (t, f, slope)
                return self._try(guess)
            self.previous = (t, f, slope)
        else:  # zoom phase: the bracket [lo, hi] holds a point satisfying both conditions
            if not sufficient or f >= self.lo[1]:
                self.hi = (t, f, slope)
            else:
                if abs(slope) <= -CURVATURE * self.slope0:
                    return "accept"
                if slope * (self.hi[0] - self.lo[0]) >= 0:
                    self.hi = self.lo
                self.lo = (t, f, slope)
                self.lo_is_latest = True
        return self._zoom()

    def _zoom(self) -> str:
        assert self.hi is not None
        a, b = sorted((self.lo[0], self.hi[0]))
        width = b - a
        if width <= 1e-9 * max(b, 1e-30):
            return self._settle()
        margin = 0.1 * width  # stay clear of the ends, or the bracket shrinks by rounding errors only
        guess = _cubic_minimum(self.lo, self.hi, a, b, default=(a + b) / 2)
        if not a + margin <= guess <= b - margin:
            guess = (a + b) / 2
        return self._try(guess)

    def _try(self, t: float) -> str:
        if self.trials >= MAX_TRIALS or not math.isfinite(t):
            return self._settle()
        self.t = t
        return "next"

    def _settle(self) -> str:
        return "lo" if self.lo[0] > 0 else "fail"


def _cubic_minimum(
    p: tuple[float, float, float], q: tuple[float, float, float], low: float, high: float, default: float
) -> float:
    """Minimizer, clamped to [low, high], of the cubic through two (t, f, f') points; ``default`` if it has none."""
    (t1, f1, g1), (t2, f2, g2) = p, q
    if t1 == t2:
        return default
    d1 = g1 + g2 - 3 * (f1 - f2) / (t1 - t2)
    square = d1 * d1 - g1 * g2
    if square < 0 or not math.isfinite(square):
        return default
    d2 = math.copysign(math.sqrt(square), t2 - t1)
    denominator = g2 - g1 + 2 * d2
    if denominator == 0:
        return default
    t = t2 - (t2 - t1) * (g2 + d2 - d1) / denominator
    return min(max(t, low), high) if math.isfinite(t) else default


class _History:
    """Each image's last ``size`` curvature pairs (s, y) in a ring, with its own length and head.

    Lengths and heads are host-side integers, so that choosing the pairs never waits for the device.
    """

    def __init__(self, batch: int, numel: int, size: int, like: torch.Tensor) -> None:
        self.size = size
        self.s = like.new_zeros((batch, size, numel))
        self.y = like.new_zeros((batch, size, numel))
        self.rho = like.new_zeros((batch, size))
        self.length = [0] * batch
        self.head = [0] * batch  # next slot to write
        self.gamma = like.new_ones(batch)  # initial inverse Hessian scale, s'y / y'y of the newest pair

    def add(self, rows: list[int], s: torch.Tensor, y: torch.Tensor) -> None:
        """Store pairs for ``rows`` whose curvature is positive (scale-free test); skip the others, as usual."""
        sy, yy, ss = (s * y).sum(1), (y * y).sum(1), (s * s).sum(1)
        keep = (sy > 1e-10 * torch.sqrt(ss * yy)).tolist()
        kept = [position for position, ok in enumerate(keep) if ok]
        if not kept:
            return
        device = s.device
        picked = torch.tensor(kept, device=device)
        targets = [rows[position] for position in kept]
        index = torch.tensor(targets, device=device)
        slot = torch.tensor([self.head[row] for row in targets], device=device)
        self.s[index, slot] = s[picked]
        self.y[index, slot] = y[picked]
        self.rho[index, slot] = 1.0 / sy[picked]
        self.gamma[index] = sy[picked] / yy[picked]
        for row in targets:
            self.head[row] = (self.head[row] + 1) % self.size
            self.length[row] = min(self.length[row] + 1, self.size)

    def direction(self, rows: list[int], gradient: torch.Tensor) -> torch.Tensor:
        """-H g for ``rows`` by the two-loop recursion, each row over its own pairs (missing ones weigh 0).

        When every image asks at once with its pairs in the same slots (the usual case: all
        accept their first trial), the pairs are read in place; otherwise they are gathered.
        """
        q = -gradient
        lengths, heads = [self.length[row] for row in rows], [self.head[row] for row in rows]
        deepest = max(lengths, default=0)
        lockstep = len(rows) == self.s.shape[0] and len(set(heads)) == 1 and len(set(lengths)) == 1
        device = gradient.device
        index = torch.tensor(rows, device=device)
        slots = torch.tensor([[(head - 1 - k) % self.size for head in heads] for k in range(deepest)], device=device)
        valid = torch.tensor([[float(k < length) for length in lengths] for k in range(deepest)],
                             dtype=gradient.dtype, device=device)

        def pair(k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            if lockstep:
                slot = (heads[0] - 1 - k) % self.size
                return self.s[:, slot], self.y[:, slot], self.rho[:, slot]
            return self.s[index, slots[k]], self.y[index, slots[k]], self.rho[index, slots[k]] * valid[k]

        alphas = []
        for k in range(deepest):  # newest to oldest
            s, y, rho = pair(k)
            alpha = rho * (s * q).sum(1)
            q.sub_(alpha[:, None] * y)
            alphas.append((rho, alpha))
        q.mul_(self.gamma[index][:, None])
        for k in reversed(range(deepest)):
            s, y, _ = pair(k)
            rho, alpha = alphas[k]
            beta = rho * (y * q).sum(1)
            q.add_((alpha - beta)[:, None] * s)
        return q


def minimize(
    evaluate: Evaluate,
    x0: torch.Tensor,
    budget: int,
    *,
    history: int = 50,
    first_step: float = 0.05,
    on_round: OnRound | None = None,
) -> BatchOutcome:
    """Minimize each image's loss from ``x0`` (B, ...) with ``budget`` evaluations per image.

    Every round evaluates all B rows once (rows of stopped images sit on their best point, so the
    shape never changes and a compiled or graph-captured objective is reused). The best point
    seen by each image, line-search trials included, is what it returns. ``on_round`` sees each
    round's terms and may stop images (a caller's stop request, a lost lease).
    """
    batch = x0.shape[0]
    shape = x0.shape
    x = x0.detach().reshape(batch, -1).clone()
    numel = x.shape[1]
    grad = torch.zeros_like(x)
    direction = torch.zeros_like(x)
    trial = x.clone()
    lo_grad = torch.zeros_like(x)  # gradient at each search's best trial so far
    best_x = x.clone()
    best = [math.inf] * batch
    memory = _History(batch, numel, history, x)
    loss = [math.inf] * batch
    searches: list[_LineSearch | None] = [None] * batch
    live = [True] * batch
    failures: list[str | None] = [None] * batch
    evaluations = [0] * batch
    best_terms: list[list[float] | None] = [None] * batch
    first_terms: list[list[float] | None] = [None] * batch
    needs_direction: list[int] = []
    started = False

    for _ in range(budget):
        if not any(live):
            break
        if needs_direction:
            _start_searches(needs_direction, memory, grad, direction, searches, loss, first_step, live)
            needs_direction = []
        steps = torch.tensor([s.t if s is not None and live[i] else 0.0 for i, s in enumerate(searches)],
                             dtype=x.dtype, device=x.device)
        stopped = torch.tensor([not alive for alive in live], device=x.device)
        base = torch.where(stopped[:, None], best_x, x)
        trial = base + steps[:, None] * direction if started else base
        terms, trial_grad = evaluate(trial.reshape(shape))
        trial_grad = trial_grad.reshape(batch, -1)
        slopes = (trial_grad * direction).sum(1)
        finite = torch.isfinite(terms).all(1) & torch.isfinite(trial_grad).all(1)
        host = torch.cat([terms.double(), slopes.double()[:, None], finite.double()[:, None]], 1).cpu()
        alive_before = list(live)
        improved = [False] * batch
        for i in range(batch):
            if not live[i]:
                continue
            evaluations[i] += 1
            if host[i, -1] == 0:
                live[i] = False
                failures[i] = (f"the loss or its gradient is not finite at evaluation {evaluations[i]} "
                               f"(total loss {host[i, 0].item()})")
                continue
            values = host[i, :-2].tolist()
            first_terms[i] = first_terms[i] or values
            if values[0] < best[i]:
                best[i], best_terms[i], improved[i] = values[0], values, True
        best_x = torch.where(torch.tensor(improved, device=x.device)[:, None], trial, best_x)
        if on_round is not None:
            for row in on_round(host[:, :-2], alive_before):
                live[row] = False
        if not started:
            started = True
            grad = trial_grad.clone()
            x = trial.clone()
            loss = host[:, 0].tolist()
            needs_direction = [i for i in range(batch) if live[i]]
            continue
        needs_direction = _advance_searches(host, trial, trial_grad, x, grad, lo_grad, direction, memory, searches,
                                            loss, live)
    return BatchOutcome(best_x.reshape(shape), best_terms, first_terms, evaluations, failures)


def _start_searches(
    rows: list[int],
    memory: _History,
    grad: torch.Tensor,
    direction: torch.Tensor,
    searches: list[_LineSearch | None],
    loss: list[float],
    first_step: float,
    live: list[bool],
) -> None:
    """New directions for ``rows`` (one batched two-loop recursion) and a fresh line search for each."""
    index = torch.tensor(rows, device=grad.device)
    direction[index] = memory.direction(rows, grad[index])
    slopes = (grad[index] * direction[index]).sum(1).tolist()
    fresh = [memory.length[row] == 0 for row in rows]
    steepest = grad[index].abs().amax(1).tolist()
    for row, slope, first, top in zip(rows, slopes, fresh, steepest):
        if not slope < 0 or top == 0:  # a stationary point (or a broken direction): nothing left to do
            live[row] = False
            continue
        t = first_step / top if first else 1.0
        searches[row] = _LineSearch(loss[row], slope, t)


def _advance_searches(
    host: torch.Tensor,
    trial: torch.Tensor,
    trial_grad: torch.Tensor,
    x: torch.Tensor,
    grad: torch.Tensor,
    lo_grad: torch.Tensor,
    direction: torch.Tensor,
    memory: _History,
    searches: list[_LineSearch | None],
    loss: list[float],
    live: list[bool],
) -> list[int]:
    """Feed each live image's trial to its line search; move the images whose iteration ended.

    Returns the rows that need a new direction next round.
    """
    accepted: list[int] = []
    from_lo: list[tuple[int, float]] = []
    became_lo: list[int] = []
    for i, search in enumerate(searches):
        if search is None or not live[i]:
            continue
        verdict = search.tell(float(host[i, 0]), float(host[i, -2]))
        if search.lo_is_latest:
            became_lo.append(i)
        if verdict == "accept":
            accepted.append(i)
        elif verdict == "lo":
            from_lo.append((i, search.lo[0]))
        elif verdict == "fail":
            live[i] = False  # no step along the direction lowers the loss: this image has converged
    if became_lo:
        rows = torch.tensor(became_lo, device=x.device)
        lo_grad[rows] = trial_grad[rows]
    moved = accepted + [i for i, _ in from_lo]
    if not moved:
        return []
    rows = torch.tensor(moved, device=x.device)
    steps = torch.tensor([searches[i].t for i in accepted] + [t for _, t in from_lo],  # type: ignore[union-attr]
                         dtype=x.dtype, device=x.device)
    new_grad = torch.cat([trial_grad[torch.tensor(accepted, device=x.device, dtype=torch.long)],
                          lo_grad[torch.tensor([i for i, _ in from_lo], device=x.device, dtype=torch.long)]])
    s = steps[:, None] * direction[rows]
    memory.add(moved, s, new_grad - grad[rows])
    x[rows] = x[rows] + s
    grad[rows] = new_grad
    for i in accepted:
        loss[i] = float(host[i, 0])
    for i, _ in from_lo:
        loss[i] = searches[i].lo[1]  # type: ignore[union-attr]
    return moved

