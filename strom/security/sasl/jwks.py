"""Where OAUTHBEARER's keys come from: sasl.oauthbearer.jwks.endpoint.url.

A file:// JWKS is read again when the file changes; an http(s):// one is
fetched at start, every sasl.oauthbearer.jwks.endpoint.refresh.ms, and when a
token names a key id the keys lack (at most once per
sasl.oauthbearer.jwks.endpoint.retry.backoff.ms, so tokens with made-up key
ids cannot make the broker hammer the identity provider). Reads run in a
thread: the event loop never waits on the network or the disk for them.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import urllib.request
from pathlib import Path

from strom.errors import InvalidConfigError
from strom.security.sasl.oauthbearer import JwksKeys

FETCH_TIMEOUT_S = 10.0
MAX_JWKS_BYTES = 1 << 20


class JwksSource:
    def __init__(self, url: str, *, refresh_ms: int = 3_600_000,
                 retry_backoff_ms: int = 100, setting: str = "sasl.oauthbearer.jwks.endpoint.url"
                 ) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("file", "http", "https"):
            raise InvalidConfigError(
                f"{setting}: {url!r} is not a file://, https:// or http:// URL")
        self.url = url
        self._setting = setting
        self._path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme == "file" else None
        self._refresh_s = refresh_ms / 1000
        self._backoff_s = retry_backoff_ms / 1000
        self._loaded_at = 0.0
        self._mtime: float | None = None
        self._lock = asyncio.Lock()
        self.keys = JwksKeys()

    def _read(self) -> tuple[JwksKeys, float | None]:
        if self._path is not None:
            mtime = self._path.stat().st_mtime
            data = self._path.read_bytes()[:MAX_JWKS_BYTES]
        else:
            mtime = None
            request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
                data = response.read(MAX_JWKS_BYTES)
        return JwksKeys.from_json(data.decode("utf-8", "replace")), mtime

    async def load(self) -> None:
        """First read, at start: a missing or bad JWKS is a one-line config error."""
        try:
            self.keys, self._mtime = await asyncio.to_thread(self._read)
        except (OSError, ValueError) as exc:
            raise InvalidConfigError(f"{self._setting}: cannot read {self.url}: {exc}") from None
        self._loaded_at = time.monotonic()

    def _file_changed(self) -> bool:
        if self._path is None:
            return False
        try:
            return self._path.stat().st_mtime != self._mtime
        except OSError:
            return False

    async def current(self) -> JwksKeys:
        """The keys, read again first if they are older than refresh.ms (or the file changed)."""
        if time.monotonic() - self._loaded_at > self._refresh_s or self._file_changed():
            await self.refresh()
        return self.keys

    async def refresh(self) -> JwksKeys:
        """Read again unless a read happened within retry.backoff.ms; a
        failed read keeps the keys there were (logged by the caller's failure)."""
        async with self._lock:
            if time.monotonic() - self._loaded_at < self._backoff_s and not self._file_changed():
                return self.keys
            try:
                self.keys, self._mtime = await asyncio.to_thread(self._read)
            except (OSError, ValueError):
                pass
            self._loaded_at = time.monotonic()
        return self.keys
