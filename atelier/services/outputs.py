"""Where a command may write: never over one of its own inputs.

A render writes its output while it still reads the input (a clip is decoded frame by frame
as the new one is encoded), so an output that is the input would destroy the source even if
the write itself were atomic. The same file can hide behind another path: a symbolic link,
a hard link, `./clip.mp4` against `clip.mp4`. So files are compared by device and inode, not
by name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from atelier.services.errors import BadInput


def refuse_input_as_output(output: Path, inputs: Iterable[Path], *, what: str = "the input") -> None:
    """BadInput when `output` is (or links to) one of `inputs`; an output that does not exist yet
    cannot be one of them."""
    for source in inputs:
        if _same_file(output, source):
            alias = "" if output.absolute() == source.absolute() else f" ({source})"
            raise BadInput(f"{output}: this is {what}{alias}; choose another output path")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing or unreadable: not one file
        return False
