"""Issue 14 item 12: every command of the README's "Using it" block runs as written, in order,
on tiny pictures with SQLite and a local store (exit 0 each).

Only speed is changed: sizes become 32 px and every Gatys job or stylize call gets 2
iterations, so that the block runs in seconds on a CPU. Names, references, filters and ids
are exactly the README's.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.fixtures.images import draw_strokes, skimage_image
from tests.fixtures.prefect import catalog_rows

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

README = Path(__file__).resolve().parents[1] / "README.md"


def using_it_commands() -> list[list[str]]:
    """The `atelier ...` commands of the first sh block under "## Using it", comments dropped."""
    section = README.read_text().split("## Using it", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)[1]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            assert words[0] == "atelier", line
            commands.append(words[1:])
    return commands


def made_quick(args: list[str]) -> list[str]:
    """The same command at 32 px and 2 iterations."""
    args = [("32" if i and args[i - 1] == "--size" else a) for i, a in enumerate(args)]
    args = [re.sub(r"^size=\d+$", "size=32", a) for a in args]
    if args[0] == "stylize":
        args += [*([] if "--size" in args else ["--size", "32"]), "--iterations", "2"]
    if args[:2] in (["jobs", "add"], ["jobs", "matrix"]):
        args += [*([] if "size=32" in args or "--size" in args else ["--param", "size=32"]), "--param", "iterations=2"]
    return args


def test_every_using_it_command_runs_as_written(prefect_api, atelier, tmp_path):
    from db.models import Job

    app = atelier(f"sqlite:///{tmp_path / '.atelier' / 'catalog.db'}", f"file://{tmp_path / '.atelier' / 'artifacts'}")
    for path, picture in {
        "photo.jpg": skimage_image("astronaut", 48), "starry-night.jpg": draw_strokes(48, 40, seed=1),
        "photos/tuebingen.jpg": skimage_image("chelsea", 48), "photos/harbour.jpg": skimage_image("coffee", 48),
        "paintings/starry-night.jpg": draw_strokes(40, 48, seed=2), "paintings/wheat-field.jpg": draw_strokes(48, 48, seed=3),
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        picture.save(tmp_path / path, quality=95)

    commands = using_it_commands()
    assert len(commands) >= 15
    for args in commands:
        app.cli(*made_quick(args))

    assert {job.status for job in catalog_rows(app, Job)} == {"succeeded"}
    assert len(list((tmp_path / "exported").glob("*-x-starry-night.png"))) == 3  # plain, and two with colors kept
    assert (tmp_path / "out.png").is_file() and (tmp_path / "out.jpg").is_file()
