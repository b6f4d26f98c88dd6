"""Optical flow, warping and Ruder's masks against motion we know exactly, and against Sintel."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from style_engine.errors import InvalidInputError
from style_engine.video.flow import check_flow_method, compute_flow, consistency_mask, flow_pair, read_flo, warp, warp_array

pytestmark = pytest.mark.unit

SINTEL = Path(__file__).resolve().parents[2] / "shared" / "data" / "flow" / "sintel_alley_1_clean"
SINTEL = SINTEL if SINTEL.is_dir() else Path("/work/shared/data/flow/sintel_alley_1_clean")


def texture(height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture: enough structure everywhere for flow to lock on."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 4, width // 4, 3)).astype(np.float32)
    smooth = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth * 255, 0, 255).astype(np.uint8)


def shifted(frame: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The frame's content moved by (dx, dy) px (wrapping; tests look away from the border)."""
    return np.roll(frame, (dy, dx), axis=(0, 1))


def test_warp_by_known_flow_reproduces_the_frame() -> None:
    a = texture()
    b = shifted(a, 3, -2)  # a pixel at (x, y) in a sits at (x + 3, y - 2) in b
    flow_ab = np.zeros((*a.shape[:2], 2), np.float32)
    flow_ab[..., 0], flow_ab[..., 1] = 3, -2
    aligned = warp_array(b.astype(np.float32), flow_ab)
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(aligned[inner] - a[inner]).max() < 1e-3
    assert np.abs(b[inner].astype(np.float32) - a[inner]).mean() > 10  # the warp did the work


def test_warp_is_bilinear_between_pixels() -> None:
    ramp = torch.arange(8, dtype=torch.float32).repeat(8, 1)[None, None]
    flow = np.zeros((8, 8, 2), np.float32)
    flow[..., 0] = 0.25
    out = warp(ramp, flow)
    assert torch.allclose(out[0, 0, :, :7], ramp[0, 0, :, :7] + 0.25)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_estimated_flow_finds_a_known_shift(method: str) -> None:
    a = texture(96, 96, seed=1)
    b = shifted(a, 2, 1)
    forward, backward = flow_pair(a, b, method)
    inner = (slice(16, -16), slice(16, -16))
    assert np.median(forward[inner][..., 0]) == pytest.approx(2, abs=0.2)
    assert np.median(forward[inner][..., 1]) == pytest.approx(1, abs=0.2)
    assert np.median(backward[inner][..., 0]) == pytest.approx(-2, abs=0.2)


def moving_square_flows(size: int = 48, left: int = 16, width: int = 12, step: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Exact flows of a square moving right by ``step`` over a still background."""
    forward = np.zeros((size, size, 2), np.float32)
    backward = np.zeros((size, size, 2), np.float32)
    rows = slice(left, left + width)
    forward[rows, left : left + width, 0] = step
    backward[rows, left + step : left + step + width, 0] = -step
    return forward, backward


def test_mask_drops_disocclusions_and_keeps_consistent_motion() -> None:
    forward, backward = moving_square_flows()
    mask = consistency_mask(forward, backward)
    # Background just right of the square (x 28..32) is covered in the next frame.
    assert mask[20:24, 29:32].max() == 0
    assert mask[2:8, 2:8].min() > 0.99  # still background
    assert mask[20:24, 20:24].min() > 0.99  # inside the moving square
    # On the next frame's grid the background uncovered behind the square (x 16..20) has no source.
    back_mask = consistency_mask(backward, forward)
    assert back_mask[20:24, 17:20].max() == 0
    assert back_mask[2:8, 2:8].min() > 0.99


def test_mask_drops_motion_boundaries() -> None:
    flow = np.zeros((32, 32, 2), np.float32)
    flow[:, 16:, 1] = 4.0  # right half moves down: a shear, consistent both ways
    back = warp_array(-flow, flow)  # exact inverse of a piecewise translation
    mask = consistency_mask(flow, back)
    assert mask[8:24, 15:17].max() == 0
    assert mask[8:24, 4:10].min() > 0.99
    assert mask[8:24, 22:28].min() > 0.99


def test_read_flo_round_trip_and_errors(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    path = tmp_path / "a.flo"
    path.write_bytes(np.float32(202021.25).tobytes() + np.array([7, 5], "<i4").tobytes() + flow.astype("<f4").tobytes())
    assert np.array_equal(read_flo(path), flow)
    (tmp_path / "bad.flo").write_bytes(b"JUNK" + b"\0" * 20)
    with pytest.raises(InvalidInputError, match="bad.flo: not a Middlebury .flo file"):
        read_flo(tmp_path / "bad.flo")
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(InvalidInputError, match="7x5"):
        read_flo(path)


def test_unknown_flow_method_and_missing_contrib_are_clear() -> None:
    with pytest.raises(InvalidInputError, match="flow method 'raft': unknown"):
        check_flow_method("raft")
    if hasattr(cv2, "optflow"):
        pytest.skip("opencv-contrib is installed: deepflow is available")
    with pytest.raises(InvalidInputError, match="opencv-contrib-python-headless"):
        compute_flow(texture(), texture(), "deepflow")


@pytest.mark.skipif(not SINTEL.is_dir(), reason="shared Sintel data (../shared/data/flow) not present")
def test_dis_flow_warps_sintel_within_tolerance() -> None:
    """Computed flow, warped on non-occluded pixels: MAE <= 2.5/255 (ground truth itself gives ~1.9)."""
    a = np.asarray(Image.open(SINTEL / "frame_0002.png").convert("RGB"))
    b = np.asarray(Image.open(SINTEL / "frame_0003.png").convert("RGB"))
    occluded = np.asarray(Image.open(SINTEL / "gt/occlusions/frame_0002.png")) > 0
    invalid = np.asarray(Image.open(SINTEL / "gt/invalid/frame_0002.png")) > 0
    valid = ~(occluded | invalid)
    flow = compute_flow(a, b, "dis")
    error = np.abs(warp_array(b.astype(np.float32), flow) - a).mean(axis=-1)[valid].mean()
    unwarped = np.abs(b.astype(np.float32) - a).mean(axis=-1)[valid].mean()
    assert error <= 2.5, error
    assert unwarped > 3 * error
    truth = read_flo(SINTEL / "gt/frame_0002.flo")
    assert np.sqrt(((flow - truth) ** 2).sum(-1))[valid].mean() < 0.5  # end-point error, px
