"""Benchmark: how a segment that starts inside a shot takes over from the one before it (issue 20).

Not a test. One shot of the squirrel clip (or a generated pan) is rendered in one go, then its
second part again as a separate segment, the way another host would, and the seam is compared:

- Ruder (video Gatys): the segment handed the previous segment's last outputs (the hand-over the
  fleet uses: the same bytes as one go, checked here), against starting from scratch at the seam
  (``--overlaps 0``) or ``K`` frames earlier as a warm-up. For each: the seam's warping error
  (Lai et al.) over the stitched clip's mean (acceptance: at most 1.5), and a PNG of the frames
  around each seam, one row per variant (``--png``), to look at.
- Fast video: the segment warmed up over ``K`` frames from scratch, for each ``--itn-overlaps``; the
  largest difference to the one-go frames it owns, on 0-255 (acceptance: at most 1), and the
  warming frames' share of a segment.
- Per-segment overhead: what a fresh stylizer costs before its first frame (VGG and style targets
  for Ruder; building the network for fast video), against the steady seconds per frame, so that
  the segment length can be chosen (the overhead's share of a segment of ``L`` frames is printed).

Needs only torch, OpenCV, NumPy, Pillow (PyAV where installed). ``--device auto`` picks CUDA.
Usage: .venv/bin/python bench/video_handover.py [--frames 12] [--seam 6] [--size 128] [--iterations 24]
       [--frame-iterations 10] [--overlaps 0 4] [--itn-frames 40] [--itn-seam 20] [--itn-size 160]
       [--itn-overlaps 0 2 4 6 8 10 12] [--model PATH] [--png /tmp/seams.png] [--skip-gatys] [--skip-itn]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from style_engine.device import resolve_device
from style_engine.itn.network import TransformerNet
from style_engine.params import parse_params
from style_engine.video.shots import Segment, seam_errors, stylize_segment
from style_engine.video.ruder import RuderGatys, stylize_clip
from style_engine.video.itn import StabilizedITN

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLIP = Path("video") / "squirrel.mp4"
STYLE = Path("style") / "vangogh_starry_night.jpg"
SEGMENT_LENGTHS = (50, 100, 200, 400)


def clip(data: Path, count: int, size: int) -> list[np.ndarray]:
    """The squirrel clip's first ``count`` frames at ``size`` px, or a generated pan without the data."""
    source = data / CLIP
    if source.is_file():
        from tasks.video_io import probe_video, read_frames

        info = probe_video(source)
        return list(read_frames(source, info, size=size, count=min(count, info.frames)))
    from tests.video_clips import panning_frames

    print(f"  (no {source}: a generated pan instead; pass --data)")
    return panning_frames(count, height=size * 9 // 16 // 2 * 2, width=size, step=2)


def style_image(data: Path) -> Image.Image:
    if (data / STYLE).is_file():
        return Image.open(data / STYLE).convert("RGB")
    from skimage import data as samples

    print(f"  (no {data / STYLE}: scikit-image's coffee as the style instead)")

    return Image.fromarray(samples.coffee())


def fresh_stylizer(style: Image.Image, params: object, device: torch.device) -> RuderGatys:
    """A stylizer with nothing cached, as on another host."""
    return RuderGatys([style], params, device=device)  # type: ignore[arg-type]


def strip(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(list(frames), axis=1)


def gatys(args: argparse.Namespace, device: torch.device) -> None:
    frames = clip(args.data, args.frames, args.size)
    seam = args.seam
    params = parse_params("video_gatys", {"size": args.size, "iterations": args.iterations,
                                          "frame_iterations": args.frame_iterations})
    style = style_image(args.data)
    started = time.perf_counter()
    stylizer = RuderGatys([style], params, device=device)
    rendered = list(stylize_clip(frames, stylizer, params))
    one_go = [image for image, _ in rendered]
    first, later = rendered[0][1], [r for _, r in rendered[1:]]
    per_frame = float(np.mean([r.seconds + r.flow_seconds for r in later]))
    print(f"Ruder, {len(frames)} frames at {frames[0].shape[1]}x{frames[0].shape[0]}, seam at frame {seam}; "
          f"one go {time.perf_counter() - started:.1f} s, {per_frame:.2f} s/frame after the first")
    rows = [("one go", one_go)]
    depth = max(params.long_term)
    handed = Segment(1, seam, len(frames), seam - depth, False)
    part = list(stylize_segment(frames[seam - depth :], stylizer, params, handed, [], previous=one_go[seam - depth : seam]))
    stitched = one_go[:seam] + [image for image, _ in part]
    same = all(np.array_equal(a, b) for a, b in zip(one_go, stitched))
    report = seam_errors(frames, stitched, [Segment(0, 0, seam, 0, True), handed], [])
    print(f"  hand-over (previous {depth} outputs): same bytes as one go: {same}; seam ratio {report.worst:.2f} "
          f"(seam {report.seams[seam]:.3e}, clip mean {report.mean:.3e})")
    for overlap in args.overlaps:
        # What stylize_segment does without `previous`: the chain starts from scratch `overlap` frames early.
        segment = Segment(1, seam, len(frames), seam - overlap, False)
        clock = time.perf_counter()
        part = [image for image, _ in stylize_clip(frames[seam - overlap :], fresh_stylizer(style, params, device), params)]
        seconds = time.perf_counter() - clock
        stitched = one_go[:seam] + part[overlap:]
        report = seam_errors(frames, stitched, [Segment(0, 0, seam, 0, True), segment], [])
        print(f"  from scratch, {overlap} warm-up frames: seam ratio {report.worst:.2f} (seam {report.seams[seam]:.3e}, "
              f"clip mean {report.mean:.3e}); mean |difference| to one go at the seam "
              f"{np.abs(stitched[seam].astype(int) - one_go[seam].astype(int)).mean():.1f}/255; {seconds:.1f} s")
        rows.append((f"scratch, {overlap} warm-up", stitched))
        if overlap and args.crossfade:
            # The parallel alternative: the segment keeps its warm-up outputs, and the stitcher fades
            # from the previous segment's last frames into them over the overlap.
            weights = np.arange(1, overlap + 1) / (overlap + 1)
            faded = [np.round((1 - w) * a + w * b).astype(np.uint8)
                     for w, a, b in zip(weights, one_go[seam - overlap : seam], part[:overlap])]
            stitched = one_go[: seam - overlap] + faded + part[overlap:]
            inside = [Segment(1, t, t + 1, t - 1, False) for t in range(seam - overlap, seam + 1)]
            report = seam_errors(frames, stitched, inside, [])
            print(f"  cross-fade over those {overlap} frames: worst ratio in the fade {report.worst:.2f} "
                  f"({', '.join(f'{r:.2f}' for r in report.ratios.values())}), clip mean {report.mean:.3e}")
            rows.append((f"cross-fade over {overlap}", stitched))
    warm = RuderGatys([style], params, device=device)
    clock = time.perf_counter()
    list(stylize_clip(frames[:1], warm, params))
    cold_first = time.perf_counter() - clock
    clock = time.perf_counter()
    list(stylize_clip(frames[1:2], warm, params))
    warm_first = time.perf_counter() - clock
    setup = max(cold_first - warm_first, 0.0)
    print(f"  per-segment overhead: a fresh stylizer's setup (VGG, style targets) {setup:.2f} s; the hand-over reads "
          f"{depth} context frames (flow only); first frame {first.seconds:.1f} s")
    overhead(setup, 0, per_frame)
    if args.png:
        window = slice(max(seam - 2, 0), min(seam + 2, len(frames)))
        sheet = np.concatenate([strip(frames[window])] + [strip(outputs[window]) for _, outputs in rows], axis=0)
        Image.fromarray(sheet).save(args.png)
        print(f"  {args.png}: frames {window.start}..{window.stop - 1}, rows: input, " + ", ".join(n for n, _ in rows))


def itn(args: argparse.Namespace, device: torch.device) -> None:
    frames = clip(args.data, args.itn_frames, args.itn_size)
    seam = args.itn_seam
    params = parse_params("video_itn", {"model": "bench", "size": args.itn_size})
    clock = time.perf_counter()
    if args.model:
        from bench.video import load_network

        net = load_network(args.model)
    else:
        torch.manual_seed(0)
        net = TransformerNet()
    net = net.eval().to(device)
    setup = time.perf_counter() - clock
    rendered = list(stylize_clip(frames, StabilizedITN(net, device=device), params))
    one_go = [image for image, _ in rendered]
    per_frame = float(np.mean([r.seconds + r.flow_seconds for _, r in rendered[1:]]))
    print(f"Fast video ({'model ' + str(args.model) if args.model else 'an untrained network, seed 0'}), "
          f"{len(frames)} frames at {frames[0].shape[1]}x{frames[0].shape[0]}, seam at {seam}; {per_frame:.3f} s/frame")
    needed = None
    for overlap in args.itn_overlaps:
        segment = Segment(1, seam, len(frames), seam - overlap, False)
        part = [image for image, _ in stylize_segment(frames[seam - overlap :], StabilizedITN(net, device=device),
                                                      params, segment, [])]
        differences = [int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(part, one_go[seam:])]
        print(f"  {overlap:2d} warm-up frames: largest difference to one go {max(differences)}/255 "
              f"(at the seam {differences[0]}, share of pixels off at the seam "
              f"{float((part[0] != one_go[seam]).any(axis=-1).mean()):.3f})")
        if needed is None and max(differences) <= 1:
            needed = overlap
    print(f"  warm-up needed for at most 1/255: {needed if needed is not None else 'more than tried'} frames; "
          f"network setup {setup:.2f} s (a stored model's load and export come on top, in tasks/)")
    overhead(setup, needed or max(args.itn_overlaps), per_frame)


def overhead(setup: float, warm_up: int, per_frame: float) -> None:
    shares = ", ".join(f"{length} frames {(setup + warm_up * per_frame) / (length * per_frame):.1%}"
                       for length in SEGMENT_LENGTHS)
    print(f"  per-segment overhead as a share of the segment's own work: {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--seam", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=24)
    parser.add_argument("--frame-iterations", type=int, default=10)
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--png", default="/tmp/seams.png")
    parser.add_argument("--crossfade", action="store_true", help="also measure a stitch-time cross-fade over the overlap")
    parser.add_argument("--itn-frames", type=int, default=40)
    parser.add_argument("--itn-seam", type=int, default=20)
    parser.add_argument("--itn-size", type=int, default=160)
    parser.add_argument("--itn-overlaps", type=int, nargs="+", default=[0, 2, 4, 6, 8, 10, 12])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--skip-gatys", action="store_true")
    parser.add_argument("--skip-itn", action="store_true")
    args = parser.parse_args()
    if not 0 < args.seam < args.frames or not 0 < args.itn_seam < args.itn_frames:
        parser.error("--seam must lie inside the clip (and --itn-seam inside --itn-frames)")
    if min(args.overlaps, default=0) < 0 or min(args.overlaps, default=0) > args.seam:
        parser.error("--overlaps must lie within 0..--seam")
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}"
          + (f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""))
    if not args.skip_itn:
        itn(args, device)
    if not args.skip_gatys:
        gatys(args, device)


if __name__ == "__main__":
    main()
