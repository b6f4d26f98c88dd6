"""Shots and segments: the planning pass finds cuts and dissolves and nothing else, segments cover the
clip, and a clip rendered in segments gives the bytes of a one-go render (or within 1/255 at a
fast-video warm-up seam)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest
from PIL import Image

from style_engine.errors import InvalidInputError
from style_engine.params import parse_params
from style_engine.video.shots import Segment, find_cuts, plan_segments, seam_errors, segment_overlap, stylize_segment
from style_engine.video.ruder import FrameOutput, Guide, RuderGatys, fit_frame, stylize_clip
from style_engine.video.itn import StabilizedITN
from tests.test_video_itn import FlickeringNet
from tests.video_clips import panning_frames, texture

pytestmark = pytest.mark.unit


def _three_sources() -> tuple[list[np.ndarray], list[int]]:
    """Two pans over different textures and a zoom over a third, joined at frames 8 and 16."""
    picture = texture(96, 128, seed=5)
    zoom = [cv2.warpAffine(picture, cv2.getRotationMatrix2D((64, 48), 0, 1 + 0.02 * t), (128, 96))[24:72, 32:96]
            for t in range(8)]
    return panning_frames(8, seed=1) + panning_frames(8, seed=7) + zoom, [8, 16]


def _dissolve(length: int, steps: tuple[int, int] = (1, 1)) -> list[np.ndarray]:
    """A pan over one texture dissolving (linear blend, ``length`` mixed frames) into a pan over another."""
    a, b = panning_frames(14 + length, seed=1, step=steps[0]), panning_frames(20 + length, seed=9, step=steps[1])
    weights = np.linspace(0, 1, length + 2)[1:-1]
    mixed = [((1 - w) * a[14 + i] + w * b[i]).round().astype(np.uint8) for i, w in enumerate(weights)]
    return a[:14] + mixed + b[length:]


def test_cuts_between_three_sources_are_found_exactly() -> None:
    frames, cuts = _three_sources()
    assert find_cuts(frames) == cuts
    assert find_cuts(iter(frames), size=32) == cuts  # any iterable, and the planning size barely matters


def test_a_pan_and_a_zoom_over_one_picture_are_one_shot() -> None:
    picture = texture(120, 160, seed=4)
    zoom = [cv2.warpAffine(picture, cv2.getRotationMatrix2D((80, 60), 0, 1 + 0.015 * t), (160, 120))[30:90, 40:120]
            for t in range(30)]
    assert find_cuts(zoom) == []
    assert find_cuts(panning_frames(40, step=1)) == []


@pytest.mark.parametrize(("length", "steps"), [(6, (1, 1)), (12, (1, 1)), (24, (1, 1)), (12, (0, 2))])
def test_a_dissolve_is_a_cut_at_its_middle(length: int, steps: tuple[int, int]) -> None:
    # (0, 2): from a still shot into a moving one, whose every step is above the still shot's usual
    # change; the transition still ends where its own steps end.
    frames = _dissolve(length, steps)
    middle = 14 + length // 2
    assert find_cuts(frames, dissolves=False) == []  # too gradual for the flow test
    (cut,) = find_cuts(frames)
    assert abs(cut - middle) <= 1, (cut, middle)


def test_plan_packs_short_shots_and_chunks_long_ones_with_context_inside_the_shot() -> None:
    segments = plan_segments(100, [10, 20, 30, 90], segment_frames=25, overlap=4)
    assert [(s.start, s.end, s.context_start, s.fresh) for s in segments] == [
        (0, 20, 0, True),  # shots 0-10 and 10-20 packed
        (20, 30, 20, True),  # 20-30 does not fit with them
        (30, 50, 30, True),  # the 60-frame shot 30-90 in three chunks of 20
        (50, 70, 46, False),
        (70, 90, 66, False),
        (90, 100, 90, True),
    ]
    assert [s.index for s in segments] == list(range(6))
    covered = [f for s in segments for f in range(s.start, s.end)]
    assert covered == list(range(100))
    # Context never reaches back across a shot start.
    assert plan_segments(12, [5], segment_frames=4, overlap=9)[2].context_start == 5
    assert plan_segments(7, [], segment_frames=50, overlap=4) == [Segment(0, 0, 7, 0, True)]


def test_segments_round_trip_and_bad_plans_are_refused() -> None:
    segment = Segment(3, 40, 60, 36, False)
    assert Segment.from_dict(segment.to_dict()) == segment
    assert all(type(v) in (int, bool) for v in segment.to_dict().values())
    with pytest.raises(InvalidInputError, match="segment"):
        Segment.from_dict({"index": 1})
    with pytest.raises(InvalidInputError, match="context_start"):
        Segment(0, 5, 4, 5, True)
    with pytest.raises(InvalidInputError, match="cuts"):
        plan_segments(10, [10], 4, 0)
    with pytest.raises(InvalidInputError, match="segment_frames"):
        plan_segments(10, [], 0, 0)


def _gatys_params(**overrides: object):  # noqa: ANN202
    base = {"size": 48, "iterations": 4, "frame_iterations": 3, "precision": "fp32"}
    return parse_params("video_gatys", base | overrides)


def _render_segments(frames, stylizer, params, segments, cuts, *, hand_over: bool):  # noqa: ANN001, ANN202
    """Each segment on its own, as separate hosts would; with ``hand_over``, fed the previous one's outputs."""
    outputs: list[np.ndarray] = []
    for segment in segments:
        previous = outputs[segment.context_start : segment.start] if hand_over else []
        part = frames[segment.context_start : segment.end]
        rendered = list(stylize_segment(part, stylizer, params, segment, cuts, previous=previous))
        assert [r.index for _, r in rendered] == list(range(segment.start, segment.end))
        outputs.extend(image for image, _ in rendered)
    return outputs


