"""The Starlette app: routes, auth, limits, and the streaming plumbing around the mender."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from toolmend._core import ToolmendError, Tools
from toolmend.config import Settings
from toolmend.proxy.chat import ChatStream, mend_completion
from toolmend.proxy.errors import ProxyError
from toolmend.proxy.metrics import Metrics
from toolmend.proxy.sse import DONE, SSEDecoder, encode
from toolmend.proxy.upstream import Upstream, error_from_backend, iter_chunks, read_body

log = logging.getLogger("toolmend.proxy")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_JSON = "application/json"


def _json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=_JSON)


def _error_response(e: ProxyError) -> Response:
    return Response(e.json(), status_code=e.status, media_type=_JSON)


class Proxy:
    """The proxy's handlers and shared state (the backend session, the metrics)."""

    def __init__(self, settings: Settings) -> None:
        if settings.backend_url is None:
            raise ValueError("settings.backend_url must be set (toolmend serve probes for one)")
        self.settings = settings
        self.upstream = Upstream(
            settings.backend_url,
            connect_timeout=settings.timeouts.connect,
            read_timeout=settings.timeouts.read,
        )
        self.metrics = Metrics()

    # -- request helpers ---------------------------------------------------------------

    def _check_key(self, request: Request) -> None:
        key = self.settings.api_key
        if key is None:
            return
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise ProxyError(401, "invalid or missing API key for this toolmend proxy", "invalid_api_key")

    def _upstream_headers(self, request: Request) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": "application/json, text/event-stream"}
        if self.settings.backend_api_key:
            headers["authorization"] = f"Bearer {self.settings.backend_api_key}"
        elif self.settings.api_key is None and "authorization" in request.headers:
            # The client's key is meant for the backend (unless it was the proxy's own key).
            headers["authorization"] = request.headers["authorization"]
        return headers

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.limits.max_request_bytes
        declared = request.headers.get("content-length")
        too_big = ProxyError(413, f"request body larger than {limit} bytes", "request_too_large")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
        return bytes(body)

    @staticmethod
    def _parse_json(body: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ProxyError(400, f"the request body is not valid JSON: {e}", "invalid_json") from None
        if not isinstance(data, dict):
            raise ProxyError(400, "the request body must be a JSON object", "invalid_request")
        return data

    def _fail(self, endpoint: str, stream: bool, e: ProxyError) -> Response:
        self.metrics.failures.labels(e.code).inc()
        self.metrics.requests.labels(endpoint, str(stream).lower(), str(e.status)).inc()
        log.warning("%s: %s (%s)", endpoint, e.message, e.code)
        return _error_response(e)

    # -- endpoints ---------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        endpoint = "chat_completions"
        started = time.perf_counter()
        stream = False
        try:
            self._check_key(request)
            body = await self._read_body(request)
            req = self._parse_json(body)
            stream = bool(req.get("stream"))
            tools = req.get("tools")
            if not tools or req.get("tool_choice") == "none":
                return await self._forward(request, "chat/completions", body, endpoint, stream, started)
            model = req.get("model") if isinstance(req.get("model"), str) else None
            try:
                options: dict[str, Any] = {
                    "tools": Tools(tools),
                    "format": self.settings.format_for(model),
                    "model": model,
                }
                mender = ChatStream(req, options) if stream else None
            except ToolmendError as e:
                raise ProxyError(400, f"invalid tools: {e}", "invalid_tools") from None
            resp = await self.upstream.open(
                "POST", "chat/completions", body=body, headers=self._upstream_headers(request)
            )
            if resp.status >= 400:
                data = await read_body(resp)
                resp.release()
                raise error_from_backend(resp.status, data)
            is_sse = resp.content_type == "text/event-stream"
            if not stream or not is_sse:
                data = await read_body(resp)
                resp.release()
                try:
                    answer = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise ProxyError(502, "the backend's answer is not JSON", "backend_malformed_answer") from None
                mended, outcome = mend_completion(answer, options)
                self.metrics.record_outcome(outcome)
                self._done(endpoint, stream, started)
                if mender is None:
                    return _json_response(mended)
                # A stream was asked for and the backend answered whole: send it as one.
                return StreamingResponse(
                    self._replay(mender, mended), media_type="text/event-stream", headers=_SSE_HEADERS
                )
            return StreamingResponse(
                self._mend_stream(mender, resp, endpoint, started), media_type="text/event-stream", headers=_SSE_HEADERS
            )
        except ProxyError as e:
            return self._fail(endpoint, stream, e)

    def _done(self, endpoint: str, stream: bool, started: float, status: int = 200) -> None:
        s = str(stream).lower()
        self.metrics.requests.labels(endpoint, s, str(status)).inc()
        self.metrics.duration.labels(endpoint, s).observe(time.perf_counter() - started)

    async def _mend_stream(
        self, mender: ChatStream | None, resp: aiohttp.ClientResponse, endpoint: str, started: float
    ) -> AsyncIterator[bytes]:
        assert mender is not None
        decoder = SSEDecoder()
        first = True
        done = False
        try:
            async for raw in iter_chunks(resp):
                out: list[bytes] = []
                for payload in decoder.feed(raw):
                    if payload == b"[DONE]":
                        done = True
                        break
                    out += mender.feed(payload)
                if out:
                    if first:
                        first = False
                        self.metrics.first_chunk.labels(endpoint).observe(time.perf_counter() - started)
                    yield b"".join(out)
                if done:
                    break
            if not done:
                tail = decoder.close()
                if tail is not None and tail != b"[DONE]":
                    yield b"".join(mender.feed(tail))
                done = done or tail == b"[DONE]"
            yield b"".join(mender.finish(done)) + DONE
            self.metrics.record_outcome(mender.outcome())
            self._done(endpoint, True, started)
        except ProxyError as e:
            self.metrics.failures.labels(e.code).inc()
            self._done(endpoint, True, started, e.status)
            log.warning("%s: %s (%s)", endpoint, e.message, e.code)
            yield encode(e.body())
        finally:
            resp.close()

    async def _replay(self, mender: ChatStream | None, mended: Any) -> AsyncIterator[bytes]:
        """A whole (already mended) answer as a canonical stream."""
        assert mender is not None
        out: list[bytes] = []
        choices = mended.get("choices") if isinstance(mended, dict) else None
        for ch in choices if isinstance(choices, list) else []:
            msg = ch.get("message") or {}
            calls = [{**c, "index": i} for i, c in enumerate(msg.get("tool_calls") or [])]
            delta = {"content": msg.get("content"), "tool_calls": calls}
            chunk = {
                **mended,
                "choices": [{"index": ch.get("index", 0), "delta": delta, "finish_reason": ch.get("finish_reason")}],
            }
            out += mender.feed(orjson.dumps(chunk))
        out += mender.finish(True)
        yield b"".join(out) + DONE

    async def _forward(
        self, request: Request, path: str, body: bytes | None, endpoint: str, stream: bool, started: float
    ) -> Response:
        """Sends the request on unchanged and the answer back unchanged (bytes as they come)."""
        method = request.method
        resp = await self.upstream.open(method, path, body=body, headers=self._upstream_headers(request))
        is_sse = resp.content_type == "text/event-stream"
        if not is_sse:
            data = await read_body(resp)
            resp.release()
            self._done(endpoint, stream, started, resp.status)
            return Response(data, status_code=resp.status, media_type=resp.content_type or _JSON)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for raw in iter_chunks(resp):
                    yield raw
                self._done(endpoint, True, started, resp.status)
            except ProxyError as e:
                # The stream broke off: say so in the stream (the status line is long sent).
                self.metrics.failures.labels(e.code).inc()
                self._done(endpoint, True, started, e.status)
                yield b"\n\n" + encode(e.body())
            finally:
                resp.close()

        return StreamingResponse(relay(), status_code=resp.status, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def completions(self, request: Request) -> Response:
        endpoint = "completions"
        started = time.perf_counter()
        stream = False
        try:
            self._check_key(request)
            body = await self._read_body(request)
            stream = bool(self._parse_json(body).get("stream"))
            return await self._forward(request, "completions", body, endpoint, stream, started)
        except ProxyError as e:
            return self._fail(endpoint, stream, e)

    async def models(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            self._check_key(request)
            return await self._forward(request, "models", None, "models", False, started)
        except ProxyError as e:
            return self._fail("models", False, e)

    async def health(self, request: Request) -> Response:
        """The proxy is up; ``backend`` says whether the backend answered ``GET /models`` now."""
        ok = False
        with contextlib.suppress(ProxyError, aiohttp.ClientError, asyncio.TimeoutError):
            resp = await asyncio.wait_for(self.upstream.open("GET", "models"), 2.0)
            ok = resp.status < 400
            resp.release()
        return _json_response({"status": "ok", "backend": {"url": self.upstream.base_url, "reachable": ok}})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def not_found(self, request: Request) -> Response:
        return _error_response(ProxyError(404, f"no route {request.method} {request.url.path}", "not_found"))


def create_app(settings: Settings) -> Starlette:
    """The proxy as an ASGI app (``settings.backend_url`` must be set)."""
    proxy = Proxy(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        yield {}
        await proxy.upstream.close()

    routes = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/chat/completions", proxy.chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", proxy.completions, methods=["POST"]),
            Route(f"{prefix}/models", proxy.models, methods=["GET"]),
        ]
    routes += [
        Route("/health", proxy.health, methods=["GET"]),
        Route("/metrics", proxy.metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.proxy = proxy

    async def not_found(request: Request, exc: Exception) -> Response:
        return await proxy.not_found(request)

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_found)
    return app
