"""Choosing where the engine runs, and in which precision.

Device names come from settings or the CLI as plain strings; resolving them here (and failing
with a clear message) keeps every caller free of ``torch.cuda`` checks.
"""

from __future__ import annotations

import torch

from style_engine.errors import InvalidInputError

DEVICE_NAMES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cuda``/``cuda:N``/``mps``/``cpu`` into a usable :class:`torch.device`.

    ``auto`` prefers CUDA, then Apple's MPS, then the CPU. Asking explicitly for an accelerator
    that is absent is an error rather than a silent fallback, so that a GPU worker misconfigured
    as CPU-only is noticed instead of running 20x slower.
    """
    if isinstance(name, torch.device):
        return name
    text = name.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = text.split(":", 1)[0]
    if kind not in DEVICE_NAMES:
        raise InvalidInputError(f"device {name!r}: unknown; use one of {', '.join(DEVICE_NAMES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {name!r}: CUDA is not available on this machine")
    if kind == "mps" and not _mps_available():
        raise InvalidInputError(f"device {name!r}: MPS is not available on this machine")
    try:
        return torch.device(text)
    except RuntimeError as exc:
        raise InvalidInputError(f"device {name!r}: {exc}") from None


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 autocast is *fast* on ``device`` (not merely allowed).

    On CPUs without native bf16 (AVX512-BF16/AMX) oneDNN emulates it and it is slower than fp32;
    on MPS autocast support is partial, so it stays fp32 there.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
