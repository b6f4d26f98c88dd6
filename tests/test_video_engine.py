"""The video loop: guides line up with known motion, cuts restart the chain, the temporal loss
steadies the output, and a resumed run reproduces the same frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image

from style_engine.errors import InvalidInputError
from style_engine.params import parse_params
from style_engine.video.ruder import FrameOutput, Guide, ruder_gatys, stylize_frames, summarize
from tests.video_clips import panning_frames, texture

pytestmark = pytest.mark.unit


class Recorder:
    """A frame stylizer that returns the frame unchanged (or noise) and keeps the guides it was given."""

    def __init__(self, noise: bool = False) -> None:
        self.noise = noise
        self.guides: list[Sequence[Guide]] = []
        self.rng = np.random.default_rng(0)

    def __call__(self, frame: np.ndarray, guides: Sequence[Guide]) -> FrameOutput:
        self.guides.append(guides)
        image = self.rng.integers(0, 256, frame.shape, np.uint8) if self.noise else frame
        return FrameOutput(image, {"style_dist": 1.0}, 1)


def test_guides_follow_known_motion_closest_first_without_double_counting() -> None:
    frames = panning_frames(6)
    recorder = Recorder()
    reports = [report for _, report in stylize_frames(frames, recorder, long_term=(1, 2, 4))]
    assert [len(g) for g in recorder.guides] == [0, 1, 2, 2, 3, 3]
    assert [g.offset for g in recorder.guides[4]] == [1, 2, 4]
    total = sum(g.weight for g in recorder.guides[4])
    assert float(total.max()) <= 1.0 + 1e-5
    # The identity stylizer's output warped by the flow is the next frame: near-zero warping error.
    assert max(r.warping_error for r in reports[1:]) < 2e-3
    assert reports[0].warping_error is None


def test_warping_error_tells_flicker_from_steady_output() -> None:
    frames = panning_frames(4)
    steady = summarize([r for _, r in stylize_frames(frames, Recorder())])
    flicker = summarize([r for _, r in stylize_frames(frames, Recorder(noise=True))])
    assert flicker["warping_error"] > 50 * steady["warping_error"]


def test_scene_cut_restarts_the_chain() -> None:
    frames = panning_frames(4, seed=1) + panning_frames(3, seed=7)
    recorder = Recorder()
    reports = [r for _, r in stylize_frames(frames, recorder, long_term=(1, 2, 4))]
    assert [r.scene_cut for r in reports] == [False, False, False, False, True, False, False]
    assert [len(g) for g in recorder.guides] == [0, 1, 2, 2, 0, 1, 2]
    assert reports[4].warping_error is None


def test_steady_shot_has_no_false_cuts() -> None:
    reports = [r for _, r in stylize_frames(panning_frames(5, step=3), Recorder())]
    assert not any(r.scene_cut for r in reports)


def test_frames_that_change_size_are_refused() -> None:
    frames = [texture(48, 64), texture(40, 64)]
    with pytest.raises(InvalidInputError, match="frame sizes change"):
        list(stylize_frames(frames, Recorder()))


def _style() -> Image.Image:
    return Image.fromarray(texture(64, 64, seed=3)[::-1].copy())


def _params(**overrides: object):  # noqa: ANN202
    base = {"size": 48, "iterations": 12, "frame_iterations": 10, "precision": "fp32"}
    return parse_params("video_gatys", base | overrides)


def test_temporal_loss_lowers_the_warping_error() -> None:
    frames = panning_frames(3, step=2)
    style = _style()
    alone = summarize([r for _, r in ruder_gatys(frames, [style], _params(temporal=False))])
    chained = summarize([r for _, r in ruder_gatys(frames, [style], _params(tolerance=None))])
    assert chained["warping_error"] < alone["warping_error"] / 3, (chained, alone)
    assert chained["style_dist"] < 2 * alone["style_dist"]


def test_resumed_run_reproduces_the_same_frames() -> None:
    frames = panning_frames(4, step=2)
    style = _style()
    params = _params(iterations=6, frame_iterations=4)
    full = [out for out, _ in ruder_gatys(frames, [style], params)]
    resumed = list(ruder_gatys(frames, [style], params, finished=full[:2]))
    assert [r.resumed for _, r in resumed] == [True, True, False, False]
    for expected, (out, _) in zip(full, resumed):
        assert np.array_equal(expected, out)


class Blender:
    """A frame stylizer that takes the blend it is offered as its result (records which frames ran)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def __call__(self, frame: np.ndarray, guides: Sequence[Guide]) -> FrameOutput:
        from style_engine.images import tensor_to_image

        self.frames.append(frame)
        return FrameOutput(np.asarray(tensor_to_image(guides[0].warped)), {}, 1)


