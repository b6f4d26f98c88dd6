"""The fast style network: shapes and ranges, training, resumption, divergence, export, color."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from style_engine import color
from style_engine.errors import InvalidInputError
from style_engine.images import image_to_tensor
from style_engine.itn.network import build_network, network_from_state, stylize_images, stylize_one
from style_engine.itn.export import OnnxRunner, export_onnx, export_torchscript
from style_engine.itn.params import ITNParams, ITNTrainParams
from style_engine.itn.train import (
    CropSampler,
    TrainingDivergedError,
    perceptual_network,
    prepare_photo,
    style_targets,
    train,
    validation_batch,
)
from style_engine.params import parse_params
from tests.fixtures.images import skimage_image

pytestmark = pytest.mark.unit

CROP = 32
TINY = dict(arch="light", crop=CROP, batch_size=2, style_size=64, precision="fp32", learning_rate=5e-3)


@pytest.fixture(scope="module")
def photos() -> list[torch.Tensor]:
    return [prepare_photo(skimage_image(name, 64), CROP) for name in ("rocket", "coffee", "chelsea")]


def _training(photos, style_image, params: ITNTrainParams):
    vgg = perceptual_network(params, "caffe", torch.device("cpu"))
    targets = style_targets(vgg, [style_image], [1.0], params)
    sampler = CropSampler(photos[:2], params.crop, params.batch_size, params.seed)
    return sampler, vgg, targets, validation_batch(photos[2:], params.crop)


def _roundtrip(checkpoint: dict) -> dict:
    """Through bytes, as the store keeps it."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)


@pytest.mark.parametrize("arch", ["johnson", "light"])
def test_any_size_in_any_size_out_within_zero_one(arch: str) -> None:
    net = build_network(arch, seed=0).eval()
    for height, width in ((17, 23), (32, 64), (50, 33)):
        with torch.no_grad():
            out = net(torch.rand(2, 3, height, width) * 4 - 2)  # even out-of-range input
        assert out.shape == (2, 3, height, width)
        assert float(out.min()) > 0 and float(out.max()) < 1


def test_init_is_seeded_without_touching_the_global_rng() -> None:
    state = torch.get_rng_state()
    a, b = build_network("light", 3), build_network("light", 3)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_too_small_image_is_refused_by_name() -> None:
    with pytest.raises(InvalidInputError, match="image 1: 10x40 is too small"):
        stylize_one(build_network("light", 0), Image.new("RGB", (10, 40)))


def test_sampler_is_a_pure_function_of_seed_and_step(photos) -> None:
    sampler = CropSampler(photos, CROP, 3, seed=7)
    assert torch.equal(sampler.batch(5), CropSampler(photos, CROP, 3, seed=7).batch(5))
    assert not torch.equal(sampler.batch(5), sampler.batch(6))
    assert not torch.equal(sampler.batch(5), CropSampler(photos, CROP, 3, seed=8).batch(5))
    assert sampler.batch(0).shape == (3, 3, CROP, CROP)


def test_no_usable_photo_is_an_input_error() -> None:
    with pytest.raises(InvalidInputError, match="no usable image"):
        CropSampler([], CROP, 2, 0)


def test_training_lowers_the_validation_loss_twofold(photos, style_image) -> None:
    # The factor was measured at style weight 300, where the untrained network's loss is mostly style.
    params = ITNTrainParams(**TINY, steps=40, validate_every=40, checkpoint_every=40, style_weight=300.0)
    sampler, vgg, targets, validation = _training(photos, style_image, params)
    seen: list[tuple[int, dict[str, float]]] = []
    steps: list[int] = []
    result = train(
        sampler, params, vgg, targets, validation=validation,
        on_validation=lambda step, losses: seen.append((step, losses)),
        on_step=lambda step, total, losses: steps.append(step),
    )
    from style_engine.itn.train import _Loss, evaluate

    untrained = evaluate(build_network("light", params.seed), _Loss(vgg, targets, params, result.layer_weights), validation)
    assert steps == list(range(1, 41))
    assert [step for step, _ in seen] == [40]
    assert result.validation_losses["total"] * 2 < untrained["total"]  # 2.5x measured


