"""Hiding credentials in URLs and in text that may quote them.

A leaf below every other package of ours (db, storage, tasks, flows, the CLI), so that the
one masking rule is shared by `atelier config`, `atelier db`, the flows' log lines and error
messages, and a new URL form (or a new secret setting) is handled everywhere at once. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

MASK = "***"

# Query-string keys whose values are secrets (libpq's `password`, `sslpassword`, tokens, keys).
_SECRET_KEY = re.compile(r"(pass|pwd|secret|token|key|credential|signature)", re.IGNORECASE)
_QUERY_PAIR = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def mask_url(url: str | None) -> str | None:
    """`url` with every credential replaced by `***`; the user, host, path and other
    parameters stay visible so that the URL still says where it points.

    Handles a password in the userinfo (also one containing unescaped `@` or `:`), a
    token-only userinfo (`https://TOKEN@host`), and secret query parameters
    (`?password=...`, `sslpassword`, `token`, `...key`). Text without `://` is returned as is.
    """
    if not url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    query_at = _first_index(rest, "?#")
    authority_and_path, tail = rest[:query_at], rest[query_at:]
    at = authority_and_path.rfind("@")
    if at > 0 and not authority_and_path.startswith("/"):
        userinfo, host_and_path = authority_and_path[:at], authority_and_path[at + 1:]
        user, colon, _password = userinfo.partition(":")
        masked_userinfo = f"{user}:{MASK}" if colon else (MASK if scheme.startswith("http") else user)
        authority_and_path = f"{masked_userinfo}@{host_and_path}"
    tail = _QUERY_PAIR.sub(
        lambda m: f"{m[1]}{m[2]}={MASK}" if _SECRET_KEY.search(m[2]) else m[0], tail
    )
    return f"{scheme}://{authority_and_path}{tail}"


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of `url` as they may appear in text: raw and percent-decoded."""
    if not url or "://" not in url:
        return []
    rest = url.split("://", 1)[1]
    query_at = _first_index(rest, "?#")
    authority_and_path, tail = rest[:query_at], rest[query_at:]
    found: list[str] = []
    at = authority_and_path.rfind("@")
    if at > 0 and not authority_and_path.startswith("/"):
        _user, colon, password = authority_and_path[:at].partition(":")
        if colon and password:
            found.append(password)
    found += [m[3] for m in _QUERY_PAIR.finditer(tail) if _SECRET_KEY.search(m[2]) and m[3]]
    variants = {s for secret in found for s in (secret, unquote(secret))}
    # A password with an unescaped `@`, `:` or `/` is split there by URL parsers, and drivers
    # then quote its pieces (e.g. as part of a host name).
    variants |= {piece for secret in list(variants) for piece in re.split(r"[@:/]", secret) if len(piece) >= 3}
    # Longest first, so that a secret containing another one is replaced whole.
    return sorted(variants, key=len, reverse=True)


def redact(text: str, urls: list[str | None]) -> str:
    """`text` with the secrets of each URL in `urls` replaced by `***` wherever they occur
    (error messages from drivers quote URLs and their parts in many shapes)."""
    for url in urls:
        for secret in url_secrets(url):
            text = text.replace(secret, MASK)
    return text


def mask_setting(name: str, value: object) -> object:
    """A setting as it may be shown: a secret by its name (`web_token`) as `***`, a URL with
    its credentials masked, anything else as it is."""
    if value is None:
        return None
    if _SECRET_KEY.search(name):
        return MASK
    return mask_url(value) if isinstance(value, str) else value


def redact_settings(text: str, settings: Mapping[str, object]) -> str:
    """`text` without any secret the settings hold: the credentials of every URL among them
    and the whole value of every setting whose name says it is a secret."""
    text = redact(text, [value for value in settings.values() if isinstance(value, str)])
    for name, value in settings.items():
        if isinstance(value, str) and value and _SECRET_KEY.search(name):
            text = text.replace(value, MASK)
    return text


def _first_index(text: str, characters: str) -> int:
    positions = [i for i in (text.find(c) for c in characters) if i >= 0]
    return min(positions) if positions else len(text)
