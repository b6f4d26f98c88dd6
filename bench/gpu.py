"""Benchmark: Gatys throughput on one device, eager vs compiled, alone vs batched (issue 11's targets).

Not a test. Prints, side by side in one run, and writes to ``--json``:
  1. seconds per evaluation, eager vs compiled, at each ``--eval-sizes`` (one image);
  2. one artwork at ``--size`` with ``--evaluations`` evaluations, alone (today's ``stylize``);
  3. a batch of ``--batch`` artworks at ``--size``: per-artwork time including its share of the
     set-up (targets, compile), and the projection for 1,000 artworks (targets: <= 1.8 s each,
     <= 30 min for 1,000);
  4. at ``--small-size``, per-image throughput of a batch against one job alone (target >= 3x).
Artworks are default jobs: coarse-to-fine above 724 px (so at 1024 px, a 512 px level with 75 % of
the evaluations, then 1024 px), single-scale below.

Imports only the engine (no Prefect, SQLAlchemy or boto3), runs on CUDA unchanged and on a CPU
with tiny sizes. ``--budget-s`` skips the sections that would not finish in time (it says which),
most important first: the batch at ``--size``, then the small-size throughput, then the rest.

  CUDA (about 4 min with compiles):  python bench/gpu.py --json $OUT/gpu.json
  CPU dry run (under 2 min):         python bench/gpu.py --cpu-dry-run --json /tmp/gpu.json
Uses ../shared/data's Tuebingen + Starry Night when present, else scikit-image samples.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from style_engine.gatys.batched import stylize_batch
from style_engine.gatys.compiled_objective import clear_objectives
from style_engine.device import resolve_device
from style_engine.gatys.render import stylize
from style_engine.params import GatysParams

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONTENT = DATA / "content" / "tuebingen_neckarfront.jpg"
STYLE = DATA / "style" / "vangogh_starry_night.jpg"
ARTWORKS = 1000
TARGET_SECONDS_EACH = 1.8
TARGET_MINUTES_ALL = 30.0
TARGET_SPEEDUP = 3.0


def say(text: str) -> None:
    print(text, flush=True)


def pair() -> tuple[Image.Image, Image.Image, str]:
    if CONTENT.is_file() and STYLE.is_file():
        return Image.open(CONTENT).convert("RGB"), Image.open(STYLE).convert("RGB"), "tuebingen + starry night"
    from skimage import data

    # Cropped to 4:3, the shared pair's aspect, so that sizes cost what they cost on Tuebingen.
    content = Image.fromarray(data.astronaut()).crop((0, 64, 512, 448))
    return content, Image.fromarray(data.coffee()), "skimage astronaut (4:3 crop) + coffee"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], Any]) -> tuple[float, Any]:
    synchronize(device)
    started = time.perf_counter()
    value = work()
    synchronize(device)
    return time.perf_counter() - started, value


def one_scale(size: int, evals: int) -> GatysParams:
    """Single-scale parameters, for the cost of one evaluation at a size."""
    return GatysParams(size=size, iterations=evals, multiscale=False)


def default_job(size: int, evals: int) -> GatysParams:
    """What a gallery job at ``size`` optimizes by default (coarse-to-fine above 724 px), alone and batched."""
    return GatysParams(size=size, iterations=evals)


def per_evaluation(content: Image.Image, style: Image.Image, size: int, evals: int, device: torch.device,
                   compile: bool) -> dict[str, float]:
    """s per evaluation of one image: the first run pays set-up (and compile), a second run is timed."""
    params = one_scale(size, evals)
    first, _ = timed(device, lambda: stylize_batch([content], [style], params, device=device, compile=compile))
    steps: list[float] = []

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        steps.append(time.perf_counter())

    timed(device, lambda: stylize_batch([content], [style], params, device=device, compile=compile, on_steps=[on_step]))
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    gaps.sort()
    return {"s_per_eval": gaps[len(gaps) // 2], "first_run_s": first}


def alone(content: Image.Image, style: Image.Image, size: int, evals: int, device: torch.device) -> dict[str, float]:
    """One artwork through the single-job path (eager, torch L-BFGS), after a warm-up."""
    params = default_job(size, evals)
    stylize(content, [style], default_job(size, 2), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds, result = timed(device, lambda: stylize(content, [style], params, device=device))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"seconds": seconds, "loss": result.losses["total"], "peak_gib": peak}


def batched(content: Image.Image, style: Image.Image, size: int, evals: int, batch: int, device: torch.device,
            compile: bool | None, warm_rerun: bool) -> dict[str, Any]:
    """A batch of ``batch`` artworks from a cold start (targets, compile: its share is in each artwork's time).

    The steady rate is timed between the first and the last evaluation of that run (what the
    next batches of the same shape cost); ``warm_rerun`` also times a whole second batch.
    """
    params = default_job(size, evals)
    contents = [content] * batch
    clear_objectives()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stamps: list[float] = []

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        stamps.append(time.perf_counter())
        if step == 1 or step % 50 == 0:
            say(f"    evaluation {step}/{total} of the batch, loss {losses['total']:.4g}")

    started = time.perf_counter()
    cold, outcomes = timed(device, lambda: stylize_batch(contents, [style], params, device=device, compile=compile,
                                                         max_batch=batch, on_steps=[on_step] + [None] * (batch - 1)))
    failed = [str(o.error) for o in outcomes if o.error is not None]
    losses = [o.result.losses["total"] for o in outcomes if o.result is not None]
    figures: dict[str, Any] = {
        "batch": batch, "cold_s": cold, "cold_each_s": cold / batch,
        "first_evaluation_s": stamps[0] - started if stamps else None,
        "steady_each_s": (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1) * evals / batch if stamps else None,
        "loss_min": min(losses, default=None), "loss_max": max(losses, default=None), "failed": failed,
        "warnings": sorted({w for o in outcomes for w in o.warnings}),
    }
    if device.type == "cuda":
        figures["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if warm_rerun:
        warm, _ = timed(device, lambda: stylize_batch(contents, [style], params, device=device, compile=compile,
                                                      max_batch=batch))
        figures["warm_each_s"] = warm / batch
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=1024, help="the artworks' long side (target size)")
    parser.add_argument("--small-size", type=int, default=512, help="size of the batched vs alone throughput check")
    parser.add_argument("--eval-sizes", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--evaluations", type=int, default=300, help="evaluations per artwork")
    parser.add_argument("--small-evaluations", type=int, default=100)
    parser.add_argument("--probe-evaluations", type=int, default=20, help="evaluations per s/eval measurement")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--small-batch", type=int, default=32)
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="for the batches: auto = the engine's default (compiled on CUDA, eager on a CPU)")
    parser.add_argument("--budget-s", type=float, default=230.0, help="skip sections that would run past this")
    parser.add_argument("--warm-rerun", action="store_true", help="also time a second, warm batch of each size")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="tiny sizes on the CPU: size 48, small 32, 8 evaluations, batches of 4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.cpu_dry_run:
        args.device, args.size, args.small_size, args.eval_sizes = "cpu", 48, 32, [32]
        args.evaluations, args.small_evaluations, args.probe_evaluations = 8, 8, 6
        args.batch = args.small_batch = 4
    device = resolve_device(args.device)
    compile = {"auto": None, "on": True, "off": False}[args.compile]
    content, style, pair_name = pair()
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "pair": pair_name, "args": {k: str(v) for k, v in vars(args).items()},
        "skipped": [],
    }
    say(f"device {figures['device']}, torch {torch.__version__}, {pair_name}, budget {args.budget_s:.0f} s")

    def section(name: str, estimate: float, work: Callable[[], Any]) -> Any:
        elapsed = time.perf_counter() - started
        if elapsed + estimate > args.budget_s:
            figures["skipped"].append(name)
            say(f"[{elapsed:6.1f} s] skip {name}: needs about {estimate:.0f} s, {args.budget_s - elapsed:.0f} s left")
            return None
        say(f"[{elapsed:6.1f} s] {name} ...")
        try:
            value = work()
        except Exception as exc:  # a bench reports what broke and goes on to the next figure
            value = {"error": f"{type(exc).__name__}: {exc}"}
        figures[name] = value
        say(f"[{time.perf_counter() - started:6.1f} s] {name}: {json.dumps(value, default=str)}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        return value

    compile_s = 60.0 if device.type == "cuda" else 30.0  # rough, for the budget only
    big = section(f"batch_{args.size}", 2 * compile_s, lambda: batched(
        content, style, args.size, args.evaluations, args.batch, device, compile, args.warm_rerun))
    small_alone = section(f"alone_{args.small_size}", 10.0, lambda: alone(
        content, style, args.small_size, args.small_evaluations, device))
    small = section(f"batch_{args.small_size}", compile_s, lambda: batched(
        content, style, args.small_size, args.small_evaluations, args.small_batch, device, compile, args.warm_rerun))
    big_alone = section(f"alone_{args.size}", 15.0, lambda: alone(content, style, args.size, args.evaluations, device))
    for mode in ("eager", "compiled"):
        for size in args.eval_sizes:
            section(f"eval_{size}_{mode}", compile_s if mode == "compiled" else 10.0, lambda size=size, mode=mode:
                    per_evaluation(content, style, size, args.probe_evaluations, device, mode == "compiled"))

    say("")
    say(f"== summary on {figures['device']} ({time.perf_counter() - started:.0f} s) ==")
    for size in args.eval_sizes:
        eager, compiled = figures.get(f"eval_{size}_eager") or {}, figures.get(f"eval_{size}_compiled") or {}
        say(f"s per evaluation at {size} px, one image: eager {_ms(eager.get('s_per_eval'))}, "
            f"compiled {_ms(compiled.get('s_per_eval'))} (first run incl. compile {_s(compiled.get('first_run_s'))})")
    for size, evals, batch, section_figures in ((args.size, args.evaluations, args.batch, big),
                                                (args.small_size, args.small_evaluations, args.small_batch, small)):
        if section_figures and section_figures.get("steady_each_s"):
            say(f"s per evaluation at {size} px in a batch of {batch}: "
                f"{_ms(section_figures['steady_each_s'] / evals)} per image")
    if big_alone and "seconds" in big_alone:
        say(f"one {args.size} px artwork, {args.evaluations} evaluations, alone: {big_alone['seconds']:.2f} s "
            f"(peak {big_alone['peak_gib'] or 0:.1f} GiB); 1,000 of them: {big_alone['seconds'] * ARTWORKS / 60:.1f} min")
    if big and big.get("steady_each_s"):
        each, steady = big["cold_each_s"], big.get("warm_each_s", big["steady_each_s"])
        projected = (big["cold_s"] + steady * (ARTWORKS - args.batch)) / 60
        figures["projection"] = {"per_artwork_s_cold_batch": each, "per_artwork_s_next_batches": steady,
                                 "minutes_for_1000": projected}
        say(f"batch of {args.batch} at {args.size} px, {args.evaluations} evaluations: {each:.2f} s per artwork with "
            f"its share of set-up and compile, {steady:.2f} s in the next batches (target <= {TARGET_SECONDS_EACH} s)"
            f" -> 1,000 artworks in {projected:.1f} min (target <= {TARGET_MINUTES_ALL:.0f}); "
            f"failed {len(big['failed'])}, peak {big.get('peak_gib') or 0:.1f} GiB")
    if small and small_alone and small.get("steady_each_s") and "seconds" in small_alone:
        batched_each = small.get("warm_each_s", small["steady_each_s"])
        speedup = small_alone["seconds"] / batched_each
        figures["small_speedup"] = speedup
        say(f"at {args.small_size} px, {args.small_evaluations} evaluations: one job alone {small_alone['seconds']:.2f} s,"
            f" batched ({args.small_batch}) {batched_each:.3f} s per image -> {speedup:.1f}x (target >= "
            f"{TARGET_SPEEDUP:.0f}x); cold batch {small['cold_each_s']:.3f} s per image")
    if figures["skipped"]:
        say(f"skipped for the budget: {', '.join(figures['skipped'])}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
        say(f"figures written to {args.json}")
    return 0


def _ms(value: float | None) -> str:
    return f"{1000 * value:.1f} ms" if value is not None else "n/a"


def _s(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "n/a"


if __name__ == "__main__":
    sys.exit(main())
