"""Importing fast style networks trained elsewhere: ``pytorch/examples``' ``TransformerNet``.

That network (``fast_neural_style``, also the source of the ONNX model zoo's fast-neural-style
models) has Atelier's ``johnson`` layout: a 9x9 convolution, two stride-2 convolutions, five
residual blocks, two nearest-upsample-then-convolve stages and a 9x9 convolution, each reflection-
padded, with affine instance norms. It differs in two things: the names of its weights, and its
pixels (0-255 in, a linear output read as 0-255). The names are mapped here; the pixel convention
is kept by the network itself (``TransformerNet(output="clamp", pixel_scale=255)``).

Two kinds of file are read, and both end as the same Atelier state dict:

* a state dict saved with ``torch.save`` (``.pth``), loaded with ``weights_only=True``: a pickle
  that holds anything but tensors and containers is refused, never executed;
* an ONNX export (``.onnx``). Its weights are read from the graph's initializers, convolution by
  convolution in graph order, and the converted network is then checked against the ONNX graph
  itself, run by ONNX Runtime on a test image: a graph that is not this layout (another
  upsampling, a missing skip connection) disagrees there even when every shape fits. Converting,
  rather than running the file with ONNX Runtime for good, makes an imported network one more
  Atelier network: it runs on CUDA, in fast video and in exports like a trained one.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from style_engine.errors import InvalidInputError
from style_engine.itn.network import ARCHITECTURES, Architecture, network_from_state

SOURCE_LAYOUT = "pytorch/examples fast_neural_style TransformerNet"
FORMATS = ("pytorch", "onnx")
# Old pytorch/examples checkpoints (torch < 0.4) kept running statistics in their instance norms,
# which the network never uses (it normalizes by each image's own statistics): they are dropped.
UNUSED_KEY = re.compile(r"(^|\.)in\d+\.running_(mean|var)$|\.num_batches_tracked$")
TEST_SIDE = 64
# The ONNX graph and the converted network must agree to this much, in [0, 1] pixels.
PARITY_TOLERANCE = 1e-3


@dataclass
class ImportedNetwork:
    """A foreign network converted to Atelier's layout, with what its file expects."""

    arch: str
    state: dict[str, torch.Tensor]
    file_format: str
    pixel_scale: float
    dropped_keys: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def network(self) -> torch.nn.Module:
        return network_from_state(self.arch, self.state, output="clamp", pixel_scale=self.pixel_scale)


def _layers(a: Architecture) -> list[tuple[str, str, tuple[int, ...]]]:
    """(pytorch/examples name, Atelier name, weight shape) of each layer with weights, in forward order.

    Every such layer has a ``weight`` and a ``bias`` of ``shape[:1]``. The order is the order of the
    convolutions and instance norms in both networks' graphs, which the ONNX import relies on.
    """
    layers: list[tuple[str, str, tuple[int, ...]]] = []

    def conv(theirs: str, ours: str, cin: int, cout: int, kernel: int) -> None:
        layers.append((f"{theirs}.conv2d", ours, (cout, cin, kernel, kernel)))

    def norm(theirs: str, ours: str, channels: int) -> None:
        layers.append((theirs, ours, (channels,)))

    for index, (cin, cout, kernel) in enumerate(((3, a.c1, 9), (a.c1, a.c2, 3), (a.c2, a.c3, 3))):
        conv(f"conv{index + 1}", f"body.{index}.1", cin, cout, kernel)
        norm(f"in{index + 1}", f"body.{index}.2", cout)
    for block in range(a.blocks):
        theirs, ours = f"res{block + 1}", f"body.{3 + block}.body"
        conv(f"{theirs}.conv1", f"{ours}.0.1", a.c3, a.c3, 3)
        norm(f"{theirs}.in1", f"{ours}.0.2", a.c3)
        conv(f"{theirs}.conv2", f"{ours}.2", a.c3, a.c3, 3)
        norm(f"{theirs}.in2", f"{ours}.3", a.c3)
    up = 3 + a.blocks
    conv("deconv1", f"body.{up}.1.1", a.c3, a.c2, 3)
    norm("in4", f"body.{up}.1.2", a.c2)
    conv("deconv2", f"body.{up + 1}.1.1", a.c2, a.c1, 3)
    norm("in5", f"body.{up + 1}.1.2", a.c1)
    conv("deconv3", f"body.{up + 2}.1", a.c1, 3, 9)
    return layers


def expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """The pytorch/examples state dict of a network of ``arch`` widths: key -> shape, in order."""
    return {f"{theirs}.{part}": shape if part == "weight" else shape[:1]
            for theirs, _, shape in _layers(ARCHITECTURES[arch]) for part in ("weight", "bias")}


