"""Benchmark: print-size Gatys renders in tiles (issue 19), on the CPU or CUDA unchanged.

Not a test. It prints, measured side by side in one run:

  * each print size (``--sizes``: a long side, or ``WxH`` to crop the photo to that aspect first):
    wall time, peak memory (the render's process's peak RSS; on CUDA also the allocator's peak),
    the tile plan, and the style distance of the output scaled to ``--reference-size`` over that of
    a direct render at that size (the high-resolution criterion, at most 1.3x);
  * the tiling overhead: seconds per evaluation at ``--overhead-size`` (default: the largest size
    that fits whole on this device) untiled against the same render forced into tiles of about
    half its side, single-scale, ``--overhead-evals`` evaluations.

Each render runs in its own process, so its peak RSS is its own. ``--max-memory-gib`` caps the
memory the tile plan may use (the CPU criterion: a 4,096 px render under 20 GiB of RSS).

Usage (the exact commands in README "Print sizes"):
  python bench/print.py --sizes 4096 --evals 32 --max-memory-gib 16 --save-dir out/print   # this CPU
  python bench/print.py --sizes 7680x4320 10800x7200 --evals 300 --save-dir out/print      # one 80 GB GPU
  python bench/print.py --dry-run                                                        # tiny, checks the script
Images: --content/--style (default ../shared/data's Tuebingen + Starry Night, else scikit-image's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from style_engine.gatys.objective import level_sizes, resolve_precision  # noqa: E402
from style_engine.images import long_side_size  # noqa: E402
from style_engine.gatys.memory import GIB, available_bytes, gatys_bytes_per_image, plan_render  # noqa: E402
from style_engine.params import GatysParams  # noqa: E402
from style_engine.style_distance import style_dist  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def main() -> None:
    args = _arguments()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        _render_one(args, device)
        return
    if args.dry_run:
        args.sizes, args.evals, args.reference_size, args.overhead_size, args.overhead_evals = ["256x160"], 4, 128, 192, 2
        args.force_tile = 128
    save = Path(args.save_dir) if args.save_dir else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    print(f"device {device}, {available_bytes(torch.device(device)) / GIB:.1f} GiB free; evaluations {args.evals} "
          f"(the default is 300)", flush=True)
    report: dict[str, object] = {"device": device, "evals": args.evals, "renders": []}
    reference = _child(args, str(args.reference_size), args.evals, save, "reference")  # fits whole
    print(f"direct {args.reference_size} px: {reference['seconds']:.1f} s, style_dist at {args.reference_size} px "
          f"{reference['style_dist']:.4g}", flush=True)
    for spec in args.sizes:
        result = _child(args, spec, args.evals, save, f"print_{spec}", tile=args.force_tile, cap_gib=args.max_memory_gib)
        ratio = result["style_dist"] / reference["style_dist"]
        print(f"{spec}: {result['width']}x{result['height']} in {result['seconds']:.1f} s, peak RSS "
              f"{result['peak_rss'] / GIB:.2f} GiB, cuda peak {result['cuda_peak'] / GIB:.2f} GiB, "
              f"tile plan {json.dumps(result['tile_plan'])}; style_dist at {args.reference_size} px "
              f"{ratio:.2f}x the direct render's (criterion <= 1.3x)", flush=True)
        report["renders"].append(result | {"style_dist_ratio": ratio})
    overhead_size = args.overhead_size or _largest_whole(args, device)
    whole = _child(args, str(overhead_size), args.overhead_evals, None, "whole", multiscale=False)
    tile = args.force_tile or max(256, overhead_size // 2 // 16 * 16)
    tiled = _child(args, str(overhead_size), args.overhead_evals, None, "tiled", multiscale=False, tile=tile)
    per_whole, per_tiled = whole["seconds"] / args.overhead_evals, tiled["seconds"] / args.overhead_evals
    print(f"tiling overhead at {overhead_size} px (single-scale, {args.overhead_evals} evaluations): whole "
          f"{per_whole:.2f} s/evaluation, in {tile} px tiles {per_tiled:.2f} s/evaluation ({per_tiled / per_whole:.2f}x; "
          f"peak RSS {whole['peak_rss'] / GIB:.2f} vs {tiled['peak_rss'] / GIB:.2f} GiB)", flush=True)
    report["overhead"] = {"size": overhead_size, "tile": tile, "whole": whole, "tiled": tiled}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


def _largest_whole(args: argparse.Namespace, device: str) -> int:
    """The largest long side (multiple of 64) whose single-scale render fits the free memory whole."""
    target = torch.device(device)
    precision = resolve_precision("auto", target)
    content = Image.open(args.content)
    size = 512
    while size < 16384:
        params = GatysParams(size=size + 64, multiscale=False)
        shape = long_side_size(content.size, size + 64)[::-1]
        if gatys_bytes_per_image(params, shape, precision) > available_bytes(target):
            break
        size += 64
    return size


def _child(args: argparse.Namespace, spec: str, evals: int, save: Path | None, name: str, *,
           multiscale: bool | None = None, tile: int | None = None, cap_gib: float | None = None) -> dict:
    """One render in its own process (its peak RSS is the render's)."""
    command = [sys.executable, __file__, "--one", spec, "--evals", str(evals), "--content", args.content,
               "--style", args.style, "--reference-size", str(args.reference_size)]
    command += ["--multiscale", str(multiscale)] if multiscale is not None else []
    command += ["--force-tile", str(tile)] if tile else []
    command += ["--max-memory-gib", str(cap_gib)] if cap_gib else []
    command += ["--save", str(save / f"{name}.png")] if save else []
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _render_one(args: argparse.Namespace, device: str) -> None:
    from style_engine.gatys.render import stylize

    content, style = Image.open(args.content).convert("RGB"), Image.open(args.style).convert("RGB")
    long_side, aspect = _parse_size(args.one)
    if aspect:
        content = _crop(content, aspect)
    multiscale = None if args.multiscale is None else args.multiscale == "True"
    params = GatysParams(size=long_side, iterations=args.evals, multiscale=multiscale)
    tile = args.force_tile
    if tile is None and args.max_memory_gib:
        target = torch.device(device)
        shapes = [long_side_size(content.size, size)[::-1] for size in level_sizes(params)]
        cap = min(int(args.max_memory_gib * GIB), available_bytes(target))
        tile = plan_render(params, shapes, resolve_precision(params.precision, target), cap, target)
    last = [time.perf_counter()]

    def progress(step: int, total: int, losses: dict[str, float]) -> None:
        if time.perf_counter() - last[0] > 30 or step == total:
            last[0] = time.perf_counter()
            print(f"  {args.one}: evaluation {step}/{total}, loss {losses['total']:.4g}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = stylize(content, [style], params, device=device, tiles=tile, on_step=progress)
    seconds = time.perf_counter() - started
    if args.save:
        result.image.save(args.save)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cuda_peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0
    print(json.dumps({
        "spec": args.one, "width": result.image.width, "height": result.image.height, "seconds": seconds,
        "peak_rss": peak_rss, "cuda_peak": cuda_peak, "tile_plan": result.tile_plan, "iterations": result.iterations,
        "style_dist": style_dist(result.image, style, size=args.reference_size, device=device),
    }))


def _parse_size(spec: str) -> tuple[int, tuple[int, int] | None]:
    """``4096`` -> (4096, None); ``7680x4320`` -> (7680, (7680, 4320))."""
    if "x" in spec:
        width, height = (int(v) for v in spec.split("x"))
        return max(width, height), (width, height)
    return int(spec), None


def _crop(image: Image.Image, aspect: tuple[int, int]) -> Image.Image:
    """The largest centred crop of ``image`` with ``aspect`` (width, height)."""
    ratio = aspect[0] / aspect[1]
    width, height = image.size
    if width / height > ratio:
        new = math.floor(height * ratio)
        return image.crop(((width - new) // 2, 0, (width - new) // 2 + new, height))
    new = math.floor(width / ratio)
    return image.crop((0, (height - new) // 2, width, (height - new) // 2 + new))


def _arguments() -> argparse.Namespace:
    default_content = DATA / "content" / "tuebingen_neckarfront.jpg"
    default_style = DATA / "style" / "vangogh_starry_night.jpg"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=None, help="long sides or WxH (default: 4096 on CPU, 8K and 10,800 px on CUDA)")
    parser.add_argument("--evals", type=int, default=None, help="evaluations per render (default: 32 on CPU, 300 on CUDA)")
    parser.add_argument("--reference-size", type=int, default=512)
    parser.add_argument("--overhead-size", type=int, default=None)
    parser.add_argument("--overhead-evals", type=int, default=5)
    parser.add_argument("--max-memory-gib", type=float, default=None, help="cap on the memory the tile plan may use")
    parser.add_argument("--force-tile", type=int, default=None, help="tile size for every render (default: planned)")
    parser.add_argument("--content", default=str(default_content) if default_content.exists() else None)
    parser.add_argument("--style", default=str(default_style) if default_style.exists() else None)
    parser.add_argument("--save-dir", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--multiscale", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    args.sizes = args.sizes or (["7680x4320", "10800x7200"] if cuda else ["4096"])
    args.evals = args.evals or (300 if cuda else 32)
    if args.content is None or args.style is None:
        args.content, args.style = _skimage_pair()
    return args


def _skimage_pair() -> tuple[str, str]:
    """scikit-image's astronaut and coffee, written once to the temp folder, where ../shared/data is absent."""
    from skimage import data

    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "atelier-print-bench"
    folder.mkdir(exist_ok=True)
    content, style = folder / "astronaut.png", folder / "coffee.png"
    Image.fromarray(data.astronaut()).save(content)
    Image.fromarray(data.coffee()).save(style)
    return str(content), str(style)


if __name__ == "__main__":
    main()
