"""The S3 backend (`s3://bucket[/prefix]`): AWS, or MinIO/R2/Ceph through `endpoint_url`.

Credentials come only from boto3's standard chain (environment, shared files, instance
role): this module never receives, stores or prints them. Every botocore failure is
translated into one of the storage errors with a message naming endpoint, bucket and
key, after botocore's own bounded retries have had their turn.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import exceptions as boto_errors
from botocore.config import Config

from storage.base import ContentKeyedURIs, StoredObject
from storage.errors import (
    ChecksumMismatch,
    ObjectNotFound,
    StorageConfigError,
    StorageError,
    StorageUnavailable,
)
from storage.files import CHUNK_SIZE, file_digest, write_verified
from storage.keys import (
    check_bucket_name,
    content_key,
    digest_of_key,
    expected_digest,
    guess_content_type,
    normalize_prefix,
    normalize_suffix,
)

MiB = 1024 * 1024
SHA256_METADATA = "sha256"

_MISSING_BUCKET = {"NoSuchBucket"}
_MISSING_OBJECT = {"NoSuchKey", "404", "NotFound"}
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "Forbidden",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
}
_BUSY = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServiceUnavailable", "InternalError"}


class S3Store(ContentKeyedURIs):
    """Content-addressed objects under `s3://bucket/prefix/objects/ab/<sha256><.ext>`.

    The sha256 travels as object metadata (`x-amz-meta-sha256`), so a put can tell
    from one HEAD request whether the bytes are already there, and a get checks the
    downloaded bytes against both the metadata and the key.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_attempts: int = 3,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.bucket = check_bucket_name(bucket)
        self.prefix = normalize_prefix(prefix)
        self.endpoint_url = endpoint_url
        self.base_uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._max_attempts = max_attempts
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            config=_client_config(endpoint_url, max_attempts, connect_timeout, read_timeout),
        )
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            preferred_transfer_client="classic",
        )
        self._bucket_seen = False

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None = None, **options: Any) -> S3Store:
        """`s3://bucket[/prefix]`; credentials in the URL are refused, not used."""
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise StorageConfigError("the store URL must not contain credentials: use the standard AWS chain")
        if parts.query or parts.fragment or not parts.netloc:
            raise StorageConfigError(f"invalid S3 store URL {url!r}: use s3://bucket[/prefix]")
        return cls(parts.netloc, parts.path, endpoint_url=endpoint_url, **options)

    def __repr__(self) -> str:
        return f"S3Store({self.base_uri!r}, endpoint_url={self.endpoint_url!r})"

    def object_key(self, uri: str) -> str:
        """The full S3 key behind a URI of this store (always under the prefix)."""
        return self._under_prefix(self.key_for_uri(uri))

    def _under_prefix(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_bytes(self, data: bytes, *, suffix: str, content_type: str | None = None) -> StoredObject:
        sha256 = hashlib.sha256(data).hexdigest()
        return self._put(io.BytesIO(data), sha256, len(data), suffix, content_type)

    def put_file(self, path: str | Path, *, suffix: str, content_type: str | None = None) -> StoredObject:
        source = Path(path)
        sha256, size = file_digest(source)
        with source.open("rb") as stream:
            return self._put(stream, sha256, size, suffix, content_type)

    def _put(self, stream: BinaryIO, sha256: str, size: int, suffix: str, content_type: str | None) -> StoredObject:
        """Upload unless HEAD shows these bytes already there; an object with other metadata or size is replaced."""
        suffix = normalize_suffix(suffix)
        key = content_key(sha256, suffix)
        s3_key = self._under_prefix(key)
        content_type = content_type or guess_content_type(suffix)
        head = self._head(s3_key)
        already_there = (
            head is not None and head["Metadata"].get(SHA256_METADATA) == sha256 and head["ContentLength"] == size
        )
        if not already_there:
            extra = {"Metadata": {SHA256_METADATA: sha256}, "ContentType": content_type}
            with self._translated("upload", s3_key):
                self.client.upload_fileobj(stream, self.bucket, s3_key, ExtraArgs=extra, Config=self._transfer)
        return StoredObject(self.uri_for_key(key), key, sha256, size, content_type)

    def get_bytes(self, uri: str, *, sha256: str | None = None) -> bytes:
        key, expected = self._locate(uri, sha256)
        data = b"".join(self._chunks(key, expected))
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ChecksumMismatch.found(self._where(key), actual, expected)
        return data

    def get_file(self, uri: str, dest: str | Path, *, sha256: str | None = None) -> Path:
        key, expected = self._locate(uri, sha256)
        target = Path(dest)
        write_verified(self._chunks(key, expected), target, expected_sha256=expected, where=self._where(key))
        return target

    def exists(self, uri: str) -> bool:
        return self._head(self.object_key(uri)) is not None

    def verify(self, uri: str, sha256: str, *, deep: bool = False) -> bool:
        """Cheap: one HEAD comparing the metadata digest. `deep`: download and hash the bytes too."""
        key = self.object_key(uri)
        if digest_of_key(self.key_for_uri(uri)) != sha256:
            return False
        head = self._head(key)
        if head is None or head["Metadata"].get(SHA256_METADATA) != sha256:
            return False
        if not deep:
            return True
        digest = hashlib.sha256()
        for chunk in self._chunks(key, sha256):
            digest.update(chunk)
        return digest.hexdigest() == sha256

    def _locate(self, uri: str, sha256: str | None) -> tuple[str, str]:
        """The S3 key of a URI and the digest its bytes must have."""
        key = self.object_key(uri)
        return key, expected_digest(self.key_for_uri(uri), sha256, self._where(key))

    def _chunks(self, key: str, expected: str) -> Iterator[bytes]:
        """Stream an object's bytes; callers hash them.

        An object whose metadata names another digest fails before any download;
        one without metadata (copied in by another tool) is judged by its bytes alone.
        """
        with self._translated("download", key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except boto_errors.ClientError as error:
                if _code(error) in _MISSING_OBJECT:
                    self._check_bucket("download", key)
                raise
            stored = response["Metadata"].get(SHA256_METADATA)
            if stored not in (None, expected):
                response["Body"].close()
                raise ChecksumMismatch(
                    f"checksum mismatch for {self._where(key)}: sha256 metadata is {stored}, expected {expected}"
                )
            yield from response["Body"].iter_chunks(CHUNK_SIZE)

    def url_for(self, uri: str, *, expires: int = 3600) -> str:
        """A presigned GET URL; signing is local, so this neither checks existence nor needs the network."""
        key = self.object_key(uri)
        with self._translated("presign", key):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires
            )

    def _head(self, key: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None when absent (after making sure the bucket is not what is missing)."""
        with self._translated("inspect", key):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=key)
            except boto_errors.ClientError as error:
                if _code(error) not in _MISSING_OBJECT:
                    raise
            self._check_bucket("inspect", key)
            return None

    def _check_bucket(self, action: str, key: str) -> None:
        """HEAD the bucket once per store, because S3 answers a missing bucket and a missing key alike on HEAD."""
        if self._bucket_seen:
            return
        with self._translated(action, key):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except boto_errors.ClientError as error:
                if _code(error) in _MISSING_OBJECT:
                    raise StorageConfigError(
                        f"cannot {action} {self._where(key)}: bucket {self.bucket!r} does not exist "
                        "(`atelier store create-bucket` creates it)"
                    ) from None
                raise
        self._bucket_seen = True

    def create(self) -> bool:
        """Create the bucket unless it exists (in the client's region); True when created."""
        with self._translated("create the bucket for", ""):
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return False
            except boto_errors.ClientError as error:
                if _code(error) not in _MISSING_OBJECT:
                    raise
            region = self.client.meta.region_name
            location = {} if region in (None, "us-east-1") else {
                "CreateBucketConfiguration": {"LocationConstraint": region}}
            self.client.create_bucket(Bucket=self.bucket, **location)
        self._bucket_seen = True
        return True

    def _endpoint(self) -> str:
        return f"endpoint {self.endpoint_url}" if self.endpoint_url else "the default AWS endpoint"

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key} ({self._endpoint()})"

    @contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """Turn botocore's exceptions into storage errors that say what failed where.

        Only the error code and HTTP status are quoted, never botocore's message text,
        which for some providers echoes request headers.
        """
        where = self._where(key)
        try:
            yield
        except StorageError:
            raise
        except (boto_errors.NoCredentialsError, boto_errors.PartialCredentialsError):
            raise StorageConfigError(
                f"cannot {action} {where}: no usable AWS credentials in the standard chain "
                "(environment, shared credentials file, instance role)"
            ) from None
        except boto_errors.SSLError:
            raise StorageConfigError(f"cannot {action} {where}: TLS handshake with the endpoint failed") from None
        except (boto_errors.ConnectionError, boto_errors.HTTPClientError) as error:
            raise StorageUnavailable(
                f"cannot {action} {where}: endpoint unreachable after {self._max_attempts} attempts "
                f"({type(error).__name__})"
            ) from None
        except boto_errors.ClientError as error:
            raise self._classified(error, action, where) from None

    def _classified(self, error: boto_errors.ClientError, action: str, where: str) -> StorageError:
        code = _code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        reason = f"{code}, HTTP {status}"
        if code in _MISSING_BUCKET:
            return StorageConfigError(f"cannot {action} {where}: bucket {self.bucket!r} does not exist ({reason})")
        if code in _DENIED or status == 403:
            return StorageConfigError(f"cannot {action} {where}: access denied ({reason})")
        if code in _MISSING_OBJECT:
            return ObjectNotFound(f"cannot {action} {where}: no such object ({reason})")
        if code in _BUSY or status >= 500:
            return StorageUnavailable(
                f"cannot {action} {where}: the store is busy or failing after {self._max_attempts} attempts ({reason})"
            )
        return StorageError(f"cannot {action} {where}: {reason}")


def _client_config(endpoint_url: str | None, max_attempts: int, connect_timeout: float, read_timeout: float) -> Config:
    """Bounded retries with backoff, and timeouts short enough that a dead endpoint fails in seconds.

    S3-compatible servers get path-style addressing (MinIO and Ceph expect it) and
    transport checksums only where S3 requires them, since several such servers
    reject the newer default checksum headers; our own sha256 covers integrity.
    """
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": max_attempts},
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "signature_version": "s3v4",
    }
    if endpoint_url:
        options["s3"] = {"addressing_style": "path"}
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return Config(**options)


def _code(error: boto_errors.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