def test_resume_from_a_checkpoint_is_bit_identical(photos, style_image) -> None:
    params = ITNTrainParams(**TINY, steps=6, checkpoint_every=3, validate_every=2)
    sampler, vgg, targets, validation = _training(photos, style_image, params)
    checkpoints: list[dict] = []
    whole = train(sampler, params, vgg, targets, validation=validation, on_checkpoint=checkpoints.append)
    assert [c["step"] for c in checkpoints] == [3, 6]

    resumed = train(sampler, params, vgg, targets, validation=validation, resume=_roundtrip(checkpoints[0]))
    for name, value in whole.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[name]), name
    assert resumed.losses == whole.losses
    assert resumed.history == whole.history


def test_resume_with_other_parameters_is_refused(photos, style_image) -> None:
    params = ITNTrainParams(**TINY, steps=2, checkpoint_every=2)
    sampler, vgg, targets, _ = _training(photos, style_image, params)
    checkpoints: list[dict] = []
    train(sampler, params, vgg, targets, on_checkpoint=checkpoints.append)
    other = ITNTrainParams(**{**TINY, "learning_rate": 1e-3}, steps=2, checkpoint_every=2)
    with pytest.raises(InvalidInputError, match="other parameters .*learning_rate"):
        train(sampler, other, vgg, targets, resume=checkpoints[0])


def test_nan_loss_stops_training_and_the_last_checkpoint_is_good(photos, style_image) -> None:
    params = ITNTrainParams(**TINY, steps=10, checkpoint_every=2)
    sampler, vgg, targets, _ = _training(photos, style_image, params)

    class PoisonedAtStep5(CropSampler):
        def batch(self, step: int) -> torch.Tensor:
            batch = super().batch(step)
            return batch * float("nan") if step == 4 else batch

    poisoned = PoisonedAtStep5(sampler.photos, CROP, 2, 0)
    checkpoints: list[dict] = []
    with pytest.raises(TrainingDivergedError, match="diverged at step 5: the loss is nan .*checkpoint is step 4"):
        train(poisoned, params, vgg, targets, on_checkpoint=checkpoints.append)
    assert [c["step"] for c in checkpoints] == [2, 4]
    assert all(torch.isfinite(v).all() for v in checkpoints[-1]["model"].values())


def test_checkpoint_of_another_architecture_is_refused() -> None:
    state = build_network("johnson", 0).state_dict()
    with pytest.raises(InvalidInputError, match="do not fit the 'light' architecture"):
        network_from_state("light", state)


