"""What protects the gallery from other sites and from guessing: headers on every response,
same-origin writes, and a limit on failed write tokens.

The gallery's pages are read without a login, and its one write (rerunning failed jobs)
needs a token. A page elsewhere must not be able to post that form (a cross-site request
rides on the visitor's network position), frame the gallery to trick a click on an
autofilled token box, or make the browser sniff a stored file as HTML.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Sent with every response: pages, errors, redirects, media and static files.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Scripts only from the app's own files (none inline: an injected <script> would not run);
    # pictures may come from the S3 endpoint a presigned redirect points to, so img-src is open.
    "Content-Security-Policy": "frame-ancestors 'none'; script-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'",
}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Failed write tokens allowed per client address within the window, before it must wait.
FAILED_TOKENS_ALLOWED = 5
FAILED_TOKEN_WINDOW_S = 60.0


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every response the app sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def cross_site_reason(request: Request) -> str | None:
    """Why a write request comes from another site, or None when it does not.

    Browsers send `Origin` with every POST; where it is missing (older browsers, privacy
    settings), `Sec-Fetch-Site` says the same. A request with neither is no browser's
    cross-site request (a script or curl), and is left to the token. The origin is compared
    with the Host the request was sent to, so that a reverse proxy that keeps the Host header
    (and terminates TLS) works unchanged.
    """
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            return f"a write from another site (Origin {origin}) is refused"
        return None
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"a write from another site (Sec-Fetch-Site {site}) is refused"
    return None


class FailedTokens:
    """A sliding window of failed tokens per client address: after `allowed` failures in
    `window_s` seconds, the address waits until the oldest one leaves the window."""

    def __init__(self, allowed: int = FAILED_TOKENS_ALLOWED, window_s: float = FAILED_TOKEN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed, self.window_s, self.clock = allowed, window_s, clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> int:
        """Seconds `client` must wait before its next try (0: it may try now)."""
        recent = self._recent(client)
        if len(recent) < self.allowed:
            return 0
        return max(1, math.ceil(recent[0] + self.window_s - self.clock()))

    def failed(self, client: str) -> None:
        self._recent(client).append(self.clock())

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        for address in [a for a, times in self._failures.items() if not times or times[-1] <= now - self.window_s]:
            del self._failures[address]  # forget quiet addresses, so that the table stays small
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] <= now - self.window_s:
            recent.popleft()
        return recent