def test_ruder_split_at_its_cuts_renders_the_bytes_of_one_go() -> None:
    frames = panning_frames(2, seed=1) + panning_frames(2, seed=7) + panning_frames(2, seed=3)
    cuts = [2, 4]
    style = Image.fromarray(texture(32, 32, seed=3))
    params = _gatys_params(scene_cut=0.0)  # only the planned cuts restart the chain: both runs must obey them
    rendered = list(stylize_clip(frames, RuderGatys([style], params), params, shot_starts=cuts))
    one_go = [image for image, _ in rendered]
    # The one-go renderer really restarts at the planned cuts (a first frame's full budget), and only there.
    assert [r.scene_cut for _, r in rendered] == [False, False, True, False, True, False]
    assert [r.iterations == params.iterations for _, r in rendered] == [True, False] * 3
    segments = plan_segments(len(frames), cuts, segment_frames=2, overlap=2)
    assert [(s.start, s.fresh) for s in segments] == [(0, True), (2, True), (4, True)]
    apart = _render_segments(frames, RuderGatys([style], params), params, segments, cuts, hand_over=False)
    assert all(np.array_equal(a, b) for a, b in zip(one_go, apart, strict=True))


def test_ruder_mid_shot_chunk_handed_the_previous_outputs_continues_exactly() -> None:
    frames = panning_frames(5, step=2)
    style = Image.fromarray(texture(32, 32, seed=3))
    params = _gatys_params(long_term=(1, 2))
    one_go = [image for image, _ in stylize_clip(frames, RuderGatys([style], params), params)]
    segments = plan_segments(len(frames), [], segment_frames=3, overlap=2)
    assert [(s.context_start, s.start, s.fresh) for s in segments] == [(0, 0, True), (0, 2, False)]
    apart = _render_segments(frames, RuderGatys([style], params), params, segments, [], hand_over=True)
    assert all(np.array_equal(a, b) for a, b in zip(one_go, apart, strict=True))
    inputs = [fit_frame(f, params.size) for f in frames]  # the flow is measured at the outputs' size
    assert seam_errors(inputs, apart, segments, []).worst <= 1.5  # the seam criterion


def _itn_params(**overrides: object):  # noqa: ANN202
    return parse_params("video_itn", {"model": "test", "size": 64, **overrides})