def _arch_of(state: Mapping[str, torch.Tensor], source: str) -> str:
    """The architecture whose widths the first convolution has (johnson: 32, light: 16)."""
    first = "conv1.conv2d.weight"
    if first not in state:
        raise InvalidInputError(f"{source}: not a {SOURCE_LAYOUT} ({_first_key(state)!r} where {first!r} is expected first)")
    shape = tuple(state[first].shape)
    for name, a in ARCHITECTURES.items():
        if shape == (a.c1, 3, 9, 9):
            return name
    widths = " or ".join(f"({a.c1}, 3, 9, 9) ({name})" for name, a in ARCHITECTURES.items())
    raise InvalidInputError(f"{source}: key {first!r} has shape {shape}; expected {widths}")


def _first_key(state: Mapping[str, Any]) -> str:
    return next(iter(state), "(no keys)")


def convert_state(state: Any, source: str, file_format: str, pixel_scale: float) -> ImportedNetwork:
    """Check a pytorch/examples state dict key by key and map it to Atelier's names.

    The first key that does not fit (unknown, of the wrong shape, or missing) is the error.
    """
    if not isinstance(state, Mapping) or not state:
        raise InvalidInputError(f"{source}: not a state dict (a mapping of weight names to tensors): a {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InvalidInputError(f"{source}: not a plain state dict: entry {key!r} is a {type(value).__name__}, not a tensor")
    dropped = [key for key in state if UNUSED_KEY.search(key)]
    kept = {key: value for key, value in state.items() if key not in dropped}
    arch = _arch_of(kept, source)
    expected = expected_shapes(arch)
    for key, value in kept.items():
        if key not in expected:
            raise InvalidInputError(f"{source}: key {key!r} is not part of a {SOURCE_LAYOUT} ({arch} widths)")
        if tuple(value.shape) != expected[key]:
            raise InvalidInputError(f"{source}: key {key!r} has shape {tuple(value.shape)}; the layout needs {expected[key]}")
    missing = [key for key in expected if key not in kept]
    if missing:
        raise InvalidInputError(f"{source}: key {missing[0]!r} is missing ({len(missing)} of the layout's {len(expected)} keys are)")
    ours = {f"{mine}.{part}": kept[f"{theirs}.{part}"].detach().float().clone()
            for theirs, mine, _ in _layers(ARCHITECTURES[arch]) for part in ("weight", "bias")}
    imported = ImportedNetwork(arch, ours, file_format, pixel_scale, dropped)
    _check_forward(imported, source)
    return imported


def test_image(height: int = TEST_SIDE, width: int = TEST_SIDE) -> torch.Tensor:
    """A fixed (1, 3, H, W) test picture in [0, 1]: smooth ramps plus seeded noise, so that every
    channel and every spatial frequency the network reacts to is exercised."""
    generator = torch.Generator().manual_seed(0)
    ys = torch.linspace(0, 1, height).view(1, height, 1).expand(3, height, width)
    xs = torch.linspace(0, 1, width).view(1, 1, width).expand(3, height, width)
    ramps = torch.stack([ys[0], xs[1], (ys[2] + xs[2]) / 2])
    return (0.7 * ramps + 0.3 * torch.rand(3, height, width, generator=generator)).unsqueeze(0)


def _check_forward(imported: ImportedNetwork, source: str, image: torch.Tensor | None = None) -> torch.Tensor:
    """One forward pass: pixels of the input's size, all finite (a file of NaNs fits every shape)."""
    picture = test_image() if image is None else image
    with torch.inference_mode():
        out = imported.network()(picture)
    if out.shape != picture.shape or not bool(torch.isfinite(out).all()):
        raise InvalidInputError(f"{source}: the network's output on a {picture.shape[-1]}x{picture.shape[-2]} test image is not finite")
    imported.checks["test_image"] = f"{picture.shape[-1]}x{picture.shape[-2]}"
    return out


def read_pytorch(data: bytes, source: str, pixel_scale: float) -> ImportedNetwork:
    """A state dict saved with ``torch.save`` (zip or the legacy format), loaded as weights only."""
    if data[:4] == b"PK\x03\x04" and not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidInputError(f"{source}: truncated or damaged: the file's zip archive has no end record ({len(data)} bytes)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, KeyError... for files it cannot read
        text = str(exc)
        if isinstance(exc, EOFError) or "unexpected EOF" in text:  # the legacy format, cut short
            raise InvalidInputError(f"{source}: truncated: the file ends inside its data ({len(data)} bytes)") from None
        if "Weights only load failed" in text:
            reason = next((line.strip() for line in text.splitlines() if "GLOBAL" in line or "Unsupported" in line), "")
            raise InvalidInputError(
                f"{source}: refused: the pickle holds more than weights ({reason or 'objects other than tensors'}); "
                "only a plain state dict is imported, and code in a file is never run"
            ) from None
        first = text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__
        raise InvalidInputError(f"{source}: not a readable PyTorch file ({first})") from None
    return convert_state(state, source, "pytorch", pixel_scale)


def read_onnx(data: bytes, source: str, pixel_scale: float) -> ImportedNetwork:
    """An ONNX export of the network: weights from the graph, then checked against the graph itself."""
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper

    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInputError(f"{source}: truncated or not an ONNX model ({type(exc).__name__}: {str(exc)[:120]})") from None
    graph = model.graph
    if not graph.node or len(graph.input) < 1:
        raise InvalidInputError(f"{source}: not an ONNX model with a graph (truncated?)")
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:  # older exporters put some weights in Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    convs = [node for node in graph.node if node.op_type == "Conv"]
    norms = [node for node in graph.node if node.op_type == "InstanceNormalization"]
    first = values.get(convs[0].input[1]) if convs and len(convs[0].input) > 1 else None
    if first is None:
        raise InvalidInputError(f"{source}: not a {SOURCE_LAYOUT}: the graph does not start with a convolution of stored weights")
    arch = _arch_of({"conv1.conv2d.weight": torch.from_numpy(first.copy())}, source)
    layers = _layers(ARCHITECTURES[arch])
    wanted_convs = sum(1 for theirs, _, _ in layers if theirs.endswith("conv2d"))
    if (len(convs), len(norms)) != (wanted_convs, len(layers) - wanted_convs):
        raise InvalidInputError(f"{source}: {len(convs)} convolutions and {len(norms)} instance norms; "
                                f"a {SOURCE_LAYOUT} has {wanted_convs} and {len(layers) - wanted_convs}")
    nodes = iter(convs), iter(norms)
    state: dict[str, torch.Tensor] = {}
    for theirs, _, _ in layers:
        node = next(nodes[0] if theirs.endswith("conv2d") else nodes[1])
        for part, name in zip(("weight", "bias"), node.input[1:3]):
            if name not in values:
                raise InvalidInputError(f"{source}: {node.op_type} node {node.name or theirs!r} takes its {part} "
                                        "from the graph, not from stored weights")
            state[f"{theirs}.{part}"] = torch.from_numpy(values[name].copy())
    imported = convert_state(state, source, "onnx", pixel_scale)
    _check_against_graph(imported, data, graph, source)
    return imported


def _check_against_graph(imported: ImportedNetwork, data: bytes, graph: Any, source: str) -> None:
    """Run the ONNX graph with ONNX Runtime on the test image, at the size its input allows, and
    require the converted network to give the same pixels."""
    import onnxruntime

    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (0, 3):
        raise InvalidInputError(f"{source}: the graph's input has shape {dims}; a (batch, 3, height, width) image is expected")
    picture = test_image(dims[2] or TEST_SIDE, dims[3] or TEST_SIDE)
    ours = _check_forward(imported, source, picture)
    try:
        session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        (raw,) = session.run(None, {session.get_inputs()[0].name: (picture * imported.pixel_scale).numpy()})[:1]
    except Exception as exc:  # onnxruntime's errors are its own types (Fail, InvalidGraph, ...)
        raise InvalidInputError(f"{source}: ONNX Runtime cannot run the graph ({type(exc).__name__}: {str(exc)[:120]})") from None
    theirs = torch.clamp(torch.from_numpy(raw).float() / imported.pixel_scale, 0, 1)
    if theirs.shape != ours.shape:
        raise InvalidInputError(f"{source}: the graph gives {tuple(theirs.shape)} for a {tuple(picture.shape)} input; not a {SOURCE_LAYOUT}")
    difference = float((theirs - ours).abs().max())
    if difference > PARITY_TOLERANCE:
        raise InvalidInputError(f"{source}: the graph is not a plain {SOURCE_LAYOUT}: its weights in that layout "
                                f"give pixels up to {difference:.3g} away from the graph's own (tolerance {PARITY_TOLERANCE})")
    imported.checks["onnx_max_difference"] = difference


def read_network(data: bytes, source: str, *, file_format: str, pixel_scale: float = 255.0) -> ImportedNetwork:
    """Read and validate a file of ``file_format`` (``pytorch`` or ``onnx``); any defect is an
    InvalidInputError of one line that starts with ``source``."""
    if file_format not in FORMATS:
        raise InvalidInputError(f"{source}: format {file_format!r} unknown; use one of {', '.join(FORMATS)}")
    if not data:
        raise InvalidInputError(f"{source}: the file is empty")
    reader = read_onnx if file_format == "onnx" else read_pytorch
    return reader(data, source, pixel_scale)
