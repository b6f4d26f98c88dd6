"""The tiled Gatys objective (issue 19): the same objective as the whole picture's, in bounded memory.

fp32 throughout where exactness is asserted (bf16 rounding differs between a tile and the whole
picture's convolutions); the images come from scikit-image.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from style_engine.errors import InvalidInputError
from style_engine.gatys.render import stylize
from style_engine.images import image_to_tensor, resize_long_side
from style_engine.losses import content_loss, gram, layer_distances
from style_engine.gatys.memory import GIB, RenderPlan, plan_render
from style_engine.params import DEFAULT_STYLE_LAYERS, GatysParams
from style_engine.style_distance import style_dist
from style_engine.gatys.tiled_objective import DEFAULT_HALO, EXACT_HALO, Terms, TilePlan, loss_and_gradient
from style_engine.vgg import VGGFeatures

LAYERS = ("relu4_2", *DEFAULT_STYLE_LAYERS)


def _problem(size: int, precision: str = "fp32") -> tuple[VGGFeatures, torch.Tensor, Terms]:
    """A picture near its content (where an optimization spends its time) and the balanced
    objective's terms against coffee's style, at ``size`` px."""
    vgg = VGGFeatures("caffe", LAYERS, "max", "cpu", precision)
    content = image_to_tensor(resize_long_side(Image.fromarray(data.astronaut()), size))
    style = image_to_tensor(resize_long_side(Image.fromarray(data.coffee()), size))
    x = (content + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        style_features, content_features = vgg(style), vgg(content)
    targets = {name: gram(style_features[name]) for name in DEFAULT_STYLE_LAYERS}
    photo = layer_distances(content_features, targets)
    weights = {name: 1e6 / float(photo[name]) for name in DEFAULT_STYLE_LAYERS}
    return vgg, x, Terms(targets, weights, {"relu4_2": content_features["relu4_2"].float()}, 1.0)


def _whole(vgg: VGGFeatures, x: torch.Tensor, terms: Terms) -> tuple[float, torch.Tensor]:
    image = x.clone().requires_grad_(True)
    features = vgg(image)
    distances = layer_distances(features, terms.style_targets)
    loss = sum(w * distances[n] for n, w in terms.style_weights.items()) + content_loss(features, terms.content_targets)
    loss.backward()
    assert image.grad is not None
    return float(loss.detach()), image.grad


def _compare(tiled: tuple[float, float, torch.Tensor], whole: tuple[float, torch.Tensor]) -> tuple[float, float, float]:
    style, content, gradient = tiled
    loss, reference = whole
    cosine = torch.nn.functional.cosine_similarity(gradient.flatten(), reference.flatten(), dim=0).item()
    return abs(style + content - loss) / loss, cosine, float((gradient - reference).norm() / reference.norm())


def test_at_512_px_in_128_px_tiles_the_default_halo_matches_the_whole_picture() -> None:
    vgg, x, terms = _problem(512)
    loss_error, cosine, gradient_error = _compare(loss_and_gradient(vgg, x, TilePlan(128), terms), _whole(vgg, x, terms))
    assert TilePlan(128).count(tuple(x.shape[-2:])) == 16
    assert loss_error <= 1e-3 and cosine >= 0.999 and gradient_error <= 0.01, (loss_error, cosine, gradient_error)


def test_a_halo_as_wide_as_the_receptive_field_matches_to_float_precision() -> None:
    vgg, x, terms = _problem(256)
    whole = _whole(vgg, x, terms)
    loss_error, cosine, gradient_error = _compare(loss_and_gradient(vgg, x, TilePlan(128, EXACT_HALO), terms), whole)
    assert loss_error <= 1e-6 and gradient_error <= 1e-5, (loss_error, gradient_error)
    # ... and no halo at all is far off: the halo is what makes the tiles exact.
    assert _compare(loss_and_gradient(vgg, x, TilePlan(128, 0), terms), whole)[2] > 0.1


def test_tiles_of_a_picture_whose_size_is_off_the_pooling_grid_still_match() -> None:
    """216 x 200 px: the last row and column of tiles end off the 16 px grid, where pooling floors."""
    vgg, x, terms = _problem(216)
    _, _, gradient_error = _compare(loss_and_gradient(vgg, x, TilePlan(96, EXACT_HALO), terms), _whole(vgg, x, terms))
    assert x.shape[-1] % 16 and gradient_error <= 1e-5


@pytest.fixture(scope="module")
def renders() -> dict[str, object]:
    """One 768 px render (two levels: 384 and 768 px) untiled and tiled at 256 px, few evaluations."""
    content = Image.fromarray(data.astronaut()).resize((768, 768), Image.Resampling.LANCZOS)
    style = Image.fromarray(data.coffee())
    params = GatysParams(size=768, iterations=6, precision="fp32")
    whole = stylize(content, [style], params)
    tiled = stylize(content, [style], params, tiles=256)
    return {"content": content, "style": style, "whole": whole, "tiled": tiled}


def test_a_768_px_render_tiled_at_256_px_is_the_untiled_render(renders: dict) -> None:
    from skimage.metrics import structural_similarity

    whole, tiled, style = renders["whole"], renders["tiled"], renders["style"]
    assert whole.tile_plan is None
    assert tiled.tile_plan["levels"] == [{"tile": 256, "halo": DEFAULT_HALO, "tiles": 4},
                                         {"tile": 256, "halo": DEFAULT_HALO, "tiles": 9}]
    ours, theirs = style_dist(tiled.image, style, size=384), style_dist(whole.image, style, size=384)
    assert abs(ours / theirs - 1) <= 0.02, (ours, theirs)
    ssim = structural_similarity(np.asarray(tiled.image), np.asarray(whole.image), channel_axis=2, data_range=255)
    assert ssim >= 0.98, ssim
    assert tiled.image.tobytes() != renders["content"].tobytes()  # it was stylized at all


def test_the_tiled_render_has_no_seams_at_tile_borders(renders: dict) -> None:
    """Mean gradient magnitude of the output across the tile borders (rows/columns 256, 512) relative
    to that across every other row/column boundary: within 5 % of the same ratio in the untiled
    render of the same picture. Measured against the untiled render because two border lines of
    one picture differ from its average line by its content alone (Tuebingen's row 256 is 1.6x its
    average, untiled or not), which says nothing about seams."""

    def border_ratios(image: Image.Image) -> list[float]:
        luma = np.asarray(image, dtype=np.float64).mean(axis=2)
        ratios = []
        for profile in (np.abs(np.diff(luma, axis=0)).mean(axis=1), np.abs(np.diff(luma, axis=1)).mean(axis=0)):
            borders = [255, 511]  # [i]: across the boundary between lines i and i + 1
            ratios.append(profile[borders].mean() / np.delete(profile, borders).mean())
        return ratios

    for tiled, whole in zip(border_ratios(renders["tiled"].image), border_ratios(renders["whole"].image)):
        assert abs(tiled / whole - 1) <= 0.05, (tiled, whole)


_PEAK_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    sys.path.insert(0, {root!r})
    from tests.test_tiled_objective import _problem
    from style_engine.gatys.tiled_objective import TilePlan, loss_and_gradient
    def rss(field):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))
    vgg, x, terms = _problem({side}, "bf16")
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM, the peak resident set, to the current one
    before = rss("VmRSS:")
    loss_and_gradient(vgg, x, TilePlan(64, 32), terms)
    print(json.dumps(rss("VmHWM:") - before))
""")