def test_multi_pass_sweeps_both_ways_steadies_the_clip_and_respects_cuts() -> None:
    from style_engine.video.ruder import measure_clip, refine_passes

    frames = panning_frames(5, seed=2) + panning_frames(3, seed=9)
    rng = np.random.default_rng(1)
    noisy = [np.clip(f + rng.normal(0, 25, f.shape), 0, 255).astype(np.uint8) for f in frames]
    cuts = {5}
    blender = Blender()
    refined = refine_passes(frames, noisy, blender, passes=3, shot_starts=cuts)
    # Pass 2 (backward) skips the last frame and frame 4 (its neighbour 5 is across the cut);
    # pass 3 (forward) skips frame 0 and frame 5 (the cut).
    assert len(blender.frames) == 2 * (len(frames) - 2)
    before = [e for e in measure_clip(frames, noisy, cuts) if e is not None]
    after = [e for e in measure_clip(frames, refined, cuts) if e is not None]
    assert measure_clip(frames, refined, cuts)[5] is None
    assert np.mean(after) < 0.5 * np.mean(before)


def test_extra_term_joins_the_objective_and_tolerance_stops_early() -> None:
    from style_engine.gatys.render import TOLERANCE_WINDOW, ExtraTerm, stylize
    from style_engine.params import GatysParams

    content = Image.fromarray(texture(32, 32, seed=1))
    params = GatysParams(size=32, iterations=20, precision="fp32")
    seen: list[tuple[int, ...]] = []

    def pull_to_grey(x):  # noqa: ANN001, ANN202
        seen.append(tuple(x.shape))
        return 1e3 * ((x - 0.5) ** 2).mean()

    full = stylize(content, [_style()], params, extra_term=ExtraTerm("grey", pull_to_grey))
    assert full.iterations == 20 and "grey" in full.losses
    assert full.losses["total"] == pytest.approx(sum(full.losses[k] for k in ("content", "style", "tv", "grey")), rel=1e-4)
    assert seen[0] == (1, 3, 32, 32)
    stopped = stylize(content, [_style()], params, tolerance=100.0)  # nothing falls 100x in 10 evaluations
    assert stopped.iterations == TOLERANCE_WINDOW + 1


def test_video_params_budgets_and_validation() -> None:
    params = _params(iterations=30, frame_iterations=7)
    assert (params.frame_params(first=True).iterations, params.frame_params(first=True).init) == (30, "content")
    assert (params.frame_params(first=False).iterations, params.frame_params(first=False).init) == (7, "image")
    baseline = _params(iterations=30, frame_iterations=7, temporal=False)
    assert (baseline.frame_params(first=False).iterations, baseline.frame_params(first=False).init) == (7, "content")
    for bad, message in (({"long_term": [2, 4]}, "long_term"), ({"flow": "raft"}, "flow"),
                         ({"scene_cut": 1.5}, "scene_cut"), ({"passes": 0}, "passes")):
        with pytest.raises(InvalidInputError, match=message):
            _params(**bad)


def test_per_frame_baseline_spends_the_later_budget_on_later_frames() -> None:
    reports = [r for _, r in ruder_gatys(panning_frames(2), [_style()], _params(iterations=5, frame_iterations=3,
                                                                                  temporal=False))]
    assert [r.iterations for r in reports] == [5, 3]
    assert "temporal" not in reports[1].losses