def test_exports_match_eager_on_real_images(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_network("light", seed=1).eval()
    with torch.no_grad():  # a trained-looking net: untrained outputs sit near 0.5 and hide errors
        for p in net.parameters():
            p.mul_(3)
    batch = torch.cat([image_to_tensor(skimage_image(name, 64).resize((64, 48))) for name in ("astronaut", "coffee")])
    odd = image_to_tensor(skimage_image("chelsea", 61))
    export_torchscript(net, tmp_path / "net.pt")
    export_onnx(net, tmp_path / "net.onnx")
    scripted = torch.jit.load(str(tmp_path / "net.pt"))
    runner = OnnxRunner(tmp_path / "net.onnx")
    with torch.no_grad():
        for x in (batch, odd):
            eager = net(x)
            assert float(eager.std()) > 0.05
            assert float((scripted(x) - eager).abs().max()) <= 1e-3
            assert float((runner(x) - eager).abs().max()) <= 1e-3


def test_batched_stylization_equals_one_by_one_and_keeps_sizes() -> None:
    net = build_network("light", 0).eval()
    images = [skimage_image("astronaut", 48), skimage_image("coffee", 48), skimage_image("rocket", 48), skimage_image("astronaut", 48)]
    batched = list(stylize_images(net, images, batch_size=4))
    single = [stylize_one(net, image).image for image in images]
    assert [o.image.size for o in batched] == [i.size for i in images]
    for a, b in zip(batched, single):
        diff = image_to_tensor(a.image) - image_to_tensor(b)
        assert float(diff.abs().max()) <= 1 / 255 + 1e-6  # rounding only


def test_color_preservation_keeps_the_photos_chroma() -> None:
    net = build_network("light", 0).eval()
    photo = skimage_image("coffee", 64)
    out = stylize_one(net, photo, preserve_color=True).image
    reference = image_to_tensor(photo)
    ours = image_to_tensor(out)
    assert color.chroma_error(ours, reference) < 0.02
    assert color.chroma_error(image_to_tensor(stylize_one(net, photo).image), reference) > 0.02


def test_params_round_trip_and_reject_bad_values() -> None:
    train_params = parse_params("itn-train", {"arch": "light", "steps": 5})
    assert isinstance(train_params, ITNTrainParams)
    assert ITNTrainParams.from_dict(train_params.to_dict()) == train_params
    assert parse_params("itn", {"model": "starry"}) == ITNParams(model="starry")
    with pytest.raises(InvalidInputError, match="arch"):
        parse_params("itn-train", {"arch": "huge"})
    with pytest.raises(InvalidInputError, match="model"):
        parse_params("itn", {})


def test_training_recipes_follow_the_device_and_yield_to_the_options_given() -> None:
    """Issue 22: `models train` with no option trains at the measured scale of the device it runs on."""
    from style_engine.itn.params import ITNTrainParams
    from style_engine.itn.recipes import TRAINING_RECIPES, with_recipe

    on_cpu = ITNTrainParams.from_dict(with_recipe({}, "cpu"))
    assert (on_cpu.recipe, on_cpu.arch, on_cpu.crop, on_cpu.style_size, on_cpu.batch_size, on_cpu.style_weight,
            on_cpu.precision, on_cpu.balance_layers) == ("cpu", "light", 128, 256, 4, 7e5, "fp32", True)
    assert on_cpu.style_layers[-1] == "relu5_1"  # the deep layer the balanced recipe brings in
    on_gpu = ITNTrainParams.from_dict(with_recipe({}, "cuda"))
    assert (on_gpu.recipe, on_gpu.arch, on_gpu.crop, on_gpu.steps) == ("gpu", "johnson", 256, TRAINING_RECIPES["gpu"]["steps"])
    assert with_recipe({}, "mps")["recipe"] == "cpu"
    chosen = ITNTrainParams.from_dict(with_recipe({"recipe": "gpu", "steps": 10}, "cpu"))
    assert (chosen.recipe, chosen.arch, chosen.steps) == ("gpu", "johnson", 10)
    with pytest.raises(InvalidInputError, match="parameter recipe: 'tpu' is not one of"):
        with_recipe({"recipe": "tpu"}, "cpu")


def test_layer_balance_gives_every_style_layer_the_same_start_and_relu5_1_its_share(photos, style_image) -> None:
    """Issue 22: unbalanced, relu5_1's term is a rounding error beside relu4_1's; balanced, each
    layer's term is 1/L on the training photos, as layer balance makes it in Gatys."""
    from dataclasses import replace

    from style_engine.itn.train import photo_layer_distances, style_layer_weights

    five = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    params = ITNTrainParams(**TINY, steps=1, style_layers=five, balance_layers=True)
    sampler, vgg, targets, _ = _training(photos, style_image, params)
    distances = photo_layer_distances(vgg, validation_batch(sampler.photos, CROP), targets)
    balanced = style_layer_weights(vgg, sampler.photos, targets, params)
    assert [balanced[n] * distances[n] for n in five] == pytest.approx([1 / 5] * 5)
    even = style_layer_weights(vgg, sampler.photos, targets, replace(params, balance_layers=False))
    shares = {n: even[n] * distances[n] for n in five}
    assert shares["relu5_1"] < shares["relu4_1"] / 100
    result = train(sampler, params, vgg, targets)
    assert result.layer_weights == balanced
