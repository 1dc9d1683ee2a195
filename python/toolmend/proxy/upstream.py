"""The backend connection: one pooled aiohttp session per app.

aiohttp, not httpx: the shared proxy benchmark (bench-anchors/proxy) measured a Starlette
passthrough at ~35 µs of CPU per chunk with aiohttp upstream against ~100 µs with httpx, and
httpx collapsing at 256 concurrent streams; the upstream client dominates a Python proxy's cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from toolmend.proxy.errors import ProxyError


class Upstream:
    """Requests to the backend at ``base_url`` (ending in ``/v1``)."""

    def __init__(self, base_url: str, *, connect_timeout: float, read_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
                ),
                json_serialize=lambda o: orjson.dumps(o).decode(),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        """``path`` relative to the backend's ``/v1`` (e.g. ``chat/completions``)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    async def open(
        self, method: str, path: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """Sends a request; returns the response with its body still unread. Connection
        failures and timeouts become a :class:`ProxyError` (502 / 504)."""
        try:
            return await self._client().request(method, self.url(path), data=body, headers=headers)
        except asyncio.TimeoutError:
            raise ProxyError(504, f"the backend at {self.base_url} did not answer in time", "backend_timeout") from None
        except aiohttp.ClientError as e:
            raise ProxyError(
                502, f"cannot reach the backend at {self.base_url}: {describe(e)}", "backend_unreachable"
            ) from None


async def read_body(resp: aiohttp.ClientResponse) -> bytes:
    """The whole body; a timeout or a broken connection becomes a :class:`ProxyError`."""
    try:
        return await resp.read()
    except asyncio.TimeoutError:
        raise ProxyError(504, "the backend stopped answering (read timeout)", "backend_timeout") from None
    except aiohttp.ClientError as e:
        raise ProxyError(502, f"the backend connection failed: {describe(e)}", "backend_error") from None


async def iter_chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body as it arrives; failures become a :class:`ProxyError`."""
    try:
        async for chunk in resp.content.iter_any():
            yield chunk
    except asyncio.TimeoutError:
        raise ProxyError(504, "the backend stopped sending (read timeout)", "backend_timeout") from None
    except aiohttp.ClientError as e:
        raise ProxyError(502, f"the backend stream broke off: {describe(e)}", "backend_stream_cut") from None


def describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def error_from_backend(status: int, body: bytes, cause: str | None = None) -> ProxyError:
    """An error answer of the backend (sent on with ``status``), keeping its message and its
    ``code`` when it has them. The metrics' cause is ``cause`` or ``backend_http_<status>``."""
    message = ""
    code: str | None = None
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("detail") or "")
            code = err.get("code") if isinstance(err.get("code"), str) and err.get("code") else None
        elif isinstance(err, str):
            message = err
    if not message:
        message = body.decode("utf-8", "replace").strip()[:500] or f"HTTP {status}"
    cause = cause or f"backend_http_{status}"
    return ProxyError(status, f"backend error: {message}", code or cause, cause)
