"""Relaying a streamed answer without a task switch per chunk.

A Python proxy's cost per streamed chunk is mostly not its own work but the hand-offs: the
backend read wakes a reader task, which resumes an async generator, whose item the response
task sends. Under load those hand-offs queue behind every other stream's. Here the
backend connection's read callback mends the bytes and sends them to the client itself
(:func:`relay`), so a chunk leaves the proxy in the callback that read it.

Sending from a callback: ASGI's ``send`` is a coroutine, and uvicorn's only suspends when the
client is not reading fast enough (its write buffer is full). :class:`_Sender` runs it to
completion synchronously; when it does suspend, a task finishes it, the backend's reading is
paused until the client has caught up, and later pieces queue behind it in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from toolmend.proxy.errors import ProxyError
from toolmend.proxy.upstream import UpstreamResponse

Send = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Stop(Exception):
    """Raised by a relay's transform after its last piece (e.g. after ``[DONE]``)."""


class RelayEnd:
    """How a relay ended: ``"complete"`` (the body ended), ``"stopped"`` (the transform
    raised :class:`Stop`), ``"error"`` (the transform raised ``error``), ``"broken"`` (the
    body broke off: the response's ``error()``), or ``"gone"`` (the client disconnected)."""

    __slots__ = ("error", "how")

    def __init__(self, how: str, error: ProxyError | None = None) -> None:
        self.how = how
        self.error = error


async def relay(resp: UpstreamResponse, receive: Receive, send: Send, transform: Callable[[bytes], bytes]) -> RelayEnd:
    """Sends ``transform(piece)`` for each piece of ``resp``'s body, as it is read, as ASGI
    body messages (``more_body``). Returns when the body ends or breaks off, the transform
    stops or fails, or the client leaves; the response is not finished here (the caller sends
    its closing bytes and the final message)."""
    sender = _Sender(send, resp)
    outcome: list[RelayEnd] = []
    stopped = asyncio.get_running_loop().create_future()

    def on_piece(raw: bytes) -> None:
        if outcome:
            return
        try:
            out = transform(raw)
        except Stop as stop:
            out = stop.args[0] if stop.args else b""
            outcome.append(RelayEnd("stopped"))
        except ProxyError as e:
            outcome.append(RelayEnd("error", e))
            out = b""
        if out:
            try:
                sender.send(out)
            except Exception as e:  # the client side refused the message: nothing more to do
                outcome.append(RelayEnd("gone", ProxyError(500, f"sending failed: {e}", "client_send_failed")))
        if outcome and not stopped.done():
            stopped.set_result(None)

    ended = resp.relay(on_piece)
    gone = asyncio.ensure_future(_disconnect(receive))
    try:
        await asyncio.wait({ended, stopped, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not outcome and gone.done() and not gone.cancelled():
        outcome.append(RelayEnd("gone"))
    if outcome and outcome[0].how == "gone":
        sender.cancel()
        return outcome[0]
    await sender.drain()
    if outcome:
        return outcome[0]
    if resp.failure is not None:
        return RelayEnd("broken", resp.error(streaming=True))
    return RelayEnd("complete")


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _Sender:
    """Sends body pieces from synchronous code, in order (see the module's doc)."""

    def __init__(self, send: Send, resp: UpstreamResponse) -> None:
        self._send = send
        self._resp = resp
        self._backlog: list[bytes] = []
        self._task: asyncio.Future[None] | None = None

    def send(self, data: bytes) -> None:
        if self._task is not None:
            self._backlog.append(data)
            return
        co = self._send({"type": "http.response.body", "body": data, "more_body": True})
        try:
            waiting_on = co.send(None)
        except StopIteration:
            return
        self._resp.pause()
        self._task = asyncio.ensure_future(self._finish(co, waiting_on))

    async def _finish(self, co: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        try:
            await _Resumed(co, waiting_on)
            while self._backlog:
                data = b"".join(self._backlog)
                self._backlog = []
                await self._send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            self._task = None
            self._resp.resume()

    async def drain(self) -> None:
        """Waits until every piece has been handed to the server."""
        if self._task is not None:
            await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


class _Resumed:
    """Awaiting it finishes a coroutine that was stepped by hand and suspended on
    ``waiting_on``: the awaiting task waits for what the coroutine waits for, and resumes it."""

    def __init__(self, co: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._co = co
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        co, waiting_on = self._co, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as e:  # cancelled (or thrown into) while waiting: pass it on
                try:
                    waiting_on = co.throw(e)
                except StopIteration:
                    return
                continue
            try:
                waiting_on = co.send(sent)
            except StopIteration:
                return
