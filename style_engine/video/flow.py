"""Optical flow, Ruder et al.'s (2016) consistency masks, and bilinear warping.

Conventions, used everywhere in the video code:

- A flow is a float32 array of shape (H, W, 2) holding (u, v) in pixels. ``flow_ab`` maps a
  pixel (x, y) of frame a to (x + u, y + v) in frame b.
- :func:`warp` is a *backward* warp: ``warp(b, flow_ab)`` samples b at (x + u, y + v), which
  aligns b onto a's pixel grid. So the previous stylized frame is brought onto frame t with the
  flow t -> t-1.
- A consistency mask is float32 (H, W) in [0, 1] on the grid of the flow's *source* frame: 1
  where the flow can be trusted, 0 where the pixel is disoccluded or on a motion boundary.

Flow quality on MPI-Sintel alley_1 (DESIGN.md section 5): DIS (MEDIUM) 0.28 px EPE at ~30 ms per
frame is the default; DeepFlow is twice as precise and 30x slower, and needs opencv-contrib.
Large motion defeats every method available here, which is why the masks matter: where flow is
wrong the forward-backward check usually fails, and the temporal loss lets go of those pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from style_engine.errors import InvalidInputError

FLOW_METHODS = ("dis", "farneback", "deepflow")
FLO_MAGIC = 202021.25
MASK_SMOOTHING_SIGMA = 1.0  # px; softens the mask's edges so the temporal loss fades, not steps


def flow_settings(method: str) -> dict[str, object]:
    """What a run records about its flow: the method, its preset, and the mask thresholds."""
    presets = {"dis": "DIS MEDIUM", "farneback": "pyr 0.5, 5 levels, window 15, 3 iterations, poly 5/1.2",
               "deepflow": "opencv-contrib defaults"}
    return {
        "method": method,
        "preset": presets.get(method, ""),
        "disocclusion": "|w + w_back|^2 > 0.01 (|w|^2 + |w_back|^2) + 0.5",
        "motion_boundary": "|grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002",
        "mask_smoothing_sigma_px": MASK_SMOOTHING_SIGMA,
    }


def compute_flow(a: np.ndarray, b: np.ndarray, method: str = "dis") -> np.ndarray:
    """The flow from frame ``a`` to frame ``b`` (uint8 RGB arrays of one size), shape (H, W, 2)."""
    if a.shape != b.shape:
        raise InvalidInputError(f"optical flow: frames differ in size ({a.shape} vs {b.shape})")
    gray_a, gray_b = _gray(a), _gray(b)
    if method == "dis":
        estimator = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = estimator.calc(gray_a, gray_b, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(
            gray_a, gray_b, None, pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
        )
    elif method == "deepflow":
        flow = _deepflow().calc(gray_a, gray_b, None)
    else:
        raise InvalidInputError(f"flow method {method!r}: unknown; use one of {', '.join(FLOW_METHODS)}")
    return np.ascontiguousarray(flow, dtype=np.float32)


def check_flow_method(method: str) -> None:
    """Fail early (before hours of work) on an unknown method or a missing opencv-contrib."""
    if method not in FLOW_METHODS:
        raise InvalidInputError(f"flow method {method!r}: unknown; use one of {', '.join(FLOW_METHODS)}")
    if method == "deepflow":
        _deepflow()


def _deepflow() -> cv2.DenseOpticalFlow:
    optflow = getattr(cv2, "optflow", None)
    if optflow is None:
        raise InvalidInputError(
            "flow method 'deepflow' needs OpenCV's contrib modules: install opencv-contrib-python-headless "
            "in place of opencv-python-headless (pip extra 'deepflow'), or use flow method 'dis'"
        )
    return optflow.createOptFlow_DeepFlow()


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def flow_pair(a: np.ndarray, b: np.ndarray, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """Forward (a -> b) and backward (b -> a) flow: the masks need both directions."""
    return compute_flow(a, b, method), compute_flow(b, a, method)


def consistency_mask(flow: np.ndarray, flow_back: np.ndarray) -> np.ndarray:
    """Ruder et al.'s mask on the grid of ``flow``'s source frame: 1 = trust the flow.

    ``flow`` goes from frame a to frame b, ``flow_back`` from b to a. A pixel is disoccluded
    where going there and back does not return home:
    |w + ŵ|² > 0.01 (|w|² + |ŵ|²) + 0.5, with ŵ the back flow read at the forward target; and it
    lies on a motion boundary where |∇u|² + |∇v|² > 0.01 |w|² + 0.002. Both kinds are excluded,
    and the binary mask is Gaussian-smoothed (keeping zeros zero) so the loss fades in at edges.
    """
    back = warp_array(flow_back, flow)
    round_trip = np.sum((flow + back) ** 2, axis=-1)
    magnitudes = np.sum(flow**2, axis=-1) + np.sum(back**2, axis=-1)
    disoccluded = round_trip > 0.01 * magnitudes + 0.5
    du_dy, du_dx = np.gradient(flow[..., 0])
    dv_dy, dv_dx = np.gradient(flow[..., 1])
    gradient = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2
    boundary = gradient > 0.01 * np.sum(flow**2, axis=-1) + 0.002
    mask = (~(disoccluded | boundary)).astype(np.float32)
    smooth = cv2.GaussianBlur(mask, (0, 0), MASK_SMOOTHING_SIGMA)
    return np.minimum(mask, smooth)


def warp(image: torch.Tensor, flow: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Backward bilinear warp of ``image`` (N, C, H, W) by ``flow`` (H, W, 2): out(x) = image(x + w(x)).

    Samples outside the frame take the nearest border pixel; the consistency mask (not the
    warp) decides whether such pixels are trusted.
    """
    _, _, height, width = image.shape
    w = torch.as_tensor(flow, dtype=torch.float32, device=image.device)
    if tuple(w.shape) != (height, width, 2):
        raise InvalidInputError(f"warp: flow of shape {tuple(w.shape)} for a {width}x{height} image")
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32, device=image.device),
        torch.arange(width, dtype=torch.float32, device=image.device),
        indexing="ij",
    )
    gx = (xs + w[..., 0]) * (2.0 / max(width - 1, 1)) - 1.0
    gy = (ys + w[..., 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1).unsqueeze(0).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def warp_array(array: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """:func:`warp` for an (H, W) or (H, W, C) float array (a flow field, a mask, a frame)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    chw = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    out = warp(chw.unsqueeze(0), flow)[0]
    return (out[0] if array.ndim == 2 else out.permute(1, 2, 0)).numpy()


def read_flo(path: str | Path) -> np.ndarray:
    """A Middlebury .flo file (magic 202021.25, int32 width and height, H*W*2 float32) as (H, W, 2)."""
    data = Path(path).read_bytes()
    if len(data) < 12 or np.frombuffer(data[:4], "<f4")[0] != FLO_MAGIC:
        raise InvalidInputError(f"{path}: not a Middlebury .flo file (bad magic number)")
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    expected = 12 + width * height * 8
    if width <= 0 or height <= 0 or len(data) != expected:
        raise InvalidInputError(f"{path}: .flo header says {width}x{height} but the file has {len(data)} bytes")
    return np.frombuffer(data[12:], "<f4").reshape(height, width, 2).copy()
