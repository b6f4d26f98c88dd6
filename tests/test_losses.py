"""The objective's math against direct formulas, and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from style_engine.errors import InvalidInputError
from style_engine.gatys.objective import level_sizes
from style_engine.losses import blend_grams, content_loss, gram, style_loss, tv_loss
from style_engine.params import DEFAULT_WEIGHTS, UNBALANCED_STYLE_WEIGHTS, GatysParams, NoopParams, parse_params

pytestmark = pytest.mark.unit


def _features(c: int = 5, h: int = 4, w: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn((1, c, h, w), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gram_matches_direct_sum(memory_format: torch.memory_format) -> None:
    x = _features().contiguous(memory_format=memory_format)
    f = x[0].numpy().astype(np.float64)
    c, h, w = f.shape
    expected = np.array([[np.sum(f[i] * f[j]) for j in range(c)] for i in range(c)]) / (c * h * w)
    np.testing.assert_allclose(gram(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_gram_of_bf16_features_is_fp32() -> None:
    """Grams must be accumulated in fp32 even when the network ran in bf16."""
    x = _features().to(torch.bfloat16)
    result = gram(x)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, gram(x.float()))


def test_content_and_style_loss_formulas() -> None:
    a, b = _features(seed=1), _features(seed=2)
    assert content_loss({"l": a}, {"l": b}).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    target = gram(b)
    got = style_loss({"l": a, "m": a}, {"l": target, "m": target}, {"l": 0.25, "m": 0.75})
    assert got.item() == pytest.approx(((gram(a) - target) ** 2).mean().item(), rel=1e-6)


def test_blend_grams_normalizes_weights() -> None:
    g1, g2 = {"l": torch.ones(2, 2)}, {"l": torch.zeros(2, 2)}
    torch.testing.assert_close(blend_grams([g1, g2], [3.0, 1.0])["l"], torch.full((2, 2), 0.75))
    torch.testing.assert_close(blend_grams([g1, g2], [1.0, 0.0])["l"], g1["l"])


def test_tv_loss_formula() -> None:
    x = _features(c=3, h=6, w=7)
    n = x.numpy()
    expected = np.mean(np.diff(n, axis=3) ** 2) + np.mean(np.diff(n, axis=2) ** 2)
    assert tv_loss(x).item() == pytest.approx(expected, rel=1e-5)
    assert tv_loss(torch.ones(1, 3, 5, 5)).item() == 0.0


def test_params_round_trip_is_canonical() -> None:
    params = GatysParams(size=128, content_weight=5, style_layers=("relu1_1", "relu2_1"))
    data = params.to_dict()
    assert data["content_weight"] == 5.0 and isinstance(data["content_weight"], float)
    assert data["style_layers"] == ["relu1_1", "relu2_1"]
    assert GatysParams.from_dict(data) == params
    assert parse_params("gatys", data).to_dict() == data
    assert set(data) >= {"size", "iterations", "seed", "init", "optimizer", "preserve_color", "multiscale", "balance_layers"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"size": 0}, "size"),
        ({"stlye_weight": 1}, "unknown key"),
        ({"style_weight": -1}, "style_weight"),
        ({"content_layers": ["relu9_9"]}, "relu9_9"),
        ({"style_layers": []}, "style_layers"),
        ({"iterations": True}, "iterations"),
        ({"init": "zeros"}, "init"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"style_layer_weights": [1.0]}, "style_layer_weights"),
        ({"preserve_color": "hue"}, "preserve_color"),
        ({"style_scale": 0}, "style_scale"),
        ({"learning_rate": "fast"}, "learning_rate"),
    ],
)
def test_bad_params_are_rejected_with_a_clear_message(bad: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        parse_params("gatys", bad)


def test_parse_params_dispatch() -> None:
    assert parse_params("noop", {"size": 64}) == NoopParams(size=64)
    assert parse_params("gatys", None) == GatysParams()
    with pytest.raises(InvalidInputError, match="gatys, noop"):
        parse_params("cubism", {})
    with pytest.raises(InvalidInputError, match="unknown key"):
        parse_params("noop", {"iterations": 3})


def test_loss_weight_defaults_per_source() -> None:
    assert GatysParams().loss_weights("caffe") == DEFAULT_WEIGHTS["caffe"]
    assert GatysParams().loss_weights("torchvision") == DEFAULT_WEIGHTS["torchvision"]
    assert GatysParams(style_weight=7).loss_weights("caffe")["style_weight"] == 7.0
    unbalanced = GatysParams(balance_layers=False)
    assert unbalanced.loss_weights("caffe")["style_weight"] == UNBALANCED_STYLE_WEIGHTS["caffe"]
    assert unbalanced.loss_weights("torchvision")["style_weight"] == UNBALANCED_STYLE_WEIGHTS["torchvision"]


def test_multiscale_levels() -> None:
    assert level_sizes(GatysParams(size=384)) == [384]
    assert level_sizes(GatysParams(size=384, multiscale=True, scales=3)) == [96, 192, 384]
    assert level_sizes(GatysParams(size=128, multiscale=True, scales=3)) == [64, 128]
