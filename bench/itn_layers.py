"""Which VGG layers a fast style network leaves behind: per-layer style ratios on held-out photos.

Not a test. Trains one network per variant (the CPU recipe, with parameters changed by
`--variant NAME:key=value,...`), then scores each on the held-out photos at `--size` px with
`style_engine.style_distance.layer_ratios` (the output's Gram distance to the painting over the
photo's own, per layer relu1_1..relu5_1: 1.0 nothing transferred, 0 the painting) and SSIM of
luminance, and prints the seconds a training step took. One JSON line per variant and photo, then
a table. Variants run one after another in this process, so their step times share the machine's
conditions only roughly: run it on a quiet machine, or compare the ratios, not the times.

With `--time-steps N` it only times N training steps per variant, interleaved step by step.

`--model NAME=FILE` scores a network trained elsewhere (a model file of the store, as `atelier models
train` wrote it; `models show` names it) instead of training one, and `--gatys N` adds a Gatys row per
photo (N evaluations, the default parameters at `--size`) with every network's style distance over
Gatys's: the acceptance of `models train` with no options, and the deep layers before and after.

Usage (issue 22, layer balance; a few minutes a variant at 300 steps on one core):
  PYTHONPATH=. python bench/itn_layers.py --steps 300 --variant balanced: \\
      --variant unbalanced:balance_layers=false,style_layers=relu1_1+relu2_1+relu3_1+relu4_1,style_weight=5
(the CPU recipe is the balanced one; the unbalanced variant is what it was before).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from style_engine.gatys.render import stylize
from style_engine.itn.network import build_network, network_from_state, stylize_one
from style_engine.itn.params import ITNTrainParams
from style_engine.itn.recipes import TRAINING_RECIPES
from style_engine.itn.train import (
    CropSampler,
    _Loss,
    perceptual_network,
    prepare_photo,
    style_layer_weights,
    style_targets,
    train,
)
from style_engine.params import GatysParams
from style_engine.style_distance import STYLE_DIST_LAYERS, layer_ratios, luminance_ssim, style_dist

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME:key=value,key=value`; a list value joins its items with `+`; numbers and true/false are parsed."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {}
    for pair in filter(None, rest.split(",")):
        key, _, raw = pair.partition("=")
        value: Any = raw
        if "+" in raw:
            value = tuple(raw.split("+"))
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = float(raw) if any(c in raw for c in ".e") else int(raw)
            except ValueError:
                pass
        options[key] = value
    return name, options


def photos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def parse_model(text: str) -> tuple[str, Path]:
    name, _, path = text.partition("=")
    return name, Path(path)


def score(name: str, net: torch.nn.Module, args: argparse.Namespace, style: Image.Image, extra: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per held-out photo: SSIM of luminance, style distance and per-layer ratios."""
    rows = []
    for path in photos_in(args.data / "content")[: args.photos]:
        photo = Image.open(path).convert("RGB")
        out = stylize_one(net, photo, size=args.size).image
        if args.out:
            out.save(args.out / f"{name}_{path.stem}.png")
        rows.append(score_image(name, path.name, out, photo, style, args.size, extra))
    return rows


def score_image(name: str, photo_name: str, out: Image.Image, photo: Image.Image, style: Image.Image, size: int,
                extra: dict[str, Any]) -> dict[str, Any]:
    ratios = layer_ratios(out, photo, style, size)
    row = {"variant": name, "photo": photo_name, **extra, "ssim": round(luminance_ssim(out, photo), 3),
           "style_dist": round(style_dist(out, style, size)), **{layer: round(v, 3) for layer, v in ratios.items()},
           "geomean": round(math.exp(statistics.fmean(math.log(max(v, 1e-9)) for v in ratios.values())), 3)}
    print(json.dumps(row), flush=True)
    return row


def gatys_rows(args: argparse.Namespace, style: Image.Image) -> list[dict[str, Any]]:
    rows = []
    for path in photos_in(args.data / "content")[: args.photos]:
        photo = Image.open(path).convert("RGB")
        started = time.perf_counter()
        out = stylize(photo, [style], GatysParams(size=args.size, iterations=args.gatys)).image
        if args.out:
            out.save(args.out / f"gatys{args.gatys}_{path.stem}.png")
        rows.append(score_image(f"gatys-{args.gatys}", path.name, out, photo, style, args.size,
                                {"seconds": round(time.perf_counter() - started, 1)}))
    return rows


def trained_network(path: Path) -> torch.nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return network_from_state(state["arch"], state["model"], output=state.get("output", "sigmoid"),
                              pixel_scale=float(state.get("pixel_scale", 1.0)))


