"""Benchmark: video stylization, per-frame against temporally consistent, for Gatys and for trained networks.

Not a test. On the same frames, prints for each method: s/frame and frames/s, the warping error
(Lai et al. 2018: masked mean squared difference between output t and the flow-warped output t-1,
flow from the input frames, on [0, 1] pixels), the style distance of every ``--style-every``-th
frame to the painting (style_engine.style_distance: one metric for every method), the evaluations
per frame, the share of time spent in optical flow, and for the ITN rows how far the output
departs from what the network paints alone (mean |stabilized - per-frame| on 0-255: what the blend
costs in smear and ghosts).

Rows: per-frame Gatys; Ruder Gatys at each ``--temporal-weights`` value (the engine's default
when none is given); per-frame ITN; ITN with flow stabilization at each ``--blends`` value.

The network is ``--model PATH`` (a stored model file, e.g. from ``atelier models show NAME --json``'s
uri, or a training checkpoint) or, without one, a light Starry Night network trained here for
``--train-steps`` steps on ``--data``/train (``--save-model`` keeps it).

Runs unchanged on CUDA (``--device auto`` picks it), where frames/s is the figure to read. Needs only
torch, OpenCV, NumPy, Pillow (and PyAV where installed: without it the clip is read with OpenCV alone).

Usage: .venv/bin/python bench/video.py [--frames 12] [--size 256] [--iterations 40] [--frame-iterations 25]
       [--model PATH | --train-steps 300] [--blends 0.3 0.5 0.7] [--temporal-weights 3e6 1e7 3e7] [--skip-gatys]
Uses ../shared/data's squirrel clip and Starry Night when present (or ``--data``), else a generated
panning texture and scikit-image's coffee.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from style_engine.images import load_image
from style_engine.itn.network import TransformerNet, network_from_state
from style_engine.params import parse_params
from style_engine.style_distance import style_dist
from style_engine.video.ruder import FrameReport, ruder_gatys, summarize
from style_engine.video.itn import itn_video
from tasks.video_io import VideoInfo, read_frames

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIP = Path("video") / "squirrel.mp4"
STYLE = Path("style") / "vangogh_starry_night.jpg"


def inputs(data: Path, frames: int, size: int, workdir: Path) -> tuple[list[np.ndarray], Image.Image, str]:
    """The squirrel clip and Starry Night, or a generated pan and a scikit-image picture."""
    if (data / CLIP).is_file() and (data / STYLE).is_file():
        source, style, name = data / CLIP, Image.open(data / STYLE).convert("RGB"), "squirrel.mp4 + Starry Night"
    else:
        from skimage import data as samples

        from tests.video_clips import panning_frames, write_clip

        source = write_clip(workdir / "pan.mp4", panning_frames(frames, height=size * 9 // 16, width=size), fps=25)
        style, name = Image.fromarray(samples.coffee()), "generated pan + coffee"
    info = clip_info(source)
    return list(read_frames(source, info, size=size, count=min(frames, info.frames))), style, name


def clip_info(path: Path) -> VideoInfo:
    """The clip's description: PyAV's full probe where installed, else OpenCV's header (GPU machines lack PyAV)."""
    try:
        from tasks.video_io import probe_video

        return probe_video(path)
    except ImportError:
        capture = cv2.VideoCapture(str(path))
        try:
            width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps, count = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        return VideoInfo(width, height, fps, count, count / fps, "unknown", False)


def load_network(path: Path) -> TransformerNet:
    """A stored model file (``arch`` + ``model``) or a training checkpoint (``params.arch`` + ``model``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    arch = state.get("arch") or state["params"]["arch"]
    return network_from_state(arch, state["model"])


def train_network(style: Image.Image, data: Path, steps: int, device: str) -> tuple[TransformerNet, dict[str, Any], float]:
    """A light network for ``style`` with the training defaults (256 px crops, batch 4), trained here on
    ``data``/train (or scikit-image's photos). Thousands of steps make it legible (README, fast style
    networks): a GPU's work; on a CPU pass ``--model``."""
    from style_engine.itn.params import ITNTrainParams
    from style_engine.itn.train import CropSampler, model_state, perceptual_network, prepare_photo, style_targets, train

    params = ITNTrainParams(arch="light", steps=steps, checkpoint_every=steps, validate_every=steps)
    paths = sorted((data / "train").glob("*.png"))
    if paths:
        pictures = [load_image(p) for p in paths]
    else:
        from skimage import data as samples

        pictures = [Image.fromarray(getattr(samples, name)()) for name in ("astronaut", "chelsea", "rocket", "coffee")]
    photos = [prepare_photo(picture, params.crop) for picture in pictures]
    vgg = perceptual_network(params, "caffe", torch.device(device))
    targets = style_targets(vgg, [style], [1.0], params)
    result = train(CropSampler(photos, params.crop, params.batch_size, params.seed), params, vgg, targets)
    return result.network, model_state(result, params), result.seconds


