"""The Gatys et al. (2015) objective: content, style (Gram) and total-variation terms.

Everything here runs in float32 even when the network ran in bfloat16: a Gram matrix sums
H*W products per entry, which loses most of its precision (and overflows in fp16) at 16 bits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (1, C, H, W) activations divided by C*H*W, in float32.

    Dividing by C*H*W (not just H*W) keeps layer losses comparable across depths and image
    sizes, which is what lets one set of weights serve every scale of a multi-scale run.
    The permute/reshape is a free view for channels_last activations.
    """
    _, c, h, w = features.shape
    flat = features.float().permute(0, 2, 3, 1).reshape(h * w, c)
    return (flat.T @ flat) / (c * h * w)


def content_loss(features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum over content layers of the mean squared error of the raw activations."""
    return sum(F.mse_loss(features[name].float(), target) for name, target in targets.items())


def layer_distances(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per style layer, the mean squared error between the features' Gram matrix and the target's."""
    return {name: F.mse_loss(gram(features[name]), target) for name, target in target_grams.items()}


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
) -> torch.Tensor:
    """Weighted sum over style layers of the mean squared error between Gram matrices."""
    return sum(layer_weights[name] * d for name, d in layer_distances(features, target_grams).items())


def balanced_layer_weights(layer_weights: Mapping[str, float], photo_distances: Mapping[str, float]) -> dict[str, float]:
    """Layer weights divided by the photo's own Gram distance to the style at each layer.

    Grams divided by C*H*W make the deep layers' distances orders of magnitude smaller than the
    shallow ones', so with equal weights relu5_1 gets almost none of the gradient and is left
    behind. Dividing each layer by where the photo starts makes every layer's term 1.0 at the
    photo and 0 at the style: each layer is asked for the same *fraction* of its way to the
    painting, whatever the pair, the size or the weight source. A layer where the photo already
    matches the style (distance near 0) is floored at a millionth of the mean distance rather
    than blown up to infinity.
    """
    mean = sum(photo_distances.values()) / max(len(photo_distances), 1)
    if mean <= 0:
        return dict(layer_weights)
    floor = 1e-6 * mean
    return {name: weight / max(photo_distances[name], floor) for name, weight in layer_weights.items()}


def blend_grams(grams: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Blend several styles' Gram targets with (normalized) weights.

    Blending targets rather than summing per-style losses makes the optimum the mixture itself,
    and costs one Gram comparison per layer regardless of the number of styles.
    """
    total = float(sum(weights))
    return {name: sum(w / total * g[name] for g, w in zip(grams, weights)) for name in grams[0]}


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (isotropic smoothness prior)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()
