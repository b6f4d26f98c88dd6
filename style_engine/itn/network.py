"""Fast style networks (Johnson et al. 2016): the image transformation network and its inference.

A network is trained once per style (see :mod:`style_engine.itn.train`) and then stylizes any photo
in one forward pass. Layout (Johnson's, with the upsampling fix of Odena et al. 2016):

* 9x9 convolution to ``c1`` channels, then stride-2 3x3 convolutions to ``c2`` and ``c3``;
* ``blocks`` residual blocks at ``c3``;
* two upsample-then-convolve stages (nearest x2, then a 3x3 convolution), never transposed
  convolutions, which leave checkerboard artifacts;
* a 9x9 convolution to 3 channels.

Every convolution is reflection-padded and followed (except the last) by instance normalization
and a ReLU.

Imported networks (:mod:`style_engine.itn.importing`) have the same layout but another pixel
convention: ``pytorch/examples``' networks take pixels in [0, 255] and give an unbounded output
read as [0, 255]. ``pixel_scale`` and ``output`` describe that convention inside the network, so
every caller (jobs, video, exports) keeps seeing [0, 1] in and out.

**Input and output range.** Input: RGB in [0, 1], shape (N, 3, H, W), any H and W >= 16. The
network reflection-pads H and W up to a multiple of 4 (two stride-2 stages) and crops the output
back, so the output has the input's size. Output: a sigmoid of the last convolution, so pixels lie
in (0, 1) by construction: no clamp, which would zero the gradient of every clipped pixel during
training, and no hidden 0-255 convention.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from style_engine import color
from style_engine.errors import InvalidInputError
from style_engine.images import image_to_tensor, resize_long_side, tensor_to_image

MIN_SIDE = 16


@dataclass(frozen=True)
class Architecture:
    """Channel widths and depth of one network variant."""

    c1: int
    c2: int
    c3: int
    blocks: int


# "light" halves every width: about a quarter of the FLOPs (measured in bench/itn.py and the
# README), for CPU real time; the residual depth stays 5, since depth is what lets strokes span
# the receptive field.
ARCHITECTURES: dict[str, Architecture] = {
    "johnson": Architecture(32, 64, 128, 5),
    "light": Architecture(16, 32, 64, 5),
}


class _Conv(nn.Sequential):
    """Reflection pad, convolution, and (unless last) instance norm + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, last: bool = False) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if not last:
            layers += [nn.InstanceNorm2d(cout, affine=True), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class _Residual(nn.Module):
    """Two 3x3 convolutions with instance norm; the second has no ReLU (Gross & Wilber's variant)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _Conv(channels, channels, 3),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Upsample(nn.Sequential):
    """Nearest-neighbour x2, then a convolution: no checkerboard, unlike a transposed convolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), _Conv(cin, cout, 3))


OUTPUT_STAGES = ("sigmoid", "clamp")


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network; see the module docstring for ranges.

    ``output`` is ``sigmoid`` for Atelier's own networks (trained through it) and ``clamp`` for
    imported ones, which were trained with a linear output; ``pixel_scale`` is the pixel value of
    white the weights expect (1 here, 255 for pytorch/examples).
    """

    def __init__(self, arch: str = "johnson", *, output: str = "sigmoid", pixel_scale: float = 1.0) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise InvalidInputError(f"network architecture {arch!r}: unknown; use one of {', '.join(ARCHITECTURES)}")
        if output not in OUTPUT_STAGES or not pixel_scale > 0:
            raise InvalidInputError(f"network output {output!r} at pixel scale {pixel_scale!r}: unsupported")
        self.arch = arch
        self.output = output
        self.pixel_scale = float(pixel_scale)
        a = ARCHITECTURES[arch]
        self.body = nn.Sequential(
            _Conv(3, a.c1, 9),
            _Conv(a.c1, a.c2, 3, stride=2),
            _Conv(a.c2, a.c3, 3, stride=2),
            *[_Residual(a.c3) for _ in range(a.blocks)],
            _Upsample(a.c3, a.c2),
            _Upsample(a.c2, a.c1),
            _Conv(a.c1, 3, 9, last=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = (4 - height % 4) % 4, (4 - width % 4) % 4
        padded = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        raw = self.body(padded if self.pixel_scale == 1.0 else padded * self.pixel_scale)
        if self.output == "sigmoid":
            out = torch.sigmoid(raw)
        else:
            out = torch.clamp(raw / self.pixel_scale, 0.0, 1.0)
        return out[..., :height, :width]


def build_network(arch: str, seed: int) -> TransformerNet:
    """A freshly initialized network; the seed fixes the init without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TransformerNet(arch)


