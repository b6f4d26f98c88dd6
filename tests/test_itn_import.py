"""Importing networks trained elsewhere (issue 22): pytorch/examples' TransformerNet as a state dict
and as an ONNX export, and the files that must be refused, each in one line.

The foreign network is this file's own small module with that project's weight names, pixel range
(0-255 in and out) and output stage (linear, no sigmoid); the import must give its pixels.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from style_engine.errors import InvalidInputError
from style_engine.images import image_to_tensor
from style_engine.itn.importing import read_network
from tests.fixtures.images import draw_strokes, skimage_image

pytestmark = pytest.mark.unit


class PaddedConv(nn.Module):
    """Reflection pad then convolve, optionally after a nearest x2 upsampling; its weights are `conv2d.*`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv2d(self.pad(x))


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1, self.in1 = PaddedConv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = PaddedConv(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class ForeignNet(nn.Module):
    """The pytorch/examples layout and conventions: pixels 0-255 in, a linear output read as 0-255."""

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128)) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.conv1, self.in1 = PaddedConv(3, c1, 9), nn.InstanceNorm2d(c1, affine=True)
        self.conv2, self.in2 = PaddedConv(c1, c2, 3, 2), nn.InstanceNorm2d(c2, affine=True)
        self.conv3, self.in3 = PaddedConv(c2, c3, 3, 2), nn.InstanceNorm2d(c3, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (Block(c3) for _ in range(5))
        self.deconv1, self.in4 = PaddedConv(c3, c2, 3, upsample=True), nn.InstanceNorm2d(c2, affine=True)
        self.deconv2, self.in5 = PaddedConv(c2, c1, 3, upsample=True), nn.InstanceNorm2d(c1, affine=True)
        self.deconv3 = PaddedConv(c1, 3, 9)
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():  # random norms (not 1 and 0) so that a swapped layer shows in the pixels
            for module in self.modules():
                if isinstance(module, nn.InstanceNorm2d):
                    module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                    module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
            self.deconv3.conv2d.weight.mul_(40)  # outputs spread over 0-255 like a trained network's
            self.deconv3.conv2d.bias.fill_(128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


@pytest.fixture(scope="module")
def foreign() -> ForeignNet:
    return ForeignNet().eval()


def photo_tensor(side: int = 64) -> torch.Tensor:
    return image_to_tensor(skimage_image("astronaut", side))


def their_pixels(net: nn.Module, photo: torch.Tensor) -> torch.Tensor:
    """What pytorch/examples does with its network: x255 in, clamp to 0-255 and /255 out."""
    with torch.no_grad():
        return net(photo * 255).clamp(0, 255) / 255


def saved(state: object, **options: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer, **options)
    return buffer.getvalue()


def onnx_file(net: nn.Module) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 3, 64, 64) * 255,), buffer, input_names=["input1"], output_names=["output1"],
                          dynamic_axes={"input1": {2: "h", 3: "w"}, "output1": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    return buffer.getvalue()


def assert_same_pixels(imported_net: nn.Module, foreign: nn.Module) -> None:
    photo = photo_tensor()
    theirs = their_pixels(foreign, photo)
    assert 0.2 < float(((theirs > 0) & (theirs < 1)).float().mean())  # most pixels unclamped: a real comparison
    with torch.no_grad():
        ours = imported_net(photo)
    assert float((ours - theirs).abs().max()) < 1e-3


def test_a_state_dict_is_imported_and_gives_the_original_pixels(foreign) -> None:
    state = dict(foreign.state_dict())
    for name in ("in1", "res2.in1"):  # as old (torch < 0.4) checkpoints carry them: unused, dropped
        state[f"{name}.running_mean"] = torch.zeros(state[f"{name}.weight"].shape)
        state[f"{name}.running_var"] = torch.ones(state[f"{name}.weight"].shape)
    imported = read_network(saved(state), "mosaic.pth", file_format="pytorch")
    assert imported.arch == "johnson" and imported.pixel_scale == 255
    assert sorted(imported.dropped_keys) == sorted(["in1.running_mean", "in1.running_var", "res2.in1.running_mean", "res2.in1.running_var"])
    assert_same_pixels(imported.network(), foreign)


def test_a_state_dict_in_the_legacy_format_of_light_widths_is_imported() -> None:
    narrow = ForeignNet((16, 32, 64)).eval()
    imported = read_network(saved(narrow.state_dict(), _use_new_zipfile_serialization=False), "old.pth", file_format="pytorch")
    assert imported.arch == "light"
    assert_same_pixels(imported.network(), narrow)


def test_an_onnx_export_is_imported_and_gives_the_original_pixels(foreign) -> None:
    imported = read_network(onnx_file(foreign), "mosaic.onnx", file_format="onnx")
    assert imported.arch == "johnson" and imported.checks["onnx_max_difference"] < 1e-3
    assert_same_pixels(imported.network(), foreign)


def test_an_onnx_graph_of_another_wiring_is_refused_even_when_every_shape_fits(foreign) -> None:
    class NoSkip(ForeignNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # the first residual block loses its skip connection
            self.res1.forward = lambda y, b=self.res1: b.in2(b.conv2(F.relu(b.in1(b.conv1(y)))))
            return super().forward(x)

    rewired = NoSkip().eval()
    rewired.load_state_dict(foreign.state_dict())
    with pytest.raises(InvalidInputError, match=r"^bad\.onnx: the graph is not a plain .* TransformerNet"):
        read_network(onnx_file(rewired), "bad.onnx", file_format="onnx")


def test_a_file_of_another_layout_names_the_first_key_that_does_not_fit(foreign) -> None:
    from style_engine.itn.network import build_network

    with pytest.raises(InvalidInputError, match=r"^atelier\.pth: not a .*TransformerNet \('body\.0\.1\.weight' where 'conv1\.conv2d\.weight'"):
        read_network(saved(build_network("johnson", 0).state_dict()), "atelier.pth", file_format="pytorch")
    state = dict(foreign.state_dict())
    state["res3.conv2.conv2d.weight"] = torch.zeros(128, 128, 5, 5)
    with pytest.raises(InvalidInputError, match=r"key 'res3\.conv2\.conv2d\.weight' has shape \(128, 128, 5, 5\); the layout needs \(128, 128, 3, 3\)"):
        read_network(saved(state), "wide.pth", file_format="pytorch")
    del state["res3.conv2.conv2d.weight"]
    with pytest.raises(InvalidInputError, match=r"key 'res3\.conv2\.conv2d\.weight' is missing"):
        read_network(saved(state), "short.pth", file_format="pytorch")
    with pytest.raises(InvalidInputError, match=r"not a plain state dict: entry 'epoch' is a int"):
        read_network(saved({**foreign.state_dict(), "epoch": 3}), "wrapped.pth", file_format="pytorch")


def test_a_truncated_file_is_one_clear_line(foreign) -> None:
    whole = saved(foreign.state_dict())
    with pytest.raises(InvalidInputError, match=r"^cut\.pth: truncated or damaged: the file's zip archive has no end record"):
        read_network(whole[: len(whole) // 2], "cut.pth", file_format="pytorch")
    legacy = saved(foreign.state_dict(), _use_new_zipfile_serialization=False)
    with pytest.raises(InvalidInputError, match=r"^cut-old\.pth: truncated"):
        read_network(legacy[: len(legacy) // 2], "cut-old.pth", file_format="pytorch")
    graph = onnx_file(foreign)
    with pytest.raises(InvalidInputError, match=r"^cut\.onnx: truncated or not an ONNX model"):
        read_network(graph[: len(graph) // 2], "cut.onnx", file_format="onnx")


class Payload:
    """Unpickling this would run code: it creates the file named in its argument."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_pickle_with_code_is_refused_and_never_run(foreign, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    state = {**foreign.state_dict(), "conv1.conv2d.weight": Payload(marker)}
    with pytest.raises(InvalidInputError, match=r"^evil\.pth: refused: the pickle holds more than weights \(.*GLOBAL"):
        read_network(saved(state), "evil.pth", file_format="pytorch")
    assert not marker.exists()


@pytest.mark.integration
def test_an_imported_network_is_stored_listed_and_used_by_stylize_and_jobs(prefect_api, atelier, tmp_path: Path, foreign) -> None:
    from db.models import Job
    from tests.fixtures.prefect import catalog_rows

    app = atelier(f"sqlite:///{tmp_path / 'catalog.db'}", f"file://{tmp_path / 'store'}")
    skimage_image("astronaut", 64).save(tmp_path / "astronaut.png")
    draw_strokes(64, 64).save(tmp_path / "mosaic.png")
    app.cli("catalog", "add", str(tmp_path / "astronaut.png"), "--role", "content")
    app.cli("catalog", "add", str(tmp_path / "mosaic.png"), "--role", "style")
    (tmp_path / "mosaic.pth").write_bytes(saved(foreign.state_dict()))
    (tmp_path / "mosaic.onnx").write_bytes(onnx_file(foreign))

    app.cli("models", "import", str(tmp_path / "mosaic.pth"), "--name", "mosaic", "--style", "mosaic.png",
            "--origin", "pytorch/examples saved_models")
    app.cli("models", "import", str(tmp_path / "mosaic.onnx"), "--name", "mosaic-onnx", "--style", "mosaic.png")
    info = json.loads(app.cli("models", "show", "mosaic", "--json").output)
    import hashlib

    assert info["metrics"]["import"]["sha256"] == hashlib.sha256((tmp_path / "mosaic.pth").read_bytes()).hexdigest()
    assert info["metrics"]["import"]["origin"] == "pytorch/examples saved_models"
    assert (info["params"]["input_range"], info["params"]["pixel_scale"]) == ("0-255", 255.0)
    assert {row["name"] for row in json.loads(app.cli("models", "ls", "--json").output)} == {"mosaic", "mosaic-onnx"}

    expected = their_pixels(foreign, image_to_tensor(Image.open(tmp_path / "astronaut.png").convert("RGB")))
    for model in ("mosaic", "mosaic-onnx"):
        out = tmp_path / f"{model}.png"
        app.cli("stylize", str(tmp_path / "astronaut.png"), "--method", "itn", "--model", model, "--size", "0", "-o", str(out))
        assert float((image_to_tensor(Image.open(out)) - expected).abs().max()) <= 1 / 255 + 1e-3  # 8-bit rounding

    app.cli("jobs", "add", "--content", "astronaut.png", "--style", "mosaic.png", "--method", "itn", "--param", "model=mosaic")
    assert "1 of 1 jobs succeeded" in app.cli("gallery", "run", "--method", "itn").output
    assert [job.status for job in catalog_rows(app, Job)] == ["succeeded"]

    taken = app.cli("models", "import", str(tmp_path / "mosaic.pth"), "--name", "mosaic", "--style", "mosaic.png", expect=2)
    assert "model name 'mosaic' is taken" in taken.output
    (tmp_path / "cut.pth").write_bytes((tmp_path / "mosaic.pth").read_bytes()[:1000])
    cut = app.cli("models", "import", str(tmp_path / "cut.pth"), "--name", "cut", "--style", "mosaic.png", expect=2)
    assert "cut.pth: truncated" in cut.output and "Traceback" not in cut.output
