"""A style-distance metric to compare stylizations across methods (Gatys, ITN) on equal terms.

``style_dist`` is the distance between the Gram matrices of an image and of the style painting,
both at the same long side, through the caffe VGG-19 at relu1_1 ... relu5_1, in float32 (no
autocast), each Gram divided by C*H*W as in :mod:`style_engine.losses`. It is the sum over the five
layers of the mean squared difference of the Gram entries (the unweighted Gatys style loss). Lower is closer to the painting's texture statistics; it says nothing about content.
"""

from __future__ import annotations

import torch
from PIL import Image

from style_engine.images import image_to_tensor, resize_long_side
from style_engine.losses import gram
from style_engine.vgg import VGGFeatures

STYLE_DIST_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def style_dist(image: Image.Image, style: Image.Image, size: int = 512, weights: str = "caffe") -> float:
    """Gram distance of ``image`` to ``style``, both resized to long side ``size`` (lower: more styled)."""
    vgg = VGGFeatures(weights, STYLE_DIST_LAYERS, device="cpu", precision="fp32")
    with torch.no_grad():
        ours = vgg(image_to_tensor(resize_long_side(image.convert("RGB"), size)))
        theirs = vgg(image_to_tensor(resize_long_side(style.convert("RGB"), size)))
    return sum(float((gram(ours[name]) - gram(theirs[name])).pow(2).mean()) for name in STYLE_DIST_LAYERS)


def luminance_ssim(image: Image.Image, photo: Image.Image) -> float:
    """SSIM of the luminance of ``image`` to that of ``photo`` (resized to ``image``'s size)."""
    import numpy as np
    from skimage.metrics import structural_similarity  # slow import: only when measuring

    reference = photo.convert("RGB").resize(image.size, Image.Resampling.LANCZOS)
    gray = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    a = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 @ gray
    b = np.asarray(reference, dtype=np.float32) / 255.0 @ gray
    return float(structural_similarity(a, b, data_range=1.0))
