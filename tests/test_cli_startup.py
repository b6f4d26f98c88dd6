"""Start-up cost (issue 13 item 9): commands that neither run the engine nor talk to Prefect
import neither PyTorch nor Prefect (nor boto3 with a local store). The figures themselves are
measured by bench/cli_startup.py, not asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("torch", "torchvision", "prefect", "boto3", "botocore", "cv2", "skimage")

_REPORT_IMPORTS = f"""
import atexit, sys
atexit.register(lambda: print("LOADED:" + ",".join(
    sorted({{name.split(".")[0] for name in sys.modules}} & set({FORBIDDEN!r}))), file=sys.stderr))
from atelier.cli import app
app(prog_name="atelier")
"""


def _loaded(tmp_path: Path, *args: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ATELIER_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "ATELIER_STORE_URL": f"file://{tmp_path / 'store'}"}
    done = subprocess.run([sys.executable, "-c", _REPORT_IMPORTS, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("LOADED:")]
    return [name for name in line.removeprefix("LOADED:").split(",") if name]


def test_light_commands_import_neither_torch_nor_prefect(tmp_path):
    picture = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(picture)
    for args in (["--help"], ["catalog", "add", str(picture), "--role", "content"], ["catalog", "ls"],
                 ["jobs", "ls"], ["artworks", "ls"], ["config"]):
        assert _loaded(tmp_path, *args) == [], args


def test_catalog_ls_checks_the_schema_without_alembic(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "ATELIER_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    subprocess.run([sys.executable, "-c", "from atelier.cli import app; app(prog_name='atelier')", "db", "upgrade"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    code = ("import sys; from atelier.cli import app\n"
            "try:\n    app(['catalog', 'ls'], prog_name='atelier')\n"
            "except SystemExit:\n    pass\nprint('ALEMBIC' if 'alembic' in sys.modules else 'NONE')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "NONE", done.stdout + done.stderr
