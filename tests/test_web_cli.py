"""`atelier web` as a user starts it: a real server process on loopback, settings from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.s3 import free_port

pytestmark = pytest.mark.e2e

ATELIER = Path(sys.executable).parent / "atelier"  # the console script of this environment


def test_atelier_web_serves_the_settings_catalog_on_loopback(catalog_url, tmp_path):
    import httpx

    from db.session import open_catalog
    from storage.local import LocalStore
    from tests.web_gallery import build_gallery

    catalog = open_catalog(catalog_url)
    g = build_gallery(catalog, LocalStore(tmp_path / "store"))
    catalog.dispose()
    port = free_port()
    env = {**os.environ, "ATELIER_DATABASE_URL": catalog_url, "ATELIER_STORE_URL": f"file://{tmp_path / 'store'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    server = subprocess.Popen([str(ATELIER), "web", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, page = time.monotonic() + 60, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                # the first artwork page loads the engine's parameter types (torch): slow on a busy machine
                page = httpx.get(f"http://127.0.0.1:{port}/artworks/{g.artworks[0]}", timeout=120)
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        assert page is not None and page.status_code == 200, server.poll()
        assert "<svg" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/artworks/{g.artworks[0]}/image").content.startswith(b"\x89PNG")
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    assert f"gallery at http://127.0.0.1:{port}/ (write actions off)" in output
    assert "postgres@" not in output and "Traceback" not in output


def test_atelier_web_without_a_catalog_says_so(tmp_path):
    env = {**os.environ, "ATELIER_DATABASE_URL": f"sqlite:///{tmp_path / 'nothing.db'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([str(ATELIER), "web"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "no catalog at" in result.stderr and "Traceback" not in result.stderr


def test_atelier_web_on_a_public_address_warns_that_reads_need_no_login(catalog_url, tmp_path):
    import httpx

    from db.session import open_catalog

    open_catalog(catalog_url).dispose()
    port = free_port()
    env = {**os.environ, "ATELIER_DATABASE_URL": catalog_url, "ATELIER_STORE_URL": f"file://{tmp_path / 'store'}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    server = subprocess.Popen([str(ATELIER), "web", "--host", "0.0.0.0", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:  # until it serves (the warning comes before)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/jobs", timeout=30).status_code == 200:
                    break
            except httpx.ConnectError:
                time.sleep(0.2)
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0]
    warning = next((line for line in output.splitlines() if "warning:" in line), output)
    assert "warning: 0.0.0.0 is reachable from other machines" in warning and "reverse proxy" in warning, output


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                 ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                                 ("192.168.1.5", False), ("gallery.example", False)])
def test_which_addresses_are_loopback(host, loopback):
    from atelier.commands.web import is_loopback

    assert is_loopback(host) is loopback