def _peak_bytes(side: int) -> int:
    script = _PEAK_SCRIPT.format(root=os.getcwd(), side=side)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_tiled_objectives_peak_memory_grows_only_by_its_image_sized_buffers() -> None:
    """192 px (3 x 3 tiles of 64 px) against 384 px (6 x 6): the same largest tile region, so the
    peak may grow by the gradient buffer (3 x 4 bytes a pixel) plus 10 % of the peak at 1x. Each
    peak is the resident set's high-water mark over the objective's call, measured in a fresh
    process from the moment its inputs are ready (the whole picture's graph would be 4x at 2x)."""
    small, large = _peak_bytes(192), _peak_bytes(384)
    buffers_growth = 3 * 4 * (384**2 - 192**2)
    assert large - small <= buffers_growth + 0.1 * small, (small, large)


def test_a_render_that_fits_stays_whole_and_one_that_does_not_is_tiled() -> None:
    params = GatysParams(size=4096)
    shapes = [(384, 512), (768, 1024), (1536, 2048), (3072, 4096)]
    cpu = torch.device("cpu")
    assert not plan_render(params, shapes, "bf16", 1024 * GIB, cpu).tiled
    plan = plan_render(params, shapes, "bf16", 16 * GIB, cpu)
    tile = plan.tiles[-1]
    assert plan.tiles[0] is None and tile is not None and tile % 16 == 0 and tile >= 256
    assert plan.final_history == 10
    assert plan_render(params, shapes, "bf16", 8 * GIB, cpu).tiles[-1] < tile  # less memory, smaller tiles
    with pytest.raises(InvalidInputError, match=r"size 4096 px \(4096x3072\) needs about .* GiB of cpu memory even in tiles"):
        plan_render(params, shapes, "bf16", 1 * GIB, cpu)


