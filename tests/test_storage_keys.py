"""No name, suffix, prefix or URI can steer a key or a path outside the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from storage import InvalidObjectName, StorageError, open_store
from storage.keys import content_key, digest_of_key, normalize_prefix, normalize_suffix
from storage.local import LocalStore
from storage.s3 import S3Store

pytestmark = pytest.mark.unit

SHA = "ab" + "0" * 62
CONTENT_KEY = re.compile(r"objects/[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?")
HOSTILE = [
    "../",
    "..",
    ".",
    "/",
    "//",
    "\\",
    "%2e%2e/",
    "objects/ab/../../",
    "\x00",
    "~",
    "objects/ab/",
    ".png/../..",
]
hostile_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(HOSTILE + ["objects", "ab", SHA, ".png", "etc", "passwd"]), max_size=8).map("".join),
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, S3Store]:
    # No request is ever sent: keys and URIs are checked before any I/O.
    return (
        LocalStore(tmp_path_factory.mktemp("root")),
        S3Store("bucket", "tenant/atelier", endpoint_url="http://127.0.0.1:9"),
    )


def assert_inside(stores: tuple[LocalStore, S3Store], key: str) -> None:
    local, s3 = stores
    assert CONTENT_KEY.fullmatch(key)
    assert local.path_for_uri(local.uri_for_key(key)).resolve().is_relative_to(local.root)
    assert s3.object_key(s3.uri_for_key(key)).startswith("tenant/atelier/objects/")


@given(suffix=hostile_text)
@example(suffix=".png")  # the accepting branch must be exercised, not only refusals
def test_no_suffix_escapes_the_prefix(stores: tuple[LocalStore, S3Store], suffix: str) -> None:
    try:
        key = content_key(SHA, suffix)
    except InvalidObjectName:
        return
    assert_inside(stores, key)


@given(tail=hostile_text)
@example(tail=f"objects/ab/{SHA}.png")
def test_no_uri_escapes_the_prefix(stores: tuple[LocalStore, S3Store], tail: str) -> None:
    for store in stores:
        try:
            key = store.key_for_uri(f"{store.base_uri}/{tail}")
        except InvalidObjectName:
            continue
        assert_inside(stores, key)


@given(prefix=hostile_text)
@example(prefix="/tenant//atelier/")
def test_no_prefix_escapes_the_bucket_root(prefix: str) -> None:
    try:
        normalized = normalize_prefix(prefix)
    except InvalidObjectName:
        return
    segments = normalized.split("/") if normalized else []
    assert all(segment and not segment.startswith(".") and "\\" not in segment for segment in segments)


@pytest.mark.parametrize(
    ("given_suffix", "expected"), [(".PNG", ".png"), ("jpg", ".jpg"), ("", ""), (" .mp4 ", ".mp4")]
)
def test_suffixes_are_normalized(given_suffix: str, expected: str) -> None:
    assert normalize_suffix(given_suffix) == expected


@pytest.mark.parametrize("bad", [".tar.gz", "../png", ".p g", ".", ".verylongext", "png/"])
def test_bad_suffixes_are_refused_with_the_input_named(bad: str) -> None:
    with pytest.raises(InvalidObjectName, match=re.escape(repr(bad))):
        normalize_suffix(bad)


def test_a_key_whose_fan_out_directory_disagrees_with_its_digest_is_refused() -> None:
    with pytest.raises(InvalidObjectName):
        digest_of_key(f"objects/cd/{SHA}.png")


def test_uris_of_another_store_are_refused(stores: tuple[LocalStore, S3Store], tmp_path: Path) -> None:
    local, s3 = stores
    key = content_key(SHA, ".png")
    with pytest.raises(InvalidObjectName, match="does not belong"):
        local.key_for_uri(LocalStore(tmp_path).uri_for_key(key))
    with pytest.raises(InvalidObjectName, match="does not belong"):
        s3.key_for_uri(f"s3://bucket/tenant/other/{key}")


@pytest.mark.parametrize("url", ["ftp://host/x", "/plain/path", "s3://Bad_Bucket/x", "s3://bucket/../up", "file://"])
def test_unusable_store_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageError):
        open_store(url)
