"""Pure pieces of the gallery: the loss curve as recorded and as drawn, the reproducing command,
and the query strings of shared views."""

from __future__ import annotations

import math
import shlex

import pytest

pytestmark = pytest.mark.unit


def test_loss_curve_keeps_every_point_up_to_the_limit_then_thins_evenly():
    from tasks.loss_curve import MAX_POINTS, LossCurve

    short = LossCurve()
    for step in range(1, 51):
        short.add(step, {"total": 100 / step, "content": 1.0, "style": 99 / step, "tv": 0.0})
    assert short.points()["evaluation"] == list(range(1, 51))

    long = LossCurve()
    for step in range(1, 1001):
        long.add(step, {"total": 1000 / step, "content": 1.0, "style": 999 / step})
    curve = long.points()
    assert len(curve["evaluation"]) == MAX_POINTS
    assert curve["evaluation"][0] == 1 and curve["evaluation"][-1] == 1000  # first and last kept
    gaps = {b - a for a, b in zip(curve["evaluation"], curve["evaluation"][1:], strict=False)}
    assert gaps <= {5, 6}
    assert curve["total"][-1] == pytest.approx(1.0)
    assert LossCurve().points() is None


def test_loss_plot_is_log_scaled_and_skips_non_finite_points():
    from atelier.web.plots import HEIGHT, MARGIN, loss_curve_svg

    svg = loss_curve_svg({"evaluation": [1, 2, 3], "total": [100.0, float("nan"), 1.0], "content": [], "style": []})
    points = [tuple(map(float, p.split(","))) for p in svg.split('class="loss-total"')[1].split('points="')[1]
              .split('"')[0].split()]
    assert len(points) == 2
    assert points[0][1] == pytest.approx(MARGIN) and points[1][1] == pytest.approx(HEIGHT - MARGIN)  # 1e2 top, 1e0 bottom
    assert loss_curve_svg(None) is None
    assert loss_curve_svg({"evaluation": [1], "total": [1.0]}) is None
    assert loss_curve_svg({"evaluation": [1, 2], "total": [math.inf, -1]}) is None


def test_reproduce_command_passes_options_and_names_what_it_cannot():
    from atelier.web.provenance import method_defaults, reproduce_command

    params = {**method_defaults("gatys"), "size": 256, "seed": 7, "preserve_color": "histogram",
              "histogram_mode": "pca", "multiscale": True, "learning_rate": 0.5}
    command, unsupported = reproduce_command("gatys", params, "my photo's.png", ["a.png", "b.png"], [0.7, 0.3],
                                             "caffe", "out.png")
    args = shlex.split(command)
    assert args[:6] == ["atelier", "stylize", "my photo's.png", "a.png", "b.png", "-o"]
    assert args[args.index("--size") + 1] == "256" and args[args.index("--seed") + 1] == "7"
    assert args[args.index("--preserve-color") + 1] == "histogram:pca" and "--multiscale" in args
    assert args[args.index("--style-weights") + 1] == "0.7,0.3" and args[args.index("--weights") + 1] == "caffe"
    assert unsupported == {"learning_rate": 0.5}


def test_shared_view_query_strings_round_trip():
    from urllib.parse import parse_qs

    from atelier.web.requests import BadRequest, grid_query, query_for

    params = {"style": "Starry & <Night>", "sort": "oldest", "since": "2026-11-01", "page": "3"}
    query = grid_query(params, ["a", "b c"], page_size=10)
    assert query.filters.offset == 20 and query.filters.limit == 11 and query.filters.sort == "id"
    again = parse_qs(query_for(query.raw, page=2)[1:])
    assert again == {"style": ["Starry & <Night>"], "sort": ["oldest"], "since": ["2026-11-01"], "tag": ["a", "b c"],
                     "page": ["2"]}
    with pytest.raises(BadRequest, match="order 'up'"):
        grid_query({"order": "up"}, [], 10)
