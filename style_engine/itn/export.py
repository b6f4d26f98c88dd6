"""Exporting a trained network to TorchScript and ONNX, and running the ONNX file with ONNX Runtime.

Both exports keep the network's contract (RGB in [0, 1], any size >= 16 px, output in (0, 1) of the
input's size): the reflection pad to a multiple of 4 and the crop back are part of the graph, and
the batch, height and width axes are dynamic.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from style_engine.itn.network import TransformerNet

ONNX_OPSET = 18


def export_torchscript(net: TransformerNet, target: Path) -> None:
    """Save a scripted copy of ``net`` (loadable with ``torch.jit.load``, no Atelier code needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the portable format
        scripted = torch.jit.script(net.eval().cpu())
    scripted.save(str(target))


def export_onnx(net: TransformerNet, target: Path) -> None:
    """Write ``net`` as an ONNX model with dynamic batch, height and width."""
    target.write_bytes(onnx_bytes(net))


def onnx_bytes(net: TransformerNet) -> bytes:
    """``net`` as a serialized ONNX model (dynamic batch, height and width)."""
    sample = torch.rand(1, 3, 64, 64)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing shape arithmetic
        torch.onnx.export(
            net.eval().cpu(),
            (sample,),
            buffer,
            input_names=["image"],
            output_names=["stylized"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "stylized": {0: "batch", 2: "height", 3: "width"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


class OnnxRunner:
    """ONNX Runtime inference on the CPU, with the same contract as the network itself.

    On this project's 2-core CPU it runs both networks 2-2.5x faster than eager PyTorch at
    512 px (bench/itn.py), so CPU stylization goes through it.
    """

    def __init__(self, model: Path | bytes, threads: int | None = None) -> None:
        import onnxruntime  # imported here: it costs start-up time and only this path needs it

        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        source = str(model) if isinstance(model, Path) else model
        self.session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        array = batch.detach().cpu().float().contiguous().numpy()
        (out,) = self.session.run(["stylized"], {"image": array})
        return torch.from_numpy(np.asarray(out))
