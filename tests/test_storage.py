"""The artifact store's promises, on both backends: verified round trips, idempotent
content-addressed puts, corruption caught on the way back and repaired by a re-put."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import ChecksumMismatch, ObjectNotFound, StoredObject, open_store
from storage.local import LocalStore
from storage.s3 import MiB, S3Store

pytestmark = pytest.mark.integration

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStore | S3Store:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    location = request.getfixturevalue("s3_store_url")
    return S3Store.from_url(
        location.store_url, endpoint_url=location.endpoint_url, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )


def overwrite_behind_the_store(store: LocalStore | S3Store, stored: StoredObject, data: bytes) -> None:
    """Replace an object's bytes the way a faulty disk or another tool would: not through the store."""
    if isinstance(store, LocalStore):
        store.path_for_uri(stored.uri).write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.object_key(stored.uri), Body=data)


def count_writes(store: LocalStore | S3Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many times the store has written object bytes since this call."""
    writes: list[object] = []
    if isinstance(store, LocalStore):
        import storage.local

        real = storage.local.write_verified
        monkeypatch.setattr(storage.local, "write_verified", lambda *a, **k: writes.append(a) or real(*a, **k))
    else:
        for operation in ("PutObject", "CreateMultipartUpload"):
            store.client.meta.events.register(f"before-call.s3.{operation}", lambda **kwargs: writes.append(kwargs))
    return lambda: len(writes)


def test_round_trip_returns_identical_bytes_under_a_content_key(store: LocalStore | S3Store) -> None:
    data = b"\x89PNG not really, but bytes"
    stored = store.put_bytes(data, suffix=".png")
    digest = hashlib.sha256(data).hexdigest()
    assert stored.sha256 == digest
    assert stored.key == f"objects/{digest[:2]}/{digest}.png"
    assert stored.uri.startswith(store.base_uri + "/") and stored.uri.endswith(stored.key)
    assert (stored.size, stored.content_type) == (len(data), "image/png")
    assert store.exists(stored.uri)
    assert store.get_bytes(stored.uri, sha256=digest) == data
    assert store.verify(stored.uri, digest)


def test_put_file_streams_and_get_file_writes_atomically(store: LocalStore | S3Store, tmp_path: Path) -> None:
    source = tmp_path / "input.bin"
    source.write_bytes(os.urandom(3 * MiB + 17))
    stored = store.put_file(source, suffix=".bin")
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    dest = store.get_file(stored.uri, tmp_path / "out" / "copy.bin")
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["copy.bin"]  # no temp files left behind


def test_putting_the_same_bytes_again_uploads_nothing(
    store: LocalStore | S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.put_bytes(b"same bytes", suffix=".txt")
    writes = count_writes(store, monkeypatch)
    second = store.put_bytes(b"same bytes", suffix=".txt")
    assert second == first
    assert writes() == 0


def test_a_corrupted_object_fails_verification_naming_it_and_a_re_put_restores_it(
    store: LocalStore | S3Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = b"original artwork bytes"
    stored = store.put_bytes(data, suffix=".png")
    overwrite_behind_the_store(store, stored, b"bit rot")

    with pytest.raises(ChecksumMismatch) as caught:
        store.get_bytes(stored.uri)
    named = str(store.path_for_uri(stored.uri)) if isinstance(store, LocalStore) else store.object_key(stored.uri)
    assert named in str(caught.value)
    with pytest.raises(ChecksumMismatch):
        store.get_file(stored.uri, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
    assert not store.verify(stored.uri, stored.sha256, deep=True)

    writes = count_writes(store, monkeypatch)
    assert store.put_bytes(data, suffix=".png") == stored
    assert writes() == 1
    assert store.get_bytes(stored.uri) == data
    assert store.verify(stored.uri, stored.sha256, deep=True)


def test_same_length_corruption_is_caught_by_the_bytes_not_just_the_size(store: LocalStore | S3Store) -> None:
    stored = store.put_bytes(b"AAAA", suffix=".bin")
    overwrite_behind_the_store(store, stored, b"AAAB")
    with pytest.raises(ChecksumMismatch):
        store.get_bytes(stored.uri)


def test_a_caller_expecting_other_bytes_gets_a_mismatch(store: LocalStore | S3Store) -> None:
    stored = store.put_bytes(b"these", suffix=".bin")
    with pytest.raises(ChecksumMismatch, match="caller expects"):
        store.get_bytes(stored.uri, sha256=hashlib.sha256(b"those").hexdigest())
    assert not store.verify(stored.uri, hashlib.sha256(b"those").hexdigest())


def test_an_absent_object_is_reported_as_not_found(store: LocalStore | S3Store) -> None:
    uri = store.uri_for_key(f"objects/00/{'0' * 64}.png")
    assert not store.exists(uri)
    assert not store.verify(uri, "0" * 64)
    with pytest.raises(ObjectNotFound):
        store.get_bytes(uri)


def test_url_for_gives_something_a_person_can_open(store: LocalStore | S3Store) -> None:
    data = b"look at me"
    stored = store.put_bytes(data, suffix=".jpg")
    url = store.url_for(stored.uri, expires=60)
    if isinstance(store, LocalStore):
        assert Path(url).is_absolute() and Path(url).read_bytes() == data
    else:
        assert "X-Amz-Signature=" in url
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == data
            assert response.headers["Content-Type"] == "image/jpeg"


def test_large_objects_use_multipart_upload_above_the_threshold(s3_store_url, tmp_path: Path) -> None:
    store = S3Store.from_url(
        s3_store_url.store_url,
        endpoint_url=s3_store_url.endpoint_url,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * MiB))
    stored = store.put_file(source, suffix=".bin")
    head = store.client.head_object(Bucket=store.bucket, Key=store.object_key(stored.uri))
    assert head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"]["sha256"] == stored.sha256
    assert store.get_bytes(stored.uri) == source.read_bytes()

    small = store.put_bytes(b"small", suffix=".bin")
    small_head = store.client.head_object(Bucket=store.bucket, Key=store.object_key(small.uri))
    assert "-" not in small_head["ETag"]


def test_open_store_picks_the_backend_from_the_url(s3_store_url, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = open_store("file://./.atelier/artifacts")
    assert isinstance(local, LocalStore) and local.root == tmp_path / ".atelier" / "artifacts"
    remote = open_store(s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url)
    assert isinstance(remote, S3Store) and remote.base_uri == s3_store_url.store_url
    stored = remote.put_bytes(b"x", suffix=".txt")
    assert remote.object_key(stored.uri) == "atelier/" + stored.key