def test_fast_video_chunks_warm_up_to_within_one_level_of_one_go() -> None:
    frames = panning_frames(30, step=1)
    params = _itn_params()
    one_go = [image for image, _ in stylize_clip(frames, StabilizedITN(FlickeringNet()), params)]
    assert segment_overlap(params) == 9  # blend 0.5: 0.5^8 * 255 < 1, and a frame for rounding
    segments = plan_segments(len(frames), [], segment_frames=10, overlap=segment_overlap(params))
    apart = _render_segments(frames, StabilizedITN(FlickeringNet()), params, segments, [], hand_over=False)
    difference = [int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(one_go, apart, strict=True)]
    assert max(difference) <= 1, difference
    # Without the warm-up the chunk's first frame is the network alone: far from the one-go frame.
    cold = plan_segments(len(frames), [], segment_frames=10, overlap=0)
    jumpy = _render_segments(frames, StabilizedITN(FlickeringNet()), params, cold, [], hand_over=False)
    assert np.abs(jumpy[10].astype(int) - one_go[10].astype(int)).max() > 20
    # Handed the previous chunk's last output, a chunk needs no warm-up and gives the same bytes.
    exact = _render_segments(frames, StabilizedITN(FlickeringNet()), params,
                             plan_segments(len(frames), [], segment_frames=10, overlap=1), [], hand_over=True)
    assert all(np.array_equal(a, b) for a, b in zip(one_go, exact, strict=True))


def test_seam_errors_tell_a_jump_from_a_steady_seam() -> None:
    frames = panning_frames(12, step=1)
    segments = plan_segments(12, [], segment_frames=6, overlap=2)
    rng = np.random.default_rng(0)
    steady = [np.clip(f.astype(int) + rng.integers(-3, 4, f.shape), 0, 255).astype(np.uint8) for f in frames]
    jump = steady[:6] + [np.clip(f.astype(int) + 40, 0, 255).astype(np.uint8) for f in steady[6:]]
    calm, jumpy = seam_errors(frames, steady, segments, []), seam_errors(frames, jump, segments, [])
    assert list(calm.seams) == [6] and calm.worst < 1.5
    assert jumpy.worst > 10 * calm.worst
    assert jumpy.mean == pytest.approx(calm.mean, rel=0.2)  # the jump is not in the bar it is measured against
    # At a cut nothing carries over, so it is no seam.
    assert seam_errors(frames, jump, plan_segments(12, [6], 6, 2), [6]).seams == {}


def test_overlap_by_method() -> None:
    assert segment_overlap(_gatys_params(long_term=(1, 2, 4))) == 4  # the hand-over's guides
    assert segment_overlap(_gatys_params(temporal=False)) == 0
    assert segment_overlap(_itn_params(blend=0.7)) > segment_overlap(_itn_params(blend=0.5)) > segment_overlap(
        _itn_params(blend=0.3))
    assert segment_overlap(_itn_params(stabilize=False)) == 0


class Offsets:
    """A frame stylizer that returns the frame and records the offsets of the guides it was given."""

    def __init__(self) -> None:
        self.offsets: list[list[int]] = []

    def __call__(self, frame: np.ndarray, guides: Sequence[Guide]) -> FrameOutput:
        self.offsets.append([g.offset for g in guides])
        return FrameOutput(frame)

    def settings(self) -> dict[str, float]:
        return {}


def test_a_resumed_chunk_inside_a_shot_still_sees_the_previous_chunk_through_its_deeper_guides() -> None:
    frames = panning_frames(10, step=1)
    params = _gatys_params(size=64, long_term=(1, 2, 4))
    segment = Segment(1, 5, 10, 1, False)
    previous = frames[1:5]  # the identity stylizer's outputs
    whole, resumed = Offsets(), Offsets()
    list(stylize_segment(frames[1:], whole, params, segment, [], previous=previous))
    list(stylize_segment(frames[1:], resumed, params, segment, [], previous=previous, finished=frames[5:7]))
    assert whole.offsets == [[1, 2, 4]] * 5
    assert resumed.offsets == whole.offsets[2:]


def test_a_resumed_segment_gives_the_same_bytes_and_multi_pass_is_not_split() -> None:
    frames = panning_frames(12, step=1)
    params = _itn_params()
    segment = Segment(1, 6, 12, 2, False)
    part = frames[2:12]
    whole = [image for image, _ in stylize_segment(part, StabilizedITN(FlickeringNet()), params, segment, [])]
    resumed = list(stylize_segment(part, StabilizedITN(FlickeringNet()), params, segment, [], finished=whole[:3]))
    assert [r.resumed for _, r in resumed] == [True] * 3 + [False] * 3
    assert all(np.array_equal(a, b) for a, (b, _) in zip(whole, resumed, strict=True))
    with pytest.raises(InvalidInputError, match="multi-pass"):
        list(stylize_segment(part, RuderGatys([], _gatys_params(passes=2)), _gatys_params(passes=2), segment, []))
