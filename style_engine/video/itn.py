"""Fast video: a trained style network on every frame, steadied along the optical flow.

A feed-forward network paints each frame on its own, so its strokes flicker: tiny changes of the
input move them. :class:`StabilizedITN` is a frame stylizer for :func:`style_engine.video.ruder.stylize_frames`
that blends each output with the previous *output* warped onto the frame,
``out = a * warped + (1 - a) * network(frame)`` with ``a = blend * mask``, where ``mask`` is Ruder's
consistency mask of the flow (0 at disocclusions and motion boundaries). Where the flow is trusted the
painting moves with the scene; where something new appears, the network paints it fresh. Blending with
the previous output (not the previous network output) makes this an exponential moving average along
the motion: a stroke persists over about 1 / (1 - blend) frames, which is also how long a flow error
lingers as a ghost; hence the measured default in :mod:`style_engine.video.params`.

No training, no optimization: the cost per frame is one forward pass plus the flow.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from style_engine.device import resolve_device
from style_engine.images import image_to_tensor, tensor_to_image
from style_engine.itn.network import Network, stylize_tensor
from style_engine.video.ruder import FrameCallback, FrameOutput, FrameReport, Guide, stylize_clip
from style_engine.video.params import VideoITNParams


class StabilizedITN:
    """The frame stylizer of fast video: the network's output, blended with ``guides[0]`` where trusted.

    ``net`` is a :class:`~style_engine.itn.network.TransformerNet` or an exported copy (ONNX Runtime) taking
    (N, 3, H, W) pixels in [0, 1]. With ``stabilize`` False the guides are ignored (per-frame ITN).
    """

    def __init__(
        self, net: Network, *, stabilize: bool = True, blend: float = 0.5, device: str | torch.device = "cpu",
        autocast_bf16: bool = False,
    ) -> None:
        self.net = net
        self.stabilize = stabilize
        self.blend = blend
        self.device = resolve_device(device)
        self.autocast_bf16 = autocast_bf16

    def settings(self) -> dict[str, Any]:
        """The blend as applied (0 for per-frame ITN)."""
        return {"blend": self.blend if self.stabilize else 0.0}

    def __call__(self, frame: np.ndarray, guides: Sequence[Guide]) -> FrameOutput:
        painted = stylize_tensor(self.net, image_to_tensor(Image.fromarray(frame)).to(self.device), self.autocast_bf16)
        out = painted.cpu()
        if self.stabilize and guides:
            nearest = guides[0]
            keep = self.blend * nearest.weight
            out = keep * nearest.warped + (1 - keep) * out
        return FrameOutput(np.asarray(tensor_to_image(out), dtype=np.uint8))


def itn_video(
    frames: Iterable[np.ndarray],
    net: Network,
    params: VideoITNParams,
    *,
    shot_starts: Collection[int] = (),
    finished: Sequence[np.ndarray] = (),
    total: int | None = None,
    on_frame: FrameCallback | None = None,
    device: str | torch.device = "cpu",
    autocast_bf16: bool = False,
) -> Iterator[tuple[np.ndarray, FrameReport]]:
    """Fast video with ``params`` (per-frame when ``params.stabilize`` is False), frame by frame."""
    stylizer = StabilizedITN(net, stabilize=params.stabilize, blend=params.blend, device=device,
                             autocast_bf16=autocast_bf16)
    return stylize_clip(frames, stylizer, params, shot_starts=shot_starts, finished=finished, total=total,
                        on_frame=on_frame)
