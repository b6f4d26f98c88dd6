"""What a Run records about where and with what it ran, so a result can be reproduced."""

from __future__ import annotations

import platform
import socket
from functools import lru_cache
from importlib import metadata


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the code that shaped the pixels (read once per process)."""
    versions = {"python": platform.python_version()}
    for name in ("atelier", "torch", "torchvision", "pillow", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def host_name() -> str:
    return socket.gethostname()


def device_name(device: str) -> str:
    """A human name for the device: the GPU model on CUDA, the CPU type otherwise."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    return f"{device} ({platform.processor() or platform.machine()})"
