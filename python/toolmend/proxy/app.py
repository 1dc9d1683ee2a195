"""The Starlette app: routes, auth, limits, and the streaming plumbing around the mender."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from toolmend._core import ToolmendError, Tools
from toolmend.config import Settings
from toolmend.pipeline import Answer, BackendError, Outcome, Pipeline, Step, Turn
from toolmend.profiles import Profiles
from toolmend.proxy.anthropic import Messages
from toolmend.proxy.chat import ChatStream, answer_from_completion, mend_completion, with_answer, without_calls
from toolmend.proxy.chat import Outcome as MendOutcome
from toolmend.proxy.errors import ProxyError
from toolmend.proxy.metrics import Metrics
from toolmend.proxy.relay import Stop, relay
from toolmend.proxy.responses import responses_endpoint
from toolmend.proxy.sse import DONE, SSEDecoder, encode
from toolmend.proxy.upstream import Upstream, UpstreamResponse, error_from_backend, iter_chunks, read_body
from toolmend.steps import StepError, default_steps

log = logging.getLogger("toolmend.proxy")

_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
_JSON = "application/json"


def _retry_after(value: str | None, default: float | None) -> Any:
    """Seconds from a ``Retry-After`` header (a number of seconds), else ``default``."""
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


def _json_response(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=_JSON)


def _error_response(e: ProxyError) -> Response:
    return Response(e.json(), status_code=e.status, media_type=_JSON)


class _StreamState:
    """Where a mended stream is: the SSE decoder, whether ``[DONE]`` came, whether a chunk
    went out yet."""

    __slots__ = ("decoder", "done", "first")

    def __init__(self) -> None:
        self.decoder = SSEDecoder()
        self.done = False
        self.first = True


class _RelayedStream(StreamingResponse):
    """An SSE answer relayed from the backend. Served by the ASGI server, each read of the
    backend is transformed and sent in the read's own callback (``relay.py``); its
    ``body_iterator`` is the same stream as an async iterator, for code that translates it.
    Subclasses say how a read is transformed, what closes the stream, and what a failure sends."""

    def __init__(self, iterator: AsyncIterator[bytes], resp: UpstreamResponse, status: int = 200) -> None:
        super().__init__(iterator, status_code=status, media_type="text/event-stream", headers=_SSE_HEADERS)
        self._resp = resp

    def transform(self, raw: bytes) -> bytes:
        """What to send for one read (raise :class:`Stop` after the last)."""
        return raw

    async def closing(self) -> AsyncIterator[bytes]:
        """What to send once the backend's stream ended."""
        return
        yield b""  # an async generator that yields nothing

    def failed(self, e: ProxyError) -> bytes:
        """What to send when the stream broke off or could not be transformed: the error event."""
        return encode(e.body())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def body(data: bytes) -> None:
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            end = await relay(self._resp, receive, send, self.transform)
            if end.how == "gone":
                return  # the client left: nobody to finish the answer for
            if end.error is not None:
                await body(self.failed(end.error))
            else:
                async for out in self.closing():
                    await body(out)
        except ProxyError as e:
            await body(self.failed(e))
        finally:
            self._resp.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class _MendedStream(_RelayedStream):
    """The mended SSE stream of one chat completion."""

    def __init__(
        self,
        proxy: Proxy,
        mender: ChatStream,
        resp: UpstreamResponse,
        endpoint: str,
        started: float,
        turn: Turn | None,
        retry: Any,
    ) -> None:
        super().__init__(proxy._mend_stream(mender, resp, endpoint, started, turn, retry), resp)
        self._proxy = proxy
        self._mender = mender
        self._endpoint = endpoint
        self._started = started
        self._turn = turn
        self._retry = retry
        self._state = _StreamState()

    def transform(self, raw: bytes) -> bytes:
        out = self._proxy._mend_piece(self._mender, self._state, self._endpoint, self._started, raw)
        if self._state.done:
            raise Stop(out)
        return out

    def closing(self) -> AsyncIterator[bytes]:
        return self._proxy._mend_end(self._mender, self._state, self._endpoint, self._started, self._turn, self._retry)

    def failed(self, e: ProxyError) -> bytes:
        return self._proxy._stream_failed(e, self._endpoint, self._started)


