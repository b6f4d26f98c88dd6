"""What a Run records about where and with what it ran, so a result can be reproduced."""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import metadata
from typing import Any


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


def png_provenance(
    method: str, params: Mapping[str, Any], *, content: str, styles: Sequence[str], **more: object
) -> dict[str, object]:
    """The text chunks an output PNG carries so that it can be made again, with the same keys
    whoever writes it (a gallery job, `atelier stylize`, a fast style network): the method,
    its canonical parameters and seed, the content and styles (sha256 or file names), and
    `more` as `atelier:<name>` fields (the job, the device, the weights, the model)."""
    fields: dict[str, object] = {
        "Software": f"atelier {library_versions()['atelier']}",
        "atelier:method": method,
        "atelier:params": dict(params),
        "atelier:content": content,
        "atelier:styles": list(styles),
    }
    if "seed" in params:
        fields["atelier:seed"] = str(params["seed"])
    fields.update({f"atelier:{name}": value for name, value in more.items() if value is not None})
    return fields
