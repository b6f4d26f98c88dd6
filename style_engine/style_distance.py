"""A style-distance metric to compare stylizations across methods and settings on equal terms.

``style_dist`` is the distance between the Gram matrices of an image and of the style painting,
both at the same long side, through the caffe VGG-19 at relu1_1 ... relu5_1, in float32 (no
autocast), each Gram divided by C*H*W. It is the sum over the five layers of the mean squared
difference of the Gram entries (the unweighted Gatys style loss). Lower is closer to the
painting's texture statistics; it says nothing about content.

``layer_ratios`` divides each layer's distance by the photo's own: 1.0 means no style transferred
at that layer, 0 the painting's statistics exactly. It shows which layers an optimization left
behind, which the sum hides (the shallow layers' distances dwarf the deep ones').

The metric keeps its own Gram definition instead of importing the objective's: it is the yardstick
the objective's weighting is judged by, so changing the loss must never move it.
"""

from __future__ import annotations

import torch
from PIL import Image

from style_engine.images import image_to_tensor, resize_long_side
from style_engine.vgg import VGGFeatures

STYLE_DIST_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def _metric_gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (1, C, H, W) float32 activations divided by C*H*W."""
    _, c, h, w = features.shape
    flat = features.float().reshape(c, h * w)
    return (flat @ flat.T) / (c * h * w)


def _grams(image: Image.Image, size: int, weights: str, device: str | torch.device) -> dict[str, torch.Tensor]:
    vgg = VGGFeatures(weights, STYLE_DIST_LAYERS, device=device, precision="fp32")
    with torch.no_grad():
        features = vgg(image_to_tensor(resize_long_side(image.convert("RGB"), size), vgg.device))
        return {name: _metric_gram(features[name].contiguous()) for name in STYLE_DIST_LAYERS}


def _distances(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float((ours[name] - theirs[name]).pow(2).mean()) for name in STYLE_DIST_LAYERS}


def layer_distances(
    image: Image.Image, style: Image.Image, size: int = 512, weights: str = "caffe", device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Per layer, the Gram distance of ``image`` to ``style``, both resized to long side ``size``."""
    return _distances(_grams(image, size, weights, device), _grams(style, size, weights, device))


def style_dist(
    image: Image.Image, style: Image.Image, size: int = 512, weights: str = "caffe", device: str | torch.device = "cpu"
) -> float:
    """Gram distance of ``image`` to ``style``, both resized to long side ``size`` (lower: more styled)."""
    return sum(layer_distances(image, style, size, weights, device).values())


def layer_ratios(
    image: Image.Image,
    photo: Image.Image,
    style: Image.Image,
    size: int = 512,
    weights: str = "caffe",
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Per layer, ``image``'s Gram distance to ``style`` over ``photo``'s own (1.0: no style transferred).

    ``photo`` is resized to ``image``'s aspect by its long side like the others, so pass the photo
    the image was made from.
    """
    target = _grams(style, size, weights, device)
    ours = _distances(_grams(image, size, weights, device), target)
    photos = _distances(_grams(photo, size, weights, device), target)
    return {name: ours[name] / photos[name] if photos[name] > 0 else float("nan") for name in STYLE_DIST_LAYERS}


def luminance_ssim(image: Image.Image, photo: Image.Image) -> float:
    """SSIM of the luminance of ``image`` to that of ``photo`` (resized to ``image``'s size)."""
    import numpy as np
    from skimage.metrics import structural_similarity  # slow import: only when measuring

    reference = photo.convert("RGB").resize(image.size, Image.Resampling.LANCZOS)
    gray = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    a = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 @ gray
    b = np.asarray(reference, dtype=np.float32) / 255.0 @ gray
    return float(structural_similarity(a, b, data_range=1.0))