class _ForwardedStream(_RelayedStream):
    """A stream passed on byte for byte (a request without tools)."""

    def __init__(self, proxy: Proxy, resp: UpstreamResponse, endpoint: str, started: float) -> None:
        super().__init__(proxy._forward_stream(resp, endpoint, started), resp, resp.status)
        self._proxy = proxy
        self._endpoint = endpoint
        self._started = started

    async def closing(self) -> AsyncIterator[bytes]:
        self._proxy._done(self._endpoint, True, self._started, self._resp.status)
        return
        yield b""

    def failed(self, e: ProxyError) -> bytes:
        return self._proxy._forward_failed(e, self._endpoint, self._started)


class Proxy:
    """The proxy's handlers and shared state (the backend session, the metrics)."""

    def __init__(self, settings: Settings, steps: Sequence[Step] = ()) -> None:
        if settings.backend_url is None:
            raise ValueError("settings.backend_url must be set (toolmend serve probes for one)")
        self.settings = settings
        self.upstream = Upstream(
            settings.backend_url,
            connect_timeout=settings.timeouts.connect,
            read_timeout=settings.timeouts.read,
        )
        self.metrics = Metrics()
        mw = settings.middleware
        self.profiles = Profiles.shipped().with_file(mw.profiles)
        self.pipeline: Pipeline | None = None
        self._tools_cache: dict[bytes, Tools] = {}
        # The first schema compiled in a process also builds the JSON Schema meta-validator
        # (about a millisecond): done here, at start-up, not in the first request with tools.
        Tools([{"type": "function", "function": {"name": "warm_up", "parameters": {"type": "object"}}}])
        if mw.enabled:
            pipeline_steps = default_steps(
                self.profiles,
                respond_tool=mw.respond_tool,
                recommended_sampling=mw.recommended_sampling,
                constrained=mw.constrained,
            )
            self.pipeline = Pipeline([*pipeline_steps, *steps], max_attempts=mw.max_attempts)

    def _tools(self, tools: list[Any]) -> Tools:
        """The prepared tools (schemas compiled once): agents send the same list every turn."""
        key = orjson.dumps(tools)
        found = self._tools_cache.get(key)
        if found is None:
            found = Tools(tools)
            if len(self._tools_cache) >= 128:
                self._tools_cache.pop(next(iter(self._tools_cache)))
            self._tools_cache[key] = found
        return found

    def _format(self, model: str | None, turn: Turn) -> str:
        """The format to parse with: one a step asked for, a configured override, the model's
        profile, or detection."""
        note = turn.notes.get("format")
        if isinstance(note, str):
            return note
        configured = self.settings.format_for(model)
        if configured != "auto":
            return configured
        profile = self.profiles.find(model)
        return profile.format if profile is not None and profile.format else "auto"

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
        elif self.settings.api_key is None and "x-api-key" in request.headers:
            # Anthropic clients send their key this way.
            headers["authorization"] = f"Bearer {request.headers['x-api-key']}"
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

    def _fail(self, endpoint: str, stream: bool, e: ProxyError, started: float) -> Response:
        self.metrics.failures.labels(e.cause).inc()
        self._done(endpoint, stream, started, e.status)
        log.warning("%s: %s (%s)", endpoint, e.message, e.code)
        return _error_response(e)

    # -- endpoints ---------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            self._check_key(request)
            body = await self._read_body(request)
            req = self._parse_json(body)
        except ProxyError as e:
            return self._fail("chat_completions", False, e, started)
        return await self.chat(request, req, body, "chat_completions", started)

    async def chat(self, request: Request, req: dict[str, Any], body: bytes, endpoint: str, started: float) -> Response:
        """A chat completion request (already read and authorised) answered the OpenAI way:
        JSON, or the canonical SSE stream; errors as an OpenAI error body with its status.
        The other front doors (Anthropic Messages, Responses) translate to and from this."""
        stream = bool(req.get("stream"))
        try:
            tools = req.get("tools")
            if not tools:
                return await self._unless_gone(
                    request,
                    endpoint,
                    stream,
                    started,
                    self._forward(request, "chat/completions", body, endpoint, stream, started),
                )
            if not isinstance(tools, list):
                raise ProxyError(400, "invalid tools: `tools` must be a list of tool objects", "invalid_tools")
            if req.get("tool_choice") == "none":
                # No call may reach the client; the text is left exactly as the model wrote it.
                return await self._unless_gone(
                    request, endpoint, stream, started, self._without_calls(request, body, endpoint, stream, started)
                )
            model = req.get("model") if isinstance(req.get("model"), str) else None
            turn = Turn(req)
            if self.pipeline is not None:
                try:
                    self.pipeline.prepare(turn)
                except StepError as e:
                    raise ProxyError(e.status, e.message, e.code) from None
            if "toolmend" in turn.request:
                del turn.request["toolmend"]  # our own request options never reach the backend
            if turn.request != turn.original:
                body = orjson.dumps(turn.request)
            try:
                options: dict[str, Any] = {
                    "tools": self._tools(turn.tools),
                    "format": self._format(model, turn),
                    "model": model,
                }
            except ToolmendError as e:
                raise ProxyError(400, f"invalid tools: {e}", "invalid_tools") from None
            single = req.get("n") in (None, 1)
            hold = self.pipeline is not None and single and self.pipeline.holds_calls(turn)
            mender = ChatStream(turn.request, options, hold_calls=hold) if stream else None
            return await self._unless_gone(
                request,
                endpoint,
                stream,
                started,
                self._mend(request, body, options, mender, endpoint, stream, started, turn if single else None),
            )
        except ProxyError as e:
            return self._fail(endpoint, stream, e, started)

    async def _unless_gone(
        self, request: Request, endpoint: str, stream: bool, started: float, work: Coroutine[Any, Any, Response]
    ) -> Response:
        """Runs ``work`` (the backend request, up to the response we send) unless the client
        disconnects meanwhile: then it is cancelled, which closes the backend request, so that a
        client that gave up on a slow answer does not leave the backend generating it. (Once a
        stream has started, Starlette cancels it when the client leaves.)"""
        task = asyncio.ensure_future(work)
        watcher = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ProxyError):
                await task
            self.metrics.failures.labels("client_disconnected").inc()
            self._done(endpoint, stream, started, 499)
            log.info("%s: the client disconnected before the answer; backend request cancelled", endpoint)
            return Response(status_code=499)  # never sent: there is nobody to send it to
        return task.result()

    async def _mend(
        self,
        request: Request,
        body: bytes,
        options: dict[str, Any],
        mender: ChatStream | None,
        endpoint: str,
        stream: bool,
        started: float,
        turn: Turn | None,
    ) -> Response:
        """Asks the backend, then mends its answer (whole, or as a stream), running the
        pipeline's steps on it when ``turn`` is given."""
        headers = self._upstream_headers(request)
        resp = await self._open_with_backoff(body, headers)
        retry = self._retry_backend(headers, options)
        try:
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
                if isinstance(answer, dict) and answer.get("error") is not None and "choices" not in answer:
                    # Some servers report a failure as HTTP 200 with an error body.
                    raise error_from_backend(502, data, "backend_error")
                if turn is not None and self.pipeline is not None:
                    first = answer_from_completion(answer, options)
                    final = await self._finish_turn(turn, first, retry)
                    mended = with_answer(answer, final)
                else:
                    mended, outcome = mend_completion(answer, options)
                    self.metrics.record_outcome(outcome)
                self._done(endpoint, stream, started)
                if mender is None:
                    return _json_response(mended)
                # A stream was asked for and the backend answered whole: send it as one.
                return StreamingResponse(
                    self._replay(mender, mended), media_type="text/event-stream", headers=_SSE_HEADERS
                )
            assert mender is not None  # made for every streamed request
            return _MendedStream(self, mender, resp, endpoint, started, turn, retry)
        except BaseException:
            resp.close()  # also when cancelled: the client left
            raise

    def _done(self, endpoint: str, stream: bool, started: float, status: int = 200) -> None:
        s = str(stream).lower()
        self.metrics.requests.labels(endpoint, s, str(status)).inc()
        self.metrics.duration.labels(endpoint, s).observe(time.perf_counter() - started)

    async def _without_calls(
        self, request: Request, body: bytes, endpoint: str, stream: bool, started: float
    ) -> Response:
        """``tool_choice: "none"``: the answer as the backend gave it, minus any tool calls."""
        resp = await self._open_with_backoff(body, self._upstream_headers(request))
        if resp.status >= 400:
            data = await read_body(resp)
            resp.release()
            raise error_from_backend(resp.status, data)
        if not stream or resp.content_type != "text/event-stream":
            data = await read_body(resp)
            resp.release()
            try:
                answer = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise ProxyError(502, "the backend's answer is not JSON", "backend_malformed_answer") from None
            self._done(endpoint, stream, started)
            return _json_response(without_calls(answer))

        async def relay() -> AsyncIterator[bytes]:
            decoder = SSEDecoder()
            try:
                async for raw in iter_chunks(resp):
                    out = []
                    for payload in decoder.feed(raw):
                        if payload == b"[DONE]":
                            out.append(DONE)
                            continue
                        try:
                            chunk = without_calls(orjson.loads(payload))
                        except orjson.JSONDecodeError:
                            raise ProxyError(
                                502, "the backend sent a malformed stream event", "backend_malformed_stream"
                            ) from None
                        if chunk is not None:
                            out.append(encode(chunk))
                    if out:
                        yield b"".join(out)
                self._done(endpoint, True, started)
            except ProxyError as e:
                self.metrics.failures.labels(e.cause).inc()
                self._done(endpoint, True, started, e.status)
                yield encode(e.body())
            finally:
                resp.close()

        return StreamingResponse(relay(), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def _open_with_backoff(self, body: bytes, headers: dict[str, str]) -> UpstreamResponse:
        """Opens the chat request; on 429 / 503 waits (``Retry-After`` or a doubling delay) and
        tries again, as many times as the pipeline's attempts allow."""
        attempts = self.pipeline.max_attempts if self.pipeline is not None else 1
        delay = self.pipeline.backoff if self.pipeline is not None else 0.0
        for n in range(attempts):
            resp = await self.upstream.open("POST", "chat/completions", body=body, headers=headers)
            if resp.status not in (429, 503) or n + 1 >= attempts or self.pipeline is None:
                return resp
            wait = _retry_after(resp.headers.get("retry-after"), delay)
            resp.release()
            self.metrics.retries.labels("backoff").inc()
            await asyncio.sleep(min(wait, self.pipeline.max_backoff))
            delay = min(delay * 2, self.pipeline.max_backoff)
        raise AssertionError("unreachable")

    def _retry_backend(self, headers: dict[str, str], options: dict[str, Any]) -> Any:
        """The pipeline's backend for retries: a non-streamed request, its answer mended."""

        async def backend(request: dict[str, Any]) -> Answer:
            resp = await self.upstream.open("POST", "chat/completions", body=orjson.dumps(request), headers=headers)
            try:
                data = await read_body(resp)
            finally:
                resp.release()
            if resp.status in (429, 503):
                raise BackendError(
                    resp.status, data.decode("utf-8", "replace"), _retry_after(resp.headers.get("retry-after"), None)
                )
            if resp.status >= 400:
                raise error_from_backend(resp.status, data)
            try:
                completion = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise ProxyError(502, "the backend's answer is not JSON", "backend_malformed_answer") from None
            return answer_from_completion(completion, options)

        return backend

    async def _finish_turn(self, turn: Turn, answer: Answer, backend: Any) -> Answer:
        """Retries with feedback while the answer is unusable, then the steps' final say."""
        assert self.pipeline is not None
        outcome = Outcome()
        try:
            answer = await self.pipeline.retry(turn, backend, answer, outcome)
        except BackendError as e:
            raise ProxyError(e.status, f"backend error while retrying: {e}", f"backend_http_{e.status}") from None
        if outcome.result != "first_try":
            self.metrics.retries.labels(outcome.result).inc()
        final = self.pipeline.finalize(turn, answer)
        native = min(answer.native_calls, len(final.calls))
        self.metrics.record_outcome(
            MendOutcome(
                format=final.format,
                text_calls=len(final.calls) - native,
                native_calls=native,
                diagnostics=[d.kind for d in answer.diagnostics],
            )
        )
        return final

    async def _mend_stream(
        self,
        mender: ChatStream,
        resp: UpstreamResponse,
        endpoint: str,
        started: float,
        turn: Turn | None = None,
        retry: Any = None,
    ) -> AsyncIterator[bytes]:
        """The mended stream as an async iterator (what the Anthropic and Responses front doors
        translate; served directly, :class:`_MendedStream` relays it from the read callback)."""
        state = _StreamState()
        try:
            async for raw in iter_chunks(resp):
                out = self._mend_piece(mender, state, endpoint, started, raw)
                if out:
                    yield out
                if state.done:
                    break
            async for out in self._mend_end(mender, state, endpoint, started, turn, retry):
                yield out
        except ProxyError as e:
            yield self._stream_failed(e, endpoint, started)
        finally:
            resp.close()

    def _mend_piece(self, mender: ChatStream, state: _StreamState, endpoint: str, started: float, raw: bytes) -> bytes:
        """The mended bytes for one read of the backend's stream (up to its ``[DONE]``)."""
        out: list[bytes] = []
        for payload in state.decoder.feed(raw):
            if payload == b"[DONE]":
                state.done = True
                break
            out += mender.feed(payload)
        if out and state.first:
            state.first = False
            self.metrics.first_chunk.labels(endpoint).observe(time.perf_counter() - started)
        return b"".join(out)

    async def _mend_end(
        self, mender: ChatStream, state: _StreamState, endpoint: str, started: float, turn: Turn | None, retry: Any
    ) -> AsyncIterator[bytes]:
        """The stream's closing bytes once the backend's stream ended: what the parser held
        back, then (when calls were held for the pipeline) the checked answer, and ``[DONE]``."""
        if not state.done:
            tail = state.decoder.close()
            if tail is not None and tail != b"[DONE]":
                out = b"".join(mender.feed(tail))
                if out:
                    yield out
            state.done = tail == b"[DONE]"
        closing = mender.end(state.done)
        if turn is not None and self.pipeline is not None and mender.holding:
            if closing:
                yield b"".join(closing)  # content the parser held back goes out before any retry
                closing = []
            final = await self._finish_turn(turn, mender.answer(), retry)
            yield b"".join(closing + mender.close(final)) + DONE
        else:
            yield b"".join(closing + mender.close()) + DONE
            self.metrics.record_outcome(mender.outcome())
        self._done(endpoint, True, started)

    def _stream_failed(self, e: ProxyError, endpoint: str, started: float) -> bytes:
        """Counts a stream that failed after it started; returns the error event to send."""
        self.metrics.failures.labels(e.cause).inc()
        self._done(endpoint, True, started, e.status)
        log.warning("%s: %s (%s)", endpoint, e.message, e.code)
        return encode(e.body())

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
        out += mender.end(True)
        # The answer was already through the pipeline: held calls go out as they are.
        out += mender.close(mender.answer() if mender.holding else None)
        yield b"".join(out) + DONE

    async def _forward(
        self, request: Request, path: str, body: bytes | None, endpoint: str, stream: bool, started: float
    ) -> Response:
        """Sends the request on unchanged and the answer back unchanged (bytes as they come)."""
        method = request.method
        resp = await self.upstream.open(method, path, body=body, headers=self._upstream_headers(request))
        is_sse = resp.content_type == "text/event-stream"
        if not is_sse:
            try:
                data = await read_body(resp)
            finally:
                resp.release()
            self._done(endpoint, stream, started, resp.status)
            return Response(data, status_code=resp.status, media_type=resp.content_type or _JSON)

        return _ForwardedStream(self, resp, endpoint, started)

    async def _forward_stream(self, resp: UpstreamResponse, endpoint: str, started: float) -> AsyncIterator[bytes]:
        """A forwarded stream as an async iterator."""
        try:
            async for raw in iter_chunks(resp):
                yield raw
            self._done(endpoint, True, started, resp.status)
        except ProxyError as e:
            yield self._forward_failed(e, endpoint, started)
        finally:
            resp.close()

    def _forward_failed(self, e: ProxyError, endpoint: str, started: float) -> bytes:
        """The stream broke off: say so in the stream (the status line is long sent)."""
        self.metrics.failures.labels(e.cause).inc()
        self._done(endpoint, True, started, e.status)
        return b"\n\n" + encode(e.body())

    async def completions(self, request: Request) -> Response:
        endpoint = "completions"
        started = time.perf_counter()
        stream = False
        try:
            self._check_key(request)
            body = await self._read_body(request)
            stream = bool(self._parse_json(body).get("stream"))
            return await self._unless_gone(
                request,
                endpoint,
                stream,
                started,
                self._forward(request, "completions", body, endpoint, stream, started),
            )
        except ProxyError as e:
            return self._fail(endpoint, stream, e, started)

    async def models(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            self._check_key(request)
            return await self._unless_gone(
                request, "models", False, started, self._forward(request, "models", None, "models", False, started)
            )
        except ProxyError as e:
            return self._fail("models", False, e, started)

    async def health(self, request: Request) -> Response:
        """The proxy is up; ``backend`` says whether the backend answered ``GET /models`` now."""
        ok = False
        with contextlib.suppress(ProxyError, asyncio.TimeoutError):
            resp = await asyncio.wait_for(self.upstream.open("GET", "models"), 2.0)
            ok = resp.status < 400
            resp.release()
        return _json_response({"status": "ok", "backend": {"url": self.upstream.base_url, "reachable": ok}})

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=self.metrics.content_type)

    async def not_found(self, request: Request) -> Response:
        return _error_response(ProxyError(404, f"no route {request.method} {request.url.path}", "not_found"))


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects (call it once the request body has been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def create_app(settings: Settings, steps: Sequence[Step] = ()) -> Starlette:
    """The proxy as an ASGI app (``settings.backend_url`` must be set). ``steps`` are your own
    pipeline steps, run after the built-in ones (see docs/middleware.md)."""
    proxy = Proxy(settings, steps)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        yield {}
        await proxy.upstream.close()

    routes = []
    messages = Messages(proxy)
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/chat/completions", proxy.chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", proxy.completions, methods=["POST"]),
            Route(f"{prefix}/models", proxy.models, methods=["GET"]),
            Route(f"{prefix}/messages", messages.messages, methods=["POST"]),
            Route(f"{prefix}/messages/count_tokens", messages.count_tokens, methods=["POST"]),
            Route(f"{prefix}/responses", responses_endpoint(proxy), methods=["POST"]),
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