def run_variant(args: argparse.Namespace, name: str, options: dict[str, Any], style: Image.Image) -> list[dict[str, Any]]:
    base = {**TRAINING_RECIPES[args.recipe], "steps": args.steps, "checkpoint_every": args.steps, "validate_every": args.steps}
    params = ITNTrainParams.from_dict({**base, **options})
    photos = [prepare_photo(Image.open(p), params.crop) for p in photos_in(args.data / "train")]
    vgg = perceptual_network(params, "caffe", torch.device("cpu"))
    targets = style_targets(vgg, [style], [1.0], params)
    started = time.perf_counter()

    def on_step(step: int, total: int, losses: dict[str, float]) -> None:
        if step % 50 == 0:
            print(f"{name}: step {step}/{total} {time.perf_counter() - started:.0f} s "
                  + " ".join(f"{k} {v:.4g}" for k, v in losses.items()), flush=True)

    result = train(CropSampler(photos, params.crop, params.batch_size, params.seed), params, vgg, targets, on_step=on_step)
    per_step = result.seconds / result.steps
    if args.out:
        torch.save({"arch": params.arch, "params": params.to_dict(), "model": result.network.state_dict()}, args.out / f"{name}.pt")
    return score(name, result.network, args, style, {"s_per_step": round(per_step, 3),
                                                      "layer_weights": {k: float(f"{v:.3g}") for k, v in result.layer_weights.items()}})


def time_steps(args: argparse.Namespace, variants: list[tuple[str, dict[str, Any]]], style: Image.Image) -> None:
    """Median seconds of a training step per variant, the variants' steps interleaved one by one, so
    that a busy machine slows them alike (the training runs' own times are not comparable then)."""
    runs = {}
    for name, options in variants:
        base = {**TRAINING_RECIPES[args.recipe], "steps": 1, "checkpoint_every": 1, "validate_every": 1}
        params = ITNTrainParams.from_dict({**base, **options})
        photos = [prepare_photo(Image.open(p), params.crop) for p in photos_in(args.data / "train")]
        vgg = perceptual_network(params, "caffe", torch.device("cpu"))
        targets = style_targets(vgg, [style], [1.0], params)
        net = build_network(params.arch, params.seed).train()
        runs[name] = (CropSampler(photos, params.crop, params.batch_size, params.seed), net,
                      torch.optim.Adam(net.parameters(), lr=params.learning_rate),
                      _Loss(vgg, targets, params, style_layer_weights(vgg, photos, targets, params)))
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(args.time_steps):
        for name, (sampler, net, optimizer, loss_fn) in runs.items():
            started = time.perf_counter()
            total, _ = loss_fn(net, sampler.batch(step))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            seconds[name].append(time.perf_counter() - started)
    for name, values in seconds.items():
        print(json.dumps({"variant": name, "median_s_per_step": round(statistics.median(values), 3), "steps_timed": len(values)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--style", type=Path, help="default: DATA/style/vangogh_starry_night.jpg")
    parser.add_argument("--recipe", default="cpu", choices=sorted(TRAINING_RECIPES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--photos", type=int, default=4, help="at most this many held-out photos (content/)")
    parser.add_argument("--variant", action="append", type=parse_variant, default=[])
    parser.add_argument("--model", action="append", type=parse_model, default=[], help="NAME=FILE: score a trained network")
    parser.add_argument("--gatys", type=int, default=0, help="add Gatys rows with this many evaluations")
    parser.add_argument("--out", type=Path, help="keep the networks and outputs here")
    parser.add_argument("--time-steps", type=int, default=0, help="only time this many steps per variant, interleaved")
    args = parser.parse_args()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    style = Image.open(args.style or args.data / "style" / "vangogh_starry_night.jpg").convert("RGB")
    if args.time_steps:
        time_steps(args, args.variant, style)
        return
    rows = [row for name, options in args.variant for row in run_variant(args, name, options, style)]
    rows += [row for name, path in args.model for row in score(name, trained_network(path), args, style, {})]
    reference = gatys_rows(args, style) if args.gatys else []
    gatys = {row["photo"]: row["style_dist"] for row in reference}
    rows += reference
    print(f"{'variant':<14} {'photo':<28} {'s/step':>7} {'ssim':>6} {'dist/gatys':>10} "
          + " ".join(f"{l:>8}" for l in STYLE_DIST_LAYERS) + "  geomean")
    for row in rows:
        versus = f"{row['style_dist'] / gatys[row['photo']]:.2f}" if row["photo"] in gatys else "-"
        print(f"{row['variant']:<14} {row['photo']:<28} {row.get('s_per_step', '-'):>7} {row['ssim']:>6} {versus:>10} "
              + " ".join(f"{row[l]:>8}" for l in STYLE_DIST_LAYERS) + f"  {row['geomean']:>7}")


if __name__ == "__main__":
    main()
