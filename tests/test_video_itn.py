"""Fast video in the engine: blending along the flow steadies a flickering network, lets go where the
flow cannot be trusted, restarts at cuts and resumes to the same bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from style_engine.errors import InvalidInputError
from style_engine.video.flow import consistency_mask
from style_engine.images import tensor_to_image
from style_engine.params import parse_params
from style_engine.video.ruder import Guide, summarize
from style_engine.video.itn import StabilizedITN, itn_video
from tests.video_clips import panning_frames

pytestmark = pytest.mark.unit


class FlickeringNet:
    """A stand-in for a style network: half the frame plus noise that is a pure function of the input.

    Any change of the input reshuffles the noise, as a real network's strokes jump when the frame
    moves; the same input always gives the same output, as a real network's does (so resume can be
    checked). It remembers its last output.
    """

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        seed = int(hashlib.sha256(batch.numpy().tobytes()).hexdigest()[:8], 16)
        noise = torch.rand(batch.shape, generator=torch.Generator().manual_seed(seed))
        self.last = 0.5 * batch + 0.5 * noise
        return self.last


def _params(**overrides: object):
    return parse_params("video_itn", {"model": "test", "size": 64, **overrides})


def _run(frames: list[np.ndarray], net: FlickeringNet, **overrides: object):
    return list(itn_video(frames, net, _params(**overrides)))


def test_stabilization_lowers_the_warping_error_of_a_flickering_network() -> None:
    frames = panning_frames(8)
    alone = summarize([r for _, r in _run(frames, FlickeringNet(), stabilize=False)])
    steadied = summarize([r for _, r in _run(frames, FlickeringNet(), stabilize=True, blend=0.5)])
    # Independent noise per frame vs. an average along the motion: (1 - 0.5)^2 * (1 + 1/3) / 2 = 1/3 in theory.
    assert steadied["warping_error"] < 0.45 * alone["warping_error"]
    assert alone["warping_error"] > 0.01  # the baseline really flickers


def test_blend_follows_the_mask_and_stops_at_a_disocclusion() -> None:
    """A square moves 4 px right over a still background: the strip it uncovers gets the network alone."""
    height, width = 32, 48
    flow = np.zeros((height, width, 2), np.float32)  # frame t -> t-1
    flow[8:24, 20:30, 0] = -4.0  # the square sat 4 px further left in t-1
    back = np.zeros_like(flow)  # frame t-1 -> t
    back[8:24, 16:26, 0] = 4.0
    mask = torch.from_numpy(consistency_mask(flow, back))[None, None]
    assert float(mask[0, 0, 12:20, 16:20].max()) == 0.0  # the uncovered strip
    assert float(mask[0, 0, 12:20, 36:44].min()) > 0.999  # still background, far from the square

    frame = np.full((height, width, 3), 100, np.uint8)
    previous = torch.full((1, 3, height, width), 0.9)
    net = FlickeringNet()
    out = StabilizedITN(net, blend=0.5)(frame, [Guide(1, previous, mask)])
    painted = np.asarray(tensor_to_image(net.last), dtype=np.float32)
    image = out.image.astype(np.float32)
    assert np.array_equal(image[12:20, 16:20], painted[12:20, 16:20])
    blended = 0.5 * 0.9 * 255 + 0.5 * painted[12:20, 36:44]
    assert np.abs(image[12:20, 36:44] - blended).max() <= 1.0  # uint8 rounding

    ignored = StabilizedITN(net, stabilize=False)(frame, [Guide(1, previous, mask)])
    assert np.array_equal(ignored.image, np.asarray(tensor_to_image(net.last)))


def test_a_scene_cut_restarts_the_chain_with_the_network_alone() -> None:
    frames = panning_frames(4, seed=1) + panning_frames(3, seed=7)
    net = FlickeringNet()
    outputs = []
    for image, report in itn_video(frames, net, _params(blend=0.8)):
        outputs.append((image, report, np.asarray(tensor_to_image(net.last))))
    assert [r.scene_cut for _, r, _ in outputs] == [False, False, False, False, True, False, False]
    image, report, painted = outputs[4]
    assert np.array_equal(image, painted) and report.warping_error is None
    assert not np.array_equal(outputs[5][0], outputs[5][2])  # the new shot's chain blends again


def test_a_resumed_run_reproduces_the_same_frames() -> None:
    frames = panning_frames(6)
    full = [image for image, _ in _run(frames, FlickeringNet())]
    resumed = list(itn_video(frames, FlickeringNet(), _params(), finished=full[:3]))
    assert [r.resumed for _, r in resumed] == [True, True, True, False, False, False]
    assert all(np.array_equal(a, b) for a, (b, _) in zip(full, resumed))


def test_a_real_network_runs_on_any_frame_size() -> None:
    from style_engine.itn.network import build_network

    frames = panning_frames(3, height=30, width=46)  # not multiples of 4
    outputs = list(itn_video(frames, build_network("light", 0).eval(), _params(size=46)))
    assert [image.shape for image, _ in outputs] == [(30, 46, 3)] * 3


def test_video_itn_params_validate() -> None:
    params = _params()
    assert (params.stabilize, params.blend, params.long_term, params.temporal) == (True, 0.5, (1,), True)
    assert params.to_dict()["model"] == "test" and "long_term" not in params.to_dict()
    for bad, message in (({"model": ""}, "model"), ({"blend": 1.0}, "blend"),
                         ({"stabilize": "yes"}, "stabilize"), ({"flow": "magic"}, "flow")):
        with pytest.raises(InvalidInputError, match=message):
            parse_params("video_itn", {"model": "test", **bad})
