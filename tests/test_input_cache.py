"""The input cache (issue 21): one folder per user, never beside wherever a command runs, and
every copy checked both ways: a damaged cached copy is dropped and fetched again, and a good
cached copy no longer hides a damaged stored object (it mends it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from storage import open_store
from tasks.input_cache import InputCache

pytestmark = pytest.mark.unit


def test_the_default_cache_is_the_users_not_the_working_folders(tmp_path: Path, monkeypatch) -> None:
    from worker_settings import WorkerSettings

    monkeypatch.delenv("ATELIER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert Path(WorkerSettings(_env_file=None).cache_dir) == tmp_path / "xdg" / "atelier"
    monkeypatch.setenv("ATELIER_CACHE_DIR", str(tmp_path / "mine"))
    assert WorkerSettings(_env_file=None).cache_dir == str(tmp_path / "mine")


@pytest.fixture
def cached(tmp_path: Path):
    """A store holding one object, and a cache that has fetched it once."""
    store = open_store(f"file://{tmp_path / 'store'}")
    store.create()
    stored = store.put_bytes(b"model weights", suffix=".pt")
    cache = InputCache(tmp_path / "cache", store)
    assert cache.fetch(stored.uri, stored.sha256) == b"model weights"
    return store, stored, tmp_path / "cache"


def test_a_damaged_cached_copy_is_dropped_and_fetched_again_with_a_warning(cached, caplog) -> None:
    store, stored, folder = cached
    copy = folder / stored.sha256[:2] / stored.sha256
    copy.write_bytes(b"bit rot")

    with caplog.at_level(logging.WARNING, logger="tasks.input_cache"):
        assert InputCache(folder, store).fetch(stored.uri, stored.sha256) == b"model weights"

    assert copy.read_bytes() == b"model weights"
    assert f"{copy} does not hash to its name" in caplog.text


def test_a_good_cached_copy_does_not_hide_a_damaged_stored_object(cached, caplog) -> None:
    store, stored, folder = cached
    store.path_for_uri(stored.uri).write_bytes(b"corrupted in the store")

    with caplog.at_level(logging.WARNING, logger="tasks.input_cache"):
        assert InputCache(folder, store).fetch(stored.uri, stored.sha256) == b"model weights"

    assert store.verify(stored.uri, stored.sha256)  # mended from the verified cached copy
    assert f"{stored.uri}: the stored object is missing or does not match its sha256" in caplog.text
