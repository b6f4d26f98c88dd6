"""S3 failures become one clear error naming endpoint, bucket and key, of the right kind
(transient or permanent), quickly, and without credentials in the text."""

from __future__ import annotations

import json
import time

import pytest

from storage import StorageConfigError, StorageError, StorageUnavailable
from storage.s3 import S3Store
from tests.fixtures.s3 import LoopbackS3, S3Location, free_port

pytestmark = pytest.mark.integration

SECRET_ID = "AKIAMARKERDONOTPRINT"
SECRET_KEY = "s3cr3t-marker-never-shown"
SOME_URI_KEY = f"objects/ab/ab{'0' * 62}.png"


@pytest.fixture
def marked_credentials(s3_server: LoopbackS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recognisable credentials, so a test can prove they never reach an error message."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRET_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)


def assert_clear(error: StorageError, *, endpoint: str, bucket: str, key: str | None = None) -> None:
    text = f"{error} {error.args!r}"
    assert endpoint in text and bucket in text
    if key is not None:
        assert key in text
    assert SECRET_ID not in text and SECRET_KEY not in text


def test_a_missing_bucket_is_a_permanent_configuration_error(marked_credentials, s3_server: LoopbackS3) -> None:
    store = S3Store("atelier-no-such-bucket", "p", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(StorageConfigError) as caught:
        store.put_bytes(b"data", suffix=".bin")
    assert "does not exist" in str(caught.value) and not caught.value.transient
    assert_clear(caught.value, endpoint=s3_server.endpoint_url, bucket="atelier-no-such-bucket")

    uri = store.uri_for_key(SOME_URI_KEY)
    for call in (lambda: store.get_bytes(uri), lambda: store.exists(uri)):
        with pytest.raises(StorageConfigError) as caught:
            call()
        assert_clear(caught.value, endpoint=s3_server.endpoint_url, bucket="atelier-no-such-bucket", key=SOME_URI_KEY)


def test_access_denied_by_bucket_policy_names_the_object(
    marked_credentials, s3_server: LoopbackS3, s3_store_url: S3Location
) -> None:
    store = S3Store.from_url(s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url)
    readable = store.put_bytes(b"put before the policy", suffix=".bin")
    deny_all = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{s3_store_url.bucket}/*",
            }
        ],
    }
    s3_server.client().put_bucket_policy(Bucket=s3_store_url.bucket, Policy=json.dumps(deny_all))

    with pytest.raises(StorageConfigError) as caught:
        store.get_bytes(readable.uri)
    assert "access denied" in str(caught.value)
    assert_clear(caught.value, endpoint=s3_store_url.endpoint_url, bucket=s3_store_url.bucket, key=readable.key)

    with pytest.raises(StorageConfigError, match="access denied"):
        store.put_bytes(b"new bytes", suffix=".bin")


def test_an_unreachable_endpoint_is_transient_and_fails_within_seconds(marked_credentials) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3Store("atelier-bucket", endpoint_url=endpoint)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        store.put_bytes(b"data", suffix=".bin")
    assert time.monotonic() - started < 10
    assert caught.value.transient and "unreachable" in str(caught.value)
    assert_clear(caught.value, endpoint=endpoint, bucket="atelier-bucket")


def test_a_store_outage_is_transient_and_the_same_store_recovers(
    s3_server: LoopbackS3, s3_store_url: S3Location
) -> None:
    store = S3Store.from_url(s3_store_url.store_url, endpoint_url=s3_store_url.endpoint_url)
    stored = store.put_bytes(b"survives the outage", suffix=".bin")
    with s3_server.down():
        with pytest.raises(StorageUnavailable) as caught:
            store.get_bytes(stored.uri)
        assert_clear(caught.value, endpoint=s3_store_url.endpoint_url, bucket=s3_store_url.bucket, key=stored.key)
    assert store.get_bytes(stored.uri) == b"survives the outage"


def test_credentials_in_the_store_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(StorageConfigError) as caught:
        S3Store.from_url(f"s3://{SECRET_ID}:{SECRET_KEY}@bucket/prefix")
    assert SECRET_ID not in str(caught.value) and SECRET_KEY not in str(caught.value)
