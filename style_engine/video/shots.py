"""Shots and segments: where a clip cuts, and how a long clip is shared out as independent pieces of work.

A film is stylized by many workers at once only if it can be split where the split changes nothing
or almost nothing. A cut is such a place: the frame loop restarts its chain there anyway (a frame
after a cut is a first frame), so a segment that begins at a cut renders the same bytes as one
host would. Inside a long shot a segment needs the frames before it (its *context*): with the
previous segment's last outputs it continues the chain exactly; without them the context is a
warm-up (see :func:`segment_overlap` and README, "Video").

:func:`find_cuts` is the cheap planning pass: it runs on frames shrunk to ``size`` px and uses the
frame loop's own cut measure (:func:`style_engine.video.ruder.photometric_similarity`, the share of pixels
whose flow is consistent and whose warp matches) for hard cuts, and colour histograms for
dissolves, which change every frame too little for the flow test to notice.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from style_engine.errors import InvalidInputError
from style_engine.video.flow import check_flow_method
from style_engine.video.ruder import ClipStylizer, FrameCallback, FrameReport, measure_clip, pair_similarity, stylize_clip
from style_engine.video.params import VideoGatysParams, VideoParams

PLANNING_SIZE = 96  # px, long side of the frames the planning pass looks at
HISTOGRAM_BINS = 8  # per RGB channel
# Twin comparison (Zhang, Kankanhalli and Smoliar 1993) on Bhattacharyya distances of colour
# histograms: a run of change starts at a step above the shot's usual change (DISSOLVE_FACTOR x the
# median of the last BASELINE steps, and at least DISSOLVE_STEP) and lasts while the steps stay
# near the run's own (RUN_DROP); if its ends differ by at least DISSOLVE_TOTAL and do not match
# along the flow, it was a gradual transition. On the squirrel clip at 96 px the step between
# frames is 0.013 (median), 0.031 at most; a dissolve into a pan over a photo steps 0.15-0.19,
# then the pan 0.055-0.07.
DISSOLVE_STEP = 0.02
DISSOLVE_FACTOR = 3.0
BASELINE = 12
MIN_BASELINE = 3  # steps a shot must show before a run of change can start in it
RUN_DROP = 0.5  # a run ends where the change falls under this share of the run's median step
DISSOLVE_TOTAL = 0.25
MAX_DISSOLVE = 60  # frames; a longer run of change is camera motion or action, not a transition
SEAM_TOLERANCE = 1 / 255  # how far a fast-video warm-up may leave a frame from the one-go render


@dataclass(frozen=True)
class Segment:
    """A piece of a clip that one task renders: it owns frames ``[start, end)``.

    ``context_start`` <= ``start``: frames rendered (or, with the previous segment's outputs,
    only read) before ``start`` to carry the shot into it; their outputs are not kept. ``fresh``:
    ``start`` is a shot start (or frame 0), so the segment needs nothing before it.
    Frame indices count from the first frame of the job's range.
    """

    index: int
    start: int
    end: int
    context_start: int
    fresh: bool

    def __post_init__(self) -> None:
        if not 0 <= self.context_start <= self.start < self.end:
            raise InvalidInputError(f"segment {self.index}: expected 0 <= context_start <= start < end, got "
                                    f"{self.context_start}, {self.start}, {self.end}")
        if self.fresh and self.context_start != self.start:
            raise InvalidInputError(f"segment {self.index}: a fresh segment has no context")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        try:
            return cls(int(data["index"]), int(data["start"]), int(data["end"]), int(data["context_start"]),
                       bool(data["fresh"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"segment {data!r}: expected index, start, end, context_start, fresh") from exc


def plan_segments(n_frames: int, cuts: Sequence[int], segment_frames: int, overlap: int) -> list[Segment]:
    """The segments of a clip of ``n_frames`` whose shots start at 0 and at ``cuts``.

    Consecutive whole shots are packed into one segment while they fit in ``segment_frames`` (a
    film of short shots should not become a thousand tiny tasks, and a cut inside a segment costs
    nothing: the chain restarts there). A shot longer than that is cut into the fewest chunks of at
    most ``segment_frames``, of near-equal length; each chunk after its shot's first gets
    ``overlap`` frames of context, never reaching back across the shot start.
    """
    if n_frames < 1:
        raise InvalidInputError(f"plan: a clip needs at least one frame, got {n_frames}")
    if segment_frames < 1:
        raise InvalidInputError(f"plan: segment_frames must be at least 1, got {segment_frames}")
    if overlap < 0:
        raise InvalidInputError(f"plan: overlap must be 0 or more, got {overlap}")
    starts = sorted({0, *cuts})
    if starts[-1] >= n_frames or starts[0] < 0:
        raise InvalidInputError(f"plan: cuts must lie within 1..{n_frames - 1}, got {sorted(cuts)}")
    bounds = [*starts, n_frames]
    pieces: list[tuple[int, int, bool]] = []  # (start, end, fresh)
    for shot_start, shot_end in zip(bounds, bounds[1:]):
        length = shot_end - shot_start
        if pieces and pieces[-1][2] and shot_end - pieces[-1][0] <= segment_frames:
            pieces[-1] = (pieces[-1][0], shot_end, True)  # pack it with the shots before
            continue
        chunks = math.ceil(length / segment_frames)
        edges = [shot_start + round(i * length / chunks) for i in range(chunks + 1)]
        pieces.extend((a, b, i == 0) for i, (a, b) in enumerate(zip(edges, edges[1:])))
    segments = []
    for index, (start, end, fresh) in enumerate(pieces):
        shot_start = max(s for s in starts if s <= start)
        context = start if fresh else max(shot_start, start - overlap)
        segments.append(Segment(index, start, end, context, fresh))
    return segments


def segment_overlap(params: VideoParams) -> int:
    """The context frames a segment inside a shot needs, by method (pass it to :func:`plan_segments`).

    Ruder: the earlier frames its long-term guides look at (``max(long_term)``); the segment is
    handed the previous segment's outputs of them (the hand-over, README "Video"). Fast video: the
    warm-up after which the blend has forgotten where it started: a difference d at the first
    context frame is at most blend^k * d after k frames, so k = log(tolerance) / log(blend) brings
    a full-scale difference under one level, plus one frame for rounding (9 at blend 0.5; measured
    with bench/video_handover.py on the squirrel clip: 6 frames already bring 47/255 down to 1).
    Without stabilization frames are independent and need no context.
    """
    if isinstance(params, VideoGatysParams):
        return max(params.long_term) if params.temporal else 0
    if not params.temporal or params.blend <= 0:
        return 0
    return math.ceil(math.log(SEAM_TOLERANCE) / math.log(params.blend)) + 1


def stylize_segment(
    frames: Iterable[np.ndarray],
    stylizer: ClipStylizer,
    params: VideoParams,
    segment: Segment,
    shot_starts: Collection[int],
    *,
    finished: Sequence[np.ndarray] = (),
    previous: Sequence[np.ndarray] = (),
    total: int | None = None,
    on_frame: FrameCallback | None = None,
) -> Iterator[tuple[np.ndarray, FrameReport]]:
    """Render one segment: ``frames`` are the clip's frames ``[segment.context_start, segment.end)``.

    Yields ``(output, report)`` for the frames the segment owns, ``report.index`` counted from the
    clip's first frame. ``shot_starts`` are the clip's cuts (any of them may fall in the segment).
    The chain is carried into ``segment.start`` as follows:

    - ``previous``: the previous segment's outputs of the last frames before ``start`` (at most the
      context). They are fed to the chain as done frames, so the segment continues exactly as one
      host would have: the same bytes, for every method (hand-over).
    - ``finished``: outputs of the segment's first frames from an earlier attempt, fed after
      ``previous`` (without it, the context is skipped), so a resumed segment gives the same bytes.
    - otherwise the context frames are rendered from the shot's state at ``context_start``, as a
      warm-up, and dropped (for fast video the blend forgets that state geometrically).
    """
    if params.passes > 1 and not (segment.fresh and segment.start == 0 and (total is None or segment.end >= total)):
        raise InvalidInputError("multi-pass video (passes > 1) needs the whole clip in one segment")
    context = segment.start - segment.context_start
    if len(previous) > context:
        raise InvalidInputError(f"segment {segment.index}: {len(previous)} previous outputs for {context} context frames")
    if previous:
        skip, seeded = context - len(previous), [*previous, *finished]
    elif finished:
        # Exact where the guides reach back one frame (fast video) or the segment starts a shot;
        # a Ruder segment inside a shot is handed ``previous``, which covers its deeper guides.
        skip, seeded = context, list(finished)
    else:
        skip, seeded = 0, []
    first = segment.context_start + skip  # the clip index of the first frame the loop sees
    lead = segment.start - first  # frames the loop sees before the owned ones
    starts = {c - first for c in shot_starts if first < c < segment.end}
    source = itertools.islice(frames, skip, None)

    def in_clip(report: FrameReport) -> FrameReport:
        index = report.index + first
        return dataclasses.replace(report, index=index, total=total, scene_cut=report.scene_cut or index in shot_starts)

    def owned(report: FrameReport) -> None:
        if report.index >= lead and on_frame is not None:
            on_frame(in_clip(report))

    for image, report in stylize_clip(source, stylizer, params, shot_starts=starts, finished=seeded, on_frame=owned):
        if report.index >= lead:
            yield image, in_clip(report)


@dataclass(frozen=True)
class SeamReport:
    """How steady a clip rendered in segments is across its seams (Lai et al.'s warping error).

    ``mean``: the clip's mean warping error (frames that start a shot have none). ``seams``: the
    warping error of each mid-shot segment's first frame against the frame before it, by frame index.
    """

    mean: float
    seams: dict[int, float]

    @property
    def ratios(self) -> dict[int, float]:
        """Each seam's error over the clip's mean (the acceptance asks for at most 1.5)."""
        return {start: _ratio(error, self.mean) for start, error in self.seams.items()}

    @property
    def worst(self) -> float:
        return max(self.ratios.values(), default=0.0)


def _ratio(error: float, mean: float) -> float:
    if mean > 0:
        return error / mean
    return 0.0 if error == 0 else float("inf")


def seam_errors(
    frames: Sequence[np.ndarray],
    outputs: Sequence[np.ndarray],
    segments: Sequence[Segment],
    shot_starts: Collection[int],
    flow_method: str = "dis",
) -> SeamReport:
    """The warping error across each seam between segments of one shot, against the clip's mean.

    ``frames`` are the inputs at the size of ``outputs`` (the flow and masks come from them, as for
    every warping error here). Seams at a shot start are not seams: nothing should carry over. The
    mean leaves the seams out, so that a jump does not raise the bar it is measured against.
    """
    if len(frames) != len(outputs):
        raise InvalidInputError(f"seams: {len(frames)} frames but {len(outputs)} outputs")
    errors = measure_clip(frames, outputs, set(shot_starts), flow_method)
    seams = {s.start: error for s in segments if not s.fresh and (error := errors[s.start]) is not None}
    measured = [e for index, e in enumerate(errors) if e is not None and index not in seams]
    return SeamReport(float(np.mean(measured)) if measured else 0.0, seams)


def find_cuts(
    frames: Iterable[np.ndarray],
    *,
    size: int = PLANNING_SIZE,
    scene_cut: float = 0.5,
    flow_method: str = "dis",
    dissolves: bool = True,
) -> list[int]:
    """The indices of the frames that start a new shot (0 excluded), in one pass over ``frames``.

    A hard cut is where the frame loop would see one: fewer than ``scene_cut`` of the pixels have
    a consistent flow whose warp matches the previous frame (computed here at ``size`` px). A
    dissolve is a run of gradual colour change (twin comparison, module docstring) whose first and
    last frames do not match along the flow; its middle frame starts the new shot.
    """
    check_flow_method(flow_method)
    cuts: list[int] = []
    previous: np.ndarray | None = None
    previous_hist: np.ndarray | None = None
    run: tuple[int, np.ndarray, np.ndarray] | None = None  # (first index, its small frame, its histogram)
    steps: list[float] = []  # the recent steps outside any run: the shot's usual change
    run_steps: list[float] = []  # the steps of the current run
    index = -1
    for index, frame in enumerate(frames):
        small = shrink(frame, size)
        hist = colour_histogram(small)
        if previous is not None and previous_hist is not None:
            if small.shape != previous.shape:
                raise InvalidInputError(f"frame {index}: frame sizes change within the clip")
            hard = scene_cut > 0 and pair_similarity(small, previous, flow_method) < scene_cut
            step = histogram_distance(hist, previous_hist)
            usual = DISSOLVE_FACTOR * float(np.median(steps)) if steps else 0.0
            if hard:
                cuts.append(index)
                run, steps = None, []
            elif run is None and dissolves and len(steps) >= MIN_BASELINE and step >= max(DISSOLVE_STEP, usual):
                run, run_steps = (index - 1, previous, previous_hist), [step]
            elif run is not None and step >= RUN_DROP * float(np.median(run_steps)) and step >= DISSOLVE_STEP:
                run_steps.append(step)
                if index - run[0] > MAX_DISSOLVE:
                    run, steps = None, []
            else:
                if run is not None:
                    # The change slowed: the transition (if it was one) is over, and what follows
                    # is a shot with a usual change of its own, to be learnt afresh.
                    cuts.extend(_dissolve(run, index - 1, previous, previous_hist, scene_cut, flow_method))
                    run, steps = None, []
                steps = [*steps[1 - BASELINE :], step]
        previous, previous_hist = small, hist
    if run is not None and previous is not None and previous_hist is not None:
        cuts.extend(_dissolve(run, index, previous, previous_hist, scene_cut, flow_method))
    return cuts


def _dissolve(
    run: tuple[int, np.ndarray, np.ndarray], last: int, frame: np.ndarray, hist: np.ndarray, scene_cut: float,
    flow_method: str,
) -> list[int]:
    """The middle of the run ``run[0]..last`` if its ends are two different shots, else nothing."""
    first, first_frame, first_hist = run
    if last - first < 2 or histogram_distance(hist, first_hist) < DISSOLVE_TOTAL:
        return []
    if pair_similarity(frame, first_frame, flow_method) >= max(scene_cut, 0.5):
        return []  # the ends still match along the flow: the camera moved, the shot went on
    return [(first + last + 1) // 2]


def shrink(frame: np.ndarray, size: int) -> np.ndarray:
    """``frame`` with its long side at most ``size`` (area-averaged: no aliasing to fool the flow)."""
    height, width = frame.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(frame, dtype=np.uint8)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(np.ascontiguousarray(frame, dtype=np.uint8), shape, interpolation=cv2.INTER_AREA)


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """A normalized RGB histogram (HISTOGRAM_BINS per channel) as float32."""
    bins = [HISTOGRAM_BINS] * 3
    hist = cv2.calcHist([np.ascontiguousarray(frame, dtype=np.uint8)], [0, 1, 2], None, bins, [0, 256] * 3)
    return hist / max(float(hist.sum()), 1.0)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two colour histograms: 0 alike, 1 disjoint."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))
