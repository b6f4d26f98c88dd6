"""Benchmark: video stylization, per-frame Gatys against Ruder et al.'s Gatys, side by side.

Not a test. For each method, on the same frames and the same evaluation budgets, prints:
s/frame (and frames/s), the warping error (Lai et al. 2018: masked mean squared difference
between output t and the flow-warped output t-1, flow from the input frames), the style
distance, the evaluations spent per frame and the share of time spent in optical flow.

The ITN rows (per-frame ITN, and ITN with flow-guided stabilization) wait for the trained
networks of issue 8; they are printed as "not yet" so the table keeps its final shape.

Runs unchanged on CUDA (``--device auto`` picks it), where frames/s is the figure to read.

Usage: .venv/bin/python bench/video.py [--frames 12] [--size 256] [--iterations 40] [--frame-iterations 25]
Uses ../shared/data's squirrel clip and Starry Night when present, else a generated panning texture
and scikit-image's coffee.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from style_engine.params import parse_params
from style_engine.video import ruder_gatys, summarize
from tasks.video_io import probe_video, read_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIP = DATA / "video" / "squirrel.mp4"
STYLE = DATA / "style" / "vangogh_starry_night.jpg"


def inputs(frames: int, size: int, workdir: Path) -> tuple[list[np.ndarray], Image.Image, str]:
    """The squirrel clip and Starry Night, or a generated pan and a scikit-image picture."""
    if CLIP.is_file() and STYLE.is_file():
        source, style, name = CLIP, Image.open(STYLE).convert("RGB"), "squirrel.mp4 + Starry Night"
    else:
        from skimage import data

        from tests.video_clips import panning_frames, write_clip

        source = write_clip(workdir / "pan.mp4", panning_frames(frames, height=size * 9 // 16, width=size), fps=25)
        style, name = Image.fromarray(data.coffee()), "generated pan + coffee"
    info = probe_video(source)
    return list(read_frames(source, info, size=size, count=min(frames, info.frames))), style, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=40, help="first frame's evaluations (both methods)")
    parser.add_argument("--frame-iterations", type=int, default=25, help="later frames' evaluations (both methods)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        frames, style, name = inputs(args.frames, args.size, Path(folder))
    height, width = frames[0].shape[:2]
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""))
    print(f"input: {name}, {len(frames)} frames at {width}x{height}; budgets {args.iterations} (first) / "
          f"{args.frame_iterations} (later) evaluations")
    rows = []
    for label, temporal in (("per-frame Gatys", False), ("Ruder Gatys", True)):
        params = parse_params("video_gatys", {"size": args.size, "iterations": args.iterations,
                                              "frame_iterations": args.frame_iterations, "temporal": temporal})
        started = time.perf_counter()
        reports = [report for _, report in ruder_gatys(frames, [style], params, device=device)]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        summary = summarize(reports)
        summary["wall"] = time.perf_counter() - started
        rows.append((label, summary))
    header = f"{'method':<34}{'s/frame':>9}{'frames/s':>10}{'warp err':>11}{'style_dist':>12}{'evals/fr':>10}{'flow %':>8}"
    print(header)
    for label, s in rows:
        print(f"{label:<34}{s['seconds_per_frame']:>9.2f}{1 / s['seconds_per_frame']:>10.3f}{s['warping_error']:>11.2e}"
              f"{s['style_dist']:>12.4g}{s['iterations_per_frame']:>10.1f}{100 * s['flow_share']:>8.2f}")
    for label in ("per-frame ITN", "ITN + flow stabilization"):
        print(f"{label:<34}{'not yet: needs the trained networks of issue 8':>60}")
    base, ruder = rows[0][1], rows[1][1]
    print(f"Ruder / per-frame: warping error {ruder['warping_error'] / base['warping_error']:.3f}x, "
          f"style_dist {ruder['style_dist'] / base['style_dist']:.3f}x, time {ruder['wall'] / base['wall']:.2f}x")


if __name__ == "__main__":
    main()
