"""Training a fast style network: a pure function of (data, params, VGG, callbacks).

Perceptual loss (Johnson et al. 2016) through the engine's own :class:`VGGFeatures`: a content term
(MSE of activations against those of the photo), Gram style terms against the style's Grams (fp32,
whatever precision the networks run in) and total variation. Adam. On a GPU with native bf16, both
networks run under bf16 autocast; a CPU trains in fp32 (see :func:`perceptual_network`).

Determinism and resumption: the crops of step ``s`` are a pure function of ``(seed, s)``
(:class:`CropSampler`), so the data order needs no saved cursor; a checkpoint holds the model, the
optimizer, the global RNG state and the step. Resuming from it replays exactly the steps an
uninterrupted run would have taken: on the CPU the final weights are bit-identical.

Nothing here touches files: checkpoints are handed to a callback as a dict, and the caller stores
them (the store keys them by sha256).
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from PIL import Image

from style_engine.errors import InvalidInputError, OptimizationError
from style_engine.gatys.render import resolve_precision
from style_engine.images import image_to_tensor, resize_long_side
from style_engine.itn.network import MIN_SIDE, TransformerNet, build_network
from style_engine.itn.params import ITNTrainParams
from style_engine.losses import balanced_layer_weights, blend_grams, tv_loss
from style_engine.vgg import VGGFeatures

CHECKPOINT_FORMAT = "atelier-itn-checkpoint/1"
MODEL_FORMAT = "atelier-itn-model/1"
# Photos are scaled so their short side is this many crops: a crop then holds a good part of the
# scene, at about the scale of a 512 px stylization, rather than a patch of pixels.
CONTEXT = 1.25

StepCallback = Callable[[int, int, dict[str, float]], None]
LOSS_NAMES = ("total", "content", "style", "tv")
Checkpoint = dict[str, Any]


class TrainingDivergedError(OptimizationError):
    """The loss became NaN or infinite; the weights of the last good checkpoint are the ones to keep."""


def prepare_photo(image: Image.Image, crop: int) -> torch.Tensor:
    """A training photo as a (3, H, W) uint8 tensor whose short side is ``CONTEXT * crop`` px."""
    rgb = image.convert("RGB")
    short = round(CONTEXT * crop)
    scale = short / min(rgb.size)
    resized = resize_long_side(rgb, max(short, round(max(rgb.size) * scale)))
    return (image_to_tensor(resized)[0] * 255).round().to(torch.uint8)


def usable(image: Image.Image) -> bool:
    """Whether a photo can feed training (big enough that scaling it up does not just blur)."""
    return min(image.size) >= MIN_SIDE * 4


def dataset_sha256(photos: Sequence[torch.Tensor]) -> str:
    """Content hash of a prepared dataset, in order: two trainings on the same pixels share it."""
    digest = hashlib.sha256()
    for photo in photos:
        digest.update(repr(tuple(photo.shape)).encode())
        digest.update(photo.contiguous().numpy().tobytes())
    return digest.hexdigest()


class CropSampler:
    """Random ``crop`` px crops with random horizontal flips, as a pure function of (seed, step).

    Because step ``s``'s batch never depends on earlier draws, resuming at step ``s`` needs no
    data-order state beyond the step itself.
    """

    def __init__(self, photos: Sequence[torch.Tensor], crop: int, batch_size: int, seed: int) -> None:
        if not photos:
            raise InvalidInputError("training data: no usable image")
        small = [tuple(p.shape[1:]) for p in photos if min(p.shape[1:]) < crop]
        if small:
            raise InvalidInputError(f"training data: photos of size {small[0]} are smaller than the {crop} px crop")
        self.photos = list(photos)
        self.crop = crop
        self.batch_size = batch_size
        self.seed = seed

    def batch(self, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        crops = []
        for index in torch.randint(len(self.photos), (self.batch_size,), generator=generator).tolist():
            photo = self.photos[index]
            _, height, width = photo.shape
            top = int(torch.randint(height - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(width - self.crop + 1, (1,), generator=generator))
            patch = photo[:, top : top + self.crop, left : left + self.crop]
            if bool(torch.rand((), generator=generator) < 0.5):
                patch = patch.flip(-1)
            crops.append(patch)
        return torch.stack(crops).float() / 255.0


def validation_batch(photos: Sequence[torch.Tensor], crop: int) -> torch.Tensor:
    """Centre crops of the validation photos: a fixed batch, so its losses are comparable over time."""
    crops = []
    for photo in photos:
        _, height, width = photo.shape
        top, left = (height - crop) // 2, (width - crop) // 2
        crops.append(photo[:, top : top + crop, left : left + crop])
    return torch.stack(crops).float() / 255.0


def perceptual_network(params: ITNTrainParams, weights: str, device: torch.device) -> VGGFeatures:
    """The VGG the loss reads, truncated at the deepest loss layer, in the precision training uses.

    "auto" means fp32 on a CPU, unlike Gatys: a training step (both networks forward, and backward
    through the transformer's convolutions) took 39 s in bf16 and 13 s in fp32 on the 2-core EPYC
    (light network, batch 8 at 256 px), nearly all of it in oneDNN's bf16 convolutions.
    """
    precision = "fp32" if params.precision == "auto" and device.type == "cpu" else resolve_precision(params.precision, device)
    return VGGFeatures(weights, params.content_layers + params.style_layers, "max", device, precision)


def batch_gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices (N, C, C) of (N, C, H, W) activations, divided by C*H*W, in float32."""
    n, c, h, w = features.shape
    flat = features.float().reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def style_targets(
    vgg: VGGFeatures,
    styles: Sequence[Image.Image],
    blend: Sequence[float],
    params: ITNTrainParams,
) -> dict[str, torch.Tensor]:
    """Blended Gram targets of the style images at long side ``params.style_size``."""
    per_style = []
    for style in styles:
        tensor = image_to_tensor(resize_long_side(style.convert("RGB"), params.style_size), vgg.device)
        with torch.no_grad():
            features = vgg(tensor)
        per_style.append({name: batch_gram(features[name])[0] for name in params.style_layers})
    return blend_grams(per_style, blend)


@dataclass
class TrainResult:
    """A trained network and the figures a Model row records."""

    network: TransformerNet
    steps: int
    losses: dict[str, float]  # the last training step's
    validation_losses: dict[str, float]  # at the end
    seconds: float  # wall time of this call (a resumed run counts only its own part)
    precision: str
    history: list[dict[str, float]] = field(default_factory=list)  # validation losses over time
    layer_weights: dict[str, float] = field(default_factory=dict)  # each style layer's, balanced or not


def photo_layer_distances(vgg: VGGFeatures, photos: torch.Tensor, targets: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Per style layer, the training photos' own Gram distance to the style (mean over ``photos``):
    the yardstick of layer balance, as Gatys's balance uses the one photo it paints."""
    with torch.no_grad():
        features = vgg(photos.to(vgg.device))
        return {name: float(F.mse_loss(batch_gram(features[name]), target.expand(len(photos), -1, -1)))
                for name, target in targets.items()}


def style_layer_weights(
    vgg: VGGFeatures, photos: Sequence[torch.Tensor], targets: Mapping[str, torch.Tensor], params: ITNTrainParams
) -> dict[str, float]:
    """Each style layer's weight: 1/L, divided with ``balance_layers`` by the photos' own distance at
    that layer (their centre crops), so that every layer's term starts near 1 and relu5_1's gradient
    is no longer a rounding error beside relu1_1's."""
    even = {name: 1.0 / len(params.style_layers) for name in params.style_layers}
    if not params.balance_layers:
        return even
    return balanced_layer_weights(even, photo_layer_distances(vgg, validation_batch(photos, params.crop), targets))


class _Loss:
    """The perceptual objective of one training run."""

    def __init__(
        self, vgg: VGGFeatures, targets: Mapping[str, torch.Tensor], params: ITNTrainParams, layer_weights: Mapping[str, float]
    ) -> None:
        self.vgg = vgg
        self.targets = targets
        self.params = params
        self.layer_weights = dict(layer_weights)

    def __call__(self, net: nn.Module, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The total loss (for backward) and the detached (total, content, style, tv) values."""
        p = self.params
        with torch.autocast(photos.device.type, dtype=torch.bfloat16, enabled=self.vgg.precision == "bf16"):
            output = net(photos).float()
        with torch.no_grad():
            reference = self.vgg(photos)
        features = self.vgg(output)
        content = sum(F.mse_loss(features[n].float(), reference[n].float()) for n in p.content_layers)
        style = sum(
            self.layer_weights[n] * F.mse_loss(batch_gram(features[n]), self.targets[n].expand(len(photos), -1, -1))
            for n in p.style_layers
        )
        terms = torch.stack([p.content_weight * content, p.style_weight * style, p.tv_weight * tv_loss(output)])
        total = terms.sum()
        return total, torch.cat([total.detach()[None], terms.detach()])


def _named(values: torch.Tensor) -> dict[str, float]:
    """The loss terms as numbers: one device sync per step rather than one per term."""
    return dict(zip(LOSS_NAMES, values.tolist()))


def train(
    sampler: CropSampler,
    params: ITNTrainParams,
    vgg: VGGFeatures,
    targets: Mapping[str, torch.Tensor],
    *,
    validation: torch.Tensor | None = None,
    resume: Checkpoint | None = None,
    on_step: StepCallback | None = None,
    on_validation: Callable[[int, dict[str, float]], None] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    compile: bool = False,
) -> TrainResult:
    """Train ``params.steps`` steps (continuing ``resume`` if given) and return the network.

    ``compile`` runs both networks under ``torch.compile``: on a GPU a step is mostly kernel
    launches, which compiling fuses; the weights, checkpoints and losses are the same objects.

    ``on_checkpoint`` receives a checkpoint every ``params.checkpoint_every`` steps and at the end.
    A NaN or infinite loss raises :class:`TrainingDivergedError` before the optimizer applies it, so
    the last checkpoint handed out stays the last good one.
    """
    started = time.perf_counter()
    device = vgg.device
    net = build_network(params.arch, params.seed).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=params.learning_rate)
    step, losses, history = 0, {}, []
    if resume is not None:
        step, losses, history = _restore(resume, params, net, optimizer)
    layer_weights = style_layer_weights(vgg, sampler.photos, targets, params)
    loss_fn = _Loss(torch.compile(vgg) if compile else vgg, targets, params, layer_weights)
    forward = torch.compile(net) if compile else net
    val_losses: dict[str, float] = {}
    last_good = step if resume is not None else None
    while step < params.steps:
        photos = sampler.batch(step).to(device, non_blocking=True)
        total, detached = loss_fn(forward, photos)
        values = _named(detached)
        if not math.isfinite(values["total"]):
            kept = f"the last good checkpoint is step {last_good}" if last_good is not None else "no checkpoint was made yet"
            raise TrainingDivergedError(
                f"training diverged at step {step + 1}: the loss is {values['total']} ({kept}); "
                f"lower learning_rate or the loss weights"
            )
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        step, losses = step + 1, values
        if on_step is not None:
            on_step(step, params.steps, values)
        if validation is not None and (step % params.validate_every == 0 or step == params.steps):
            val_losses = evaluate(forward, loss_fn, validation.to(device))
            history.append({"step": float(step), **val_losses})
            if on_validation is not None:
                on_validation(step, val_losses)
        if on_checkpoint is not None and (step % params.checkpoint_every == 0 or step == params.steps):
            on_checkpoint(_checkpoint(step, params, net, optimizer, losses, history))
            last_good = step
    net.eval().requires_grad_(False)
    return TrainResult(
        network=net,
        steps=step,
        losses=losses,
        validation_losses=val_losses,
        seconds=time.perf_counter() - started,
        precision=vgg.precision,
        history=history,
        layer_weights=layer_weights,
    )


def evaluate(net: nn.Module, loss_fn: _Loss, photos: torch.Tensor) -> dict[str, float]:
    """Losses on a fixed batch, without training (the network is put back in training mode)."""
    net.eval()
    with torch.no_grad():
        _, values = loss_fn(net, photos)
    net.train()
    return _named(values)


def _checkpoint(
    step: int,
    params: ITNTrainParams,
    net: TransformerNet,
    optimizer: torch.optim.Optimizer,
    losses: dict[str, float],
    history: list[dict[str, float]],
) -> Checkpoint:
    return {
        "format": CHECKPOINT_FORMAT,
        "params": params.to_dict(),
        "step": step,
        "model": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),  # the live one keeps changing
        "rng": torch.get_rng_state(),
        "losses": dict(losses),
        "history": list(history),
    }


def _restore(
    checkpoint: Checkpoint, params: ITNTrainParams, net: TransformerNet, optimizer: torch.optim.Optimizer
) -> tuple[int, dict[str, float], list[dict[str, float]]]:
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError(f"checkpoint: not an ITN training checkpoint (format {checkpoint.get('format')!r})")
    saved = ITNTrainParams.from_dict(checkpoint["params"])
    if saved != params:
        differing = sorted(k for k, v in saved.to_dict().items() if params.to_dict()[k] != v)
        raise InvalidInputError(f"checkpoint: made with other parameters ({', '.join(differing)}); it cannot resume this run")
    try:
        net.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        raise InvalidInputError(f"checkpoint: weights do not fit the {params.arch!r} architecture ({str(exc).splitlines()[0]})") from None
    optimizer.load_state_dict(checkpoint["optimizer"])
    torch.set_rng_state(checkpoint["rng"])
    return int(checkpoint["step"]), dict(checkpoint["losses"]), list(checkpoint["history"])


def model_state(result: TrainResult, params: ITNTrainParams) -> Checkpoint:
    """What a finished model stores: the weights and the parameters that made them."""
    return {
        "format": MODEL_FORMAT,
        "arch": params.arch,
        "params": params.to_dict(),
        "model": {k: v.detach().cpu().clone() for k, v in result.network.state_dict().items()},
    }
