"""Acceptance of a fast style network: train one on photos, then set it against Gatys on photos it
never saw.

Not a test. Trains a network for the style (time-bounded: it stops at `--max-seconds` and keeps the
last checkpoint), then, for every held-out photo at `--size` px, prints one JSON line with the
network's and Gatys's (`--gatys-iterations` evaluations) style distance (style_engine.style_distance),
SSIM of luminance to the photo, and seconds, and ends with the ratios the acceptance criteria name:
style_dist ITN / Gatys (at most 3), ITN SSIM (at least 0.3), and Gatys time / ITN time (at least 100).
Writes the model, every output and a photo | network | Gatys sheet to `--out`. With `--eval-steps`,
the checkpoints of those steps are scored too, so one run shows what a shorter training (say, what a
slower device does in an hour) would give.

Runs unchanged on CUDA (`--device cuda`); the clocks synchronize there.

Training follows a recipe of `models train` (`--recipe gpu`, the default, or `cpu`); options override
its values. The GPU recipe's acceptance (issue 22), one device call of about 20 minutes on an H200:
  PYTHONPATH=. python bench/itn_acceptance.py --recipe gpu --device cuda --compile --max-seconds 1500 \
      --eval-steps 5000,10000,20000 --checkpoint-every 1000
(`bash bench/cuda_checks.sh --itn-acceptance` runs it on the device machine.) The CPU recipe's, about an
hour on this project's 2-core VM:
  PYTHONPATH=. python bench/itn_acceptance.py --recipe cpu --device cpu --size 256 --eval-steps 500,1000

Usage: PYTHONPATH=. python bench/itn_acceptance.py --data ../shared/data --out /tmp/itn-acceptance
       (DATA holds train/*.png, content/* (held out) and style/vangogh_starry_night.jpg)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from style_engine.device import resolve_device
from style_engine.gatys.render import stylize
from style_engine.itn.network import network_from_state, stylize_one
from style_engine.itn.params import ITNTrainParams
from style_engine.itn.recipes import TRAINING_RECIPES, with_recipe
from style_engine.itn.train import CropSampler, perceptual_network, prepare_photo, style_targets, train
from style_engine.params import GatysParams
from style_engine.style_distance import luminance_ssim, style_dist

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


class TimeUp(Exception):
    """The training budget is spent: keep the last checkpoint."""


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[Any, float]:
    """`fn()` and its wall time, with the device's queue drained on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - started


def train_network(args: argparse.Namespace, device: torch.device, style: Image.Image) -> tuple[dict[int, torch.nn.Module], dict]:
    """Train until `--steps` or `--max-seconds`, whichever comes first.

    Returns the network of the last checkpoint, and of each checkpoint at a step of `--eval-steps`
    (so that one run shows how quality grows with training: what an hour buys on a slower device).
    """
    given = {"arch": args.arch, "steps": args.steps, "batch_size": args.batch_size, "crop": args.crop,
             "learning_rate": args.learning_rate, "style_weight": args.style_weight, "style_size": args.style_size}
    params = ITNTrainParams.from_dict({**with_recipe({k: v for k, v in given.items() if v is not None} | {"recipe": args.recipe}, ""),
                                       "checkpoint_every": args.checkpoint_every, "validate_every": args.checkpoint_every})
    print("training parameters", json.dumps(params.to_dict()), flush=True)
    photos = [prepare_photo(Image.open(p), params.crop) for p in photos_in(args.data / "train")]
    vgg = perceptual_network(params, "caffe", device)
    targets = style_targets(vgg, [style], [1.0], params)
    sampler = CropSampler(photos, params.crop, params.batch_size, params.seed)
    latest: dict[str, Any] = {}
    kept: dict[int, dict[str, torch.Tensor]] = {}
    started = time.perf_counter()

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        if step % 100 == 0:
            print(f"step {step}/{total} {time.perf_counter() - started:.0f} s "
                  + " ".join(f"{k} {v:.4g}" for k, v in losses.items()), flush=True)
        if time.perf_counter() - started > args.max_seconds and latest:
            raise TimeUp

    def on_checkpoint(checkpoint: dict) -> None:
        latest.clear()
        latest.update(checkpoint)
        if checkpoint["step"] in args.eval_steps:
            kept[checkpoint["step"]] = checkpoint["model"]

    try:
        train(sampler, params, vgg, targets, on_step=on_step, on_checkpoint=on_checkpoint, compile=args.compile)
    except TimeUp:
        print(f"time budget of {args.max_seconds:.0f} s spent: keeping the checkpoint of step {latest['step']}")
    seconds = time.perf_counter() - started
    summary = {"arch": params.arch, "steps": latest["step"], "batch_size": params.batch_size, "crop": params.crop,
               "learning_rate": params.learning_rate, "style_size": params.style_size, "seconds": round(seconds, 1),
               "s_per_step": round(seconds / max(latest["step"], 1), 4), "photos": len(photos), "precision": vgg.precision,
               "final_losses": latest["losses"]}
    kept[latest["step"]] = latest["model"]
    torch.save({"arch": params.arch, "params": params.to_dict(), "model": {k: v.cpu() for k, v in latest["model"].items()}},
               args.out / f"itn_{params.arch}_{latest['step']}.pt")
    networks = {step: network_from_state(params.arch, state).to(device).eval() for step, state in sorted(kept.items())}
    return networks, summary


