"""Object naming: the only place where a key is built or read back.

Keys are content-addressed (`objects/ab/<sha256><.ext>`), so the key itself is the
checksum and a put of the same bytes lands on the same key. Nothing a user typed
reaches a key or a path without passing a full-match pattern here; anything that
does not match is refused rather than cleaned up, so there is no escaping to find.
"""

from __future__ import annotations

import mimetypes
import re

from storage.errors import ChecksumMismatch, InvalidObjectName

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUFFIX = re.compile(r"(?:\.[a-z0-9]{1,8})?")
_CONTENT_KEY = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{64})(?:\.[a-z0-9]{1,8})?")
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def normalize_suffix(suffix: str) -> str:
    """Return `.ext` in lower case ("" for none); refuse anything but 1–8 letters or digits."""
    candidate = suffix.strip().lower()
    if candidate and not candidate.startswith("."):
        candidate = "." + candidate
    if not _SUFFIX.fullmatch(candidate):
        raise InvalidObjectName(f"invalid file suffix {suffix!r}: expected '.' and 1-8 letters or digits")
    return candidate


def guess_content_type(suffix: str) -> str:
    """Content type from the suffix, so that presigned URLs display images in a browser."""
    return mimetypes.guess_type("object" + suffix)[0] or "application/octet-stream"


def content_key(sha256: str, suffix: str) -> str:
    """The key for bytes with this digest: `objects/ab/<sha256><suffix>`."""
    if not _SHA256.fullmatch(sha256):
        raise InvalidObjectName(f"invalid sha256 {sha256!r}: expected 64 lower-case hex digits")
    return f"objects/{sha256[:2]}/{sha256}{normalize_suffix(suffix)}"


def digest_of_key(key: str) -> str:
    """The sha256 a content key was built from; refuses every string `content_key` cannot produce."""
    match = _CONTENT_KEY.fullmatch(key)
    if match is None or not match.group(2).startswith(match.group(1)):
        raise InvalidObjectName(f"not a content-addressed object key: {key!r}")
    return match.group(2)


def expected_digest(key: str, sha256: str | None, where: str) -> str:
    """The digest to verify a download against: the key's, which must agree with the caller's."""
    digest = digest_of_key(key)
    if sha256 is not None and sha256.lower() != digest:
        raise ChecksumMismatch(f"{where} is addressed by sha256 {digest}, but the caller expects {sha256}")
    return digest


def normalize_prefix(prefix: str) -> str:
    """A key prefix such as `atelier/prod`: plain segments that cannot start with a dot, none empty."""
    segments = [segment for segment in prefix.split("/") if segment]
    for segment in segments:
        if not _PREFIX_SEGMENT.fullmatch(segment):
            raise InvalidObjectName(f"invalid key prefix {prefix!r}: segment {segment!r} is not allowed")
    return "/".join(segments)


def check_bucket_name(bucket: str) -> str:
    """Refuse names S3 would refuse anyway, before they reach a URL."""
    if not _BUCKET.fullmatch(bucket):
        raise InvalidObjectName(f"invalid bucket name {bucket!r}")
    return bucket