def test_only_jobs_that_fit_whole_batch() -> None:
    from style_engine.gatys.batched import fits_whole

    assert fits_whole(GatysParams(size=64), "cpu")
    assert not fits_whole(GatysParams(size=16384), "cpu")  # about 900 GiB whole: it runs alone, in tiles


def test_a_tiled_levels_style_grams_are_the_whole_style_images() -> None:
    """At a tiled level the style image (as large as the level) is run in tiles too; with the
    receptive field's halo its Grams are the whole image's to float precision."""
    from style_engine.gatys.objective import Objective, StyleTargetCache

    params = GatysParams(size=256, precision="fp32", multiscale=False)
    vgg = VGGFeatures("caffe", ("relu4_2", *params.style_layers), "max", "cpu", "fp32")
    photo, painting = Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())
    objective = Objective(vgg, params, photo, [painting], [1.0], None, StyleTargetCache())
    whole, tiled = objective.style_grams(256), objective.style_grams(256, tile=64)
    for name, target in whole.items():
        assert float((tiled[name] - target).norm() / target.norm()) < 1e-4, name


def test_a_recorded_plan_is_followed_whatever_memory_is_free() -> None:
    """The plan a Run recorded gives the same pixels again; another plan gives other pixels."""

    content, style = Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())
    params = GatysParams(size=256, iterations=3, precision="fp32", multiscale=True)
    first = stylize(content, [style], params, tiles=64)  # halos narrower than the 256 px level
    record = json.loads(json.dumps(first.tile_plan))  # as the catalog keeps it
    assert [level["tiles"] for level in record["levels"]] == [4, 16]
    again = stylize(content, [style], params, tiles=RenderPlan.from_record(record, params))
    no_halo = RenderPlan.from_record({**record, "halo": 0}, params)  # the same tiles, cut without context
    other = stylize(content, [style], params, tiles=no_halo)
    assert np.array_equal(np.asarray(again.image), np.asarray(first.image))
    assert not np.array_equal(np.asarray(other.image), np.asarray(first.image))


def test_a_recorded_plan_that_does_not_fit_the_parameters_is_refused() -> None:

    params = GatysParams(size=96, multiscale=False)
    with pytest.raises(InvalidInputError, match="recorded tile plan has 2 levels; the parameters give 1"):
        RenderPlan.from_record({"halo": 64, "lbfgs_history": 10, "levels": [{"tiles": 1}, {"tiles": 1}]}, params)
    with pytest.raises(InvalidInputError, match="recorded tile plan .*not a tile plan"):
        RenderPlan.from_record({"levels": [{"tiles": 1}]}, params)


def test_a_recorded_plan_that_cannot_fit_here_is_refused_before_any_work() -> None:
    """Replayed in other tiles it would give other bytes: said with the memory it needs instead."""

    params = GatysParams(size=16384)
    photo = Image.fromarray(data.astronaut())
    with pytest.raises(InvalidInputError, match=r"size 16384 px \(16384x16384\) was rendered whole, which needs about "
                                                r"[0-9.]+ GiB of cpu memory, but only [0-9.]+ GiB is free"):
        stylize(photo, [photo], params, tiles=RenderPlan.whole(params))