def compare(args: argparse.Namespace, device: torch.device, networks: dict[int, torch.nn.Module],
            style: Image.Image) -> dict[int, list[dict]]:
    """Per network (by training step), one row per held-out photo against Gatys (run once per photo)."""
    rows: dict[int, list[dict]] = {step: [] for step in networks}
    sheet = []
    autocast = device.type == "cuda"
    final = max(networks)
    for path in photos_in(args.data / "content")[: args.photos]:
        photo = Image.open(path).convert("RGB")
        gatys, gatys_seconds = timed(device, lambda: stylize(photo, [style], GatysParams(size=args.size, iterations=args.gatys_iterations),
                                                             device=device))
        gatys_dist = style_dist(gatys.image, style, args.size)
        for step, net in networks.items():
            times = [timed(device, lambda: stylize_one(net, photo, size=args.size, device=device, autocast_bf16=autocast))[1]
                     for _ in range(3)]
            ours = stylize_one(net, photo, size=args.size, device=device, autocast_bf16=autocast).image
            row = {"step": step, "photo": path.name, "itn_style_dist": style_dist(ours, style, args.size),
                   "gatys_style_dist": gatys_dist, "photo_style_dist": style_dist(photo, style, args.size),
                   "itn_ssim": luminance_ssim(ours, photo), "gatys_ssim": luminance_ssim(gatys.image, photo),
                   "itn_seconds": statistics.median(times), "gatys_seconds": gatys_seconds}
            row["style_dist_ratio"] = row["itn_style_dist"] / row["gatys_style_dist"]
            row["speedup"] = row["gatys_seconds"] / row["itn_seconds"]
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            ours.save(args.out / f"itn_{step}_{path.stem}.png")
            rows[step].append(row)
            if step == final:
                sheet.append((photo.resize(ours.size), ours, gatys.image.resize(ours.size)))
        gatys.image.save(args.out / f"gatys_{path.stem}.png")
    save_sheet(sheet, args.out / "sheet.png")
    return rows


def save_sheet(rows: list[tuple[Image.Image, ...]], path: Path) -> None:
    """Photo | network | Gatys, one held-out photo a row, each row scaled to 256 px high."""
    scaled = [[im.resize((im.width * 256 // im.height, 256)) for im in row] for row in rows]
    canvas = Image.new("RGB", (max(sum(im.width for im in row) for row in scaled), 256 * len(scaled)), "white")
    for y, row in enumerate(scaled):
        x = 0
        for im in row:
            canvas.paste(im, (x, 256 * y))
            x += im.width
    canvas.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--style", type=Path, help="default: DATA/style/vangogh_starry_night.jpg")
    parser.add_argument("--out", type=Path, default=Path("/tmp/itn-acceptance"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--recipe", default="gpu", choices=sorted(TRAINING_RECIPES),
                        help="the training recipe (style_engine/itn/recipes.py); the options below override its values")
    parser.add_argument("--arch", choices=["johnson", "light"])
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--crop", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--style-weight", type=float)
    parser.add_argument("--style-size", type=int)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--gatys-iterations", type=int, default=300)
    parser.add_argument("--photos", type=int, default=100, help="at most this many held-out photos")
    parser.add_argument("--eval-steps", type=lambda text: {int(v) for v in text.split(",")}, default=set(),
                        help="also score the checkpoints of these steps (multiples of --checkpoint-every), e.g. 500,1000")
    parser.add_argument("--compile", action="store_true", help="train under torch.compile (pays on a GPU)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    print(f"device {device}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else f", {torch.get_num_threads()} threads")
          + f", torch {torch.__version__}", flush=True)
    style = Image.open(args.style or args.data / "style" / "vangogh_starry_night.jpg").convert("RGB")
    networks, training = train_network(args, device, style)
    print("training", json.dumps(training), flush=True)
    for step, rows in compare(args, device, networks, style).items():
        ratios = [r["style_dist_ratio"] for r in rows]
        print(f"after {step} steps: style_dist ITN/Gatys median {statistics.median(ratios):.2f}, worst {max(ratios):.2f} "
              f"(target <= 3); ITN SSIM of luminance min {min(r['itn_ssim'] for r in rows):.3f} (target >= 0.3; "
              f"Gatys min {min(r['gatys_ssim'] for r in rows):.3f}); speed-up over Gatys {args.gatys_iterations} "
              f"min {min(r['speedup'] for r in rows):.0f}x (target >= 100)", flush=True)


if __name__ == "__main__":
    main()