def network_from_state(
    arch: str, state: dict[str, torch.Tensor], *, output: str = "sigmoid", pixel_scale: float = 1.0
) -> TransformerNet:
    """Rebuild a trained (or imported) network; a state dict of another architecture is an InvalidInputError."""
    net = TransformerNet(arch, output=output, pixel_scale=pixel_scale)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InvalidInputError(f"model weights do not fit the {arch!r} architecture ({first})") from None
    return net.eval().requires_grad_(False)


def check_size(image: Image.Image, name: str = "image") -> None:
    if min(image.size) < MIN_SIDE:
        raise InvalidInputError(f"{name}: {image.width}x{image.height} is too small (each side must be >= {MIN_SIDE} px)")


Network = Callable[[torch.Tensor], torch.Tensor]  # a TransformerNet, or an exported copy (ONNX Runtime)


def stylize_tensor(net: Network, batch: torch.Tensor, autocast_bf16: bool = False) -> torch.Tensor:
    """One forward pass on (N, 3, H, W) pixels in [0, 1]; returns float32 pixels in (0, 1)."""
    with torch.inference_mode(), torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
        return net(batch).float()


@dataclass
class ITNOutput:
    """One stylized image and what it cost."""

    image: Image.Image
    seconds: float


def stylize_images(
    net: Network,
    images: Iterable[Image.Image],
    *,
    size: int | None = None,
    preserve_color: bool = False,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    autocast_bf16: bool = False,
    on_image: Callable[[int], None] | None = None,
) -> Iterator[ITNOutput]:
    """Stylize ``images`` (resized to long side ``size`` when given) in batches of equal-size images.

    Images of different sizes cannot share a tensor, so consecutive images of one size are batched
    together and the rest run alone: a folder of camera photos batches fully, a mixed one degrades to
    one at a time rather than padding (which would change the result at the borders).
    ``preserve_color`` keeps the photo's chroma and takes only the network's luminance.
    """
    if isinstance(net, nn.Module):
        net = net.to(device)
    pending: list[torch.Tensor] = []

    def flush() -> Iterator[ITNOutput]:
        started = time.perf_counter()
        batch = torch.cat(pending).to(device)
        out = stylize_tensor(net, batch, autocast_bf16)
        if preserve_color:
            out = color.recombine_luminance(out, batch)
        seconds = (time.perf_counter() - started) / len(pending)
        pending.clear()
        for single in out:
            yield ITNOutput(tensor_to_image(single), seconds)
            if on_image is not None:
                on_image(1)

    for index, image in enumerate(images):
        check_size(image, f"image {index + 1}")
        rgb = image.convert("RGB")
        tensor = image_to_tensor(resize_long_side(rgb, size) if size else rgb)
        if pending and (pending[0].shape != tensor.shape or len(pending) >= batch_size):
            yield from flush()
        pending.append(tensor)
    if pending:
        yield from flush()


def stylize_one(net: Network, image: Image.Image, **options: object) -> ITNOutput:
    """:func:`stylize_images` for a single image."""
    return next(stylize_images(net, [image], **options))  # type: ignore[arg-type]