def measure(run: Callable[[], Iterator[tuple[np.ndarray, FrameReport]]], style: Image.Image, every: int,
            device: str) -> tuple[dict[str, float], list[np.ndarray]]:
    """Run one method; its summary (with the shared style distance on every ``every``-th frame) and outputs."""
    started = time.perf_counter()
    outputs, reports = [], []
    for image, report in run():
        outputs.append(image)
        reports.append(report)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    summary = summarize(reports)
    summary["wall"] = time.perf_counter() - started
    side = max(outputs[0].shape[:2])
    summary["style_dist"] = float(np.mean([style_dist(Image.fromarray(o), style, size=side) for o in outputs[::every]]))
    return summary, outputs


def departure(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Mean absolute difference (0-255) between two renderings of the same frames."""
    return float(np.mean([np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() for a, b in zip(outputs, reference)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=40, help="first frame's evaluations (Gatys rows)")
    parser.add_argument("--frame-iterations", type=int, default=25, help="later frames' evaluations (Gatys rows)")
    parser.add_argument("--temporal-weights", type=float, nargs="*", default=[], help="Ruder rows [default: the engine's]")
    parser.add_argument("--skip-gatys", action="store_true", help="only the ITN rows")
    parser.add_argument("--model", type=Path, help="a stored ITN model file (else one is trained here)")
    parser.add_argument("--train-steps", type=int, default=3000)
    parser.add_argument("--save-model", type=Path, help="where to keep the network trained here")
    parser.add_argument("--blends", type=float, nargs="+", default=[0.5], help="ITN stabilization rows")
    parser.add_argument("--style-every", type=int, default=5, help="style distance on every n-th frame")
    parser.add_argument("--save-frames", type=Path, help="folder for a contact strip (PNG) per row")
    parser.add_argument("--data", type=Path, default=DATA, help="shared data folder (video/, style/, train/)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        frames, style, name = inputs(args.data, args.frames, args.size, Path(folder))
    height, width = frames[0].shape[:2]
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
          + (f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""))
    print(f"input: {name}, {len(frames)} frames at {width}x{height}")
    rows: list[tuple[str, dict[str, float], list[np.ndarray]]] = []
    if not args.skip_gatys:
        print(f"Gatys budgets: {args.iterations} (first) / {args.frame_iterations} (later) evaluations")
        gatys = {"size": args.size, "iterations": args.iterations, "frame_iterations": args.frame_iterations}
        configs = [("per-frame Gatys", {"temporal": False})]
        configs += [(f"Ruder Gatys (temporal weight {w:g})", {"temporal_weight": w}) for w in args.temporal_weights]
        configs += [] if args.temporal_weights else [("Ruder Gatys", {})]
        for label, extra in configs:
            params = parse_params("video_gatys", gatys | extra)
            rows.append((label, *measure(lambda p=params: ruder_gatys(frames, [style], p, device=device), style,
                                         args.style_every, device)))

    if args.model is not None:
        net, origin = load_network(args.model), f"model {args.model}"
    else:
        net, state, seconds = train_network(style, args.data, args.train_steps, device)
        origin = f"light network trained here: {args.train_steps} steps in {seconds:.1f} s"
        if args.save_model is not None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            args.save_model.write_bytes(buffer.getvalue())
    net = net.to(device).eval()
    print(f"ITN: {origin}, eager fp32 on {device}")
    itn = {"model": "bench", "size": args.size}
    alone, alone_outputs = measure(lambda: itn_video(frames, net, parse_params("video_itn", itn | {"stabilize": False}),
                                                     device=device), style, args.style_every, device)
    itn_rows = [("per-frame ITN", alone, alone_outputs)]
    for blend in args.blends:
        params = parse_params("video_itn", itn | {"blend": blend})
        summary, outputs = measure(lambda p=params: itn_video(frames, net, p, device=device), style, args.style_every, device)
        summary["departure"] = departure(outputs, alone_outputs)
        itn_rows.append((f"ITN + stabilization (blend {blend:g})", summary, outputs))
    rows += itn_rows

    header = (f"{'method':<40}{'s/frame':>9}{'frames/s':>10}{'warp err':>11}{'ratio':>7}{'style_dist':>12}"
              f"{'evals/fr':>10}{'flow %':>8}{'depart':>8}")
    print(header)
    baselines = {"Gatys": rows[0][1] if not args.skip_gatys else None, "ITN": alone}
    for label, s, outputs in rows:
        base = baselines["ITN" if "ITN" in label else "Gatys"]
        ratio = s["warping_error"] / base["warping_error"] if base and base["warping_error"] else float("nan")
        print(f"{label:<40}{s['seconds_per_frame']:>9.3f}{1 / s['seconds_per_frame']:>10.2f}{s['warping_error']:>11.2e}"
              f"{ratio:>7.3f}{s['style_dist']:>12.4g}{s['iterations_per_frame']:>10.1f}{100 * s['flow_share']:>8.1f}"
              + (f"{s['departure']:>8.2f}" if "departure" in s else ""))
        if args.save_frames is not None:
            args.save_frames.mkdir(parents=True, exist_ok=True)
            strip = np.concatenate(outputs[:: max(1, len(outputs) // 6)][:6], axis=1)
            slug = "".join(c if c.isalnum() or c in ".+" else "-" for c in label.lower()).strip("-").replace("+", "p")
            Image.fromarray(strip).save(args.save_frames / f"{slug}.png")
    print("ratio: warping error against the per-frame row of the same family (Gatys, ITN); "
          "depart: mean |output - per-frame ITN| on 0-255")


if __name__ == "__main__":
    main()
