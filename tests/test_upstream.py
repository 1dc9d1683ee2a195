"""The proxy's HTTP/1.1 client to the backend, against a server that writes exact bytes."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from toolmend.proxy.errors import ProxyError
from toolmend.proxy.relay import Stop, relay
from toolmend.proxy.upstream import Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


async def _with_server(handler: Handler, test: Callable[[Upstream], Awaitable[None]], read_timeout: float = 5) -> None:
    writers: list[asyncio.StreamWriter] = []
    tasks: list[asyncio.Task[None]] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    up = Upstream(f"http://127.0.0.1:{port}/v1", connect_timeout=2, read_timeout=read_timeout)
    try:
        await test(up)
    finally:
        await up.close()
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


def _run(handler: Handler, test: Callable[[Upstream], Awaitable[None]], read_timeout: float = 5) -> None:
    asyncio.run(_with_server(handler, test, read_timeout))


def test_request_line_headers_and_body_reach_the_backend_and_the_answer_comes_back() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\n")
        writer.write(b'X-Twice: a\r\nX-Twice: b\r\nContent-Length: 12\r\n\r\n{"ok": true}')
        await writer.drain()
        writer.close()

    async def test(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b'{"a":1}', headers={"authorization": "Bearer k"})
        assert resp.status == 201
        assert resp.content_type == "application/json"
        assert resp.headers["x-twice"] == "a, b"
        assert await resp.read() == b'{"ok": true}'
        resp.release()

    _run(handler, test)
    head, body = seen[0]
    assert head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer k\r\n" in head and b"\r\nContent-Length: 7\r\n" in head
    assert body == b'{"a":1}'


def test_a_finished_answer_leaves_its_connection_for_the_next_request() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(3):
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
            await writer.drain()
        writer.close()

    async def test(up: Upstream) -> None:
        for _ in range(3):
            resp = await up.open("GET", "models")
            assert await resp.read() == b"abcde"
            resp.release()

    _run(handler, test)
    assert connections == 1


def test_a_kept_connection_the_backend_closed_is_retried_on_a_new_one() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        if connections == 1:
            # Keep-alive as far as the client knows, then the backend drops it while idle, the
            # way servers do after their keep-alive timeout; the client may not notice in time.
            await reader.read(1)  # the next request's first byte
            writer.transport.abort()
            return
        writer.close()

    async def test(up: Upstream) -> None:
        first = await up.open("GET", "models")
        assert await first.read() == b"ok"
        first.release()
        second = await up.open("GET", "models")
        assert await second.read() == b"ok"
        second.release()

    _run(handler, test)
    assert connections == 2


def test_chunks_stream_as_they_arrive_and_a_close_ends_an_unframed_body() -> None:
    step = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: 1\n\n")
        await writer.drain()
        await step.wait()
        writer.write(b"data: 2\n\n")
        await writer.drain()
        writer.close()

    async def test(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        assert resp.content_type == "text/event-stream"
        got = []
        async for chunk in resp.iter_chunks():
            got.append(chunk)
            step.set()
        assert b"".join(got) == b"data: 1\n\ndata: 2\n\n" and got[0] == b"data: 1\n\n"
        assert resp.complete
        resp.release()

    _run(handler, test)


def test_a_gzip_answer_is_inflated() -> None:
    payload = b'{"choices": []}' * 50

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        packed = gzip.compress(payload)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed) + packed)
        await writer.drain()
        writer.close()

    async def test(up: Upstream) -> None:
        resp = await up.open("GET", "models")
        assert await resp.read() == payload

    _run(handler, test)


def test_a_stream_cut_mid_body_is_a_stream_cut_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
        await writer.drain()
        writer.transport.abort()

    async def test(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        got = []
        with pytest.raises(ProxyError) as e:
            async for chunk in resp.iter_chunks():
                got.append(chunk)
        assert got == [b"data: 1\n\n"]
        assert e.value.status == 502 and e.value.cause == "backend_stream_cut"
        resp.release()

    _run(handler, test)


def test_silence_longer_than_the_read_timeout_is_a_504() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3)
        writer.close()

    async def test(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        with pytest.raises(ProxyError) as e:
            async for _ in resp.iter_chunks():
                pass
        assert e.value.status == 504 and "read timeout" in e.value.message

    _run(handler, test, read_timeout=0.3)


def test_no_answer_at_all_is_a_504_and_garbage_is_a_502() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(3)
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    async def expect(status: int, up: Upstream) -> None:
        with pytest.raises(ProxyError) as e:
            await up.open("GET", "models")
        assert e.value.status == status, e.value.message

    _run(silent, lambda up: expect(504, up), read_timeout=0.3)
    _run(garbage, lambda up: expect(502, up))


def test_an_unreachable_backend_is_a_502_naming_it() -> None:
    async def test() -> None:
        up = Upstream("http://127.0.0.1:9/v1", connect_timeout=2, read_timeout=5)
        with pytest.raises(ProxyError) as e:
            await up.open("GET", "models")
        assert e.value.status == 502 and e.value.cause == "backend_unreachable"
        assert "http://127.0.0.1:9/v1" in e.value.message

    asyncio.run(test())


def test_relay_mode_hands_every_piece_to_the_callback_in_order() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(20):
            piece = b"data: %d\n\n" % i
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def test(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        got: list[bytes] = []
        await resp.relay(got.append)
        assert b"".join(got) == b"".join(b"data: %d\n\n" % i for i in range(20))
        assert resp.complete and resp.failure is None
        resp.release()

    _run(handler, test)


def test_a_header_with_a_line_break_is_refused() -> None:
    async def test() -> None:
        up = Upstream("http://127.0.0.1:9/v1", connect_timeout=2, read_timeout=5)
        with pytest.raises(ProxyError) as e:
            await up.open("GET", "models", headers={"authorization": "Bearer a\r\nX-Evil: 1"})
        assert e.value.status == 400

    asyncio.run(test())


# -- relay: sending each piece from the read callback ---------------------------------------------


async def _stream_pieces(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces: list[bytes]) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in pieces:
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def _never_disconnects() -> Callable[[], Awaitable[dict[str, Any]]]:
    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


def test_relay_keeps_every_piece_in_order_when_the_client_side_send_suspends() -> None:
    pieces = [b"piece %04d;" % i for i in range(300)]
    sent: list[bytes] = []
    calls = 0
    gate = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        assert message["type"] == "http.response.body" and message["more_body"] is True
        if calls in (3, 40):  # the client stops reading for a while, twice
            asyncio.get_running_loop().call_later(0.2, gate.set)
            await gate.wait()
            gate.clear()
        sent.append(message["body"])

    async def test(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        end = await relay(resp, _never_disconnects(), send, lambda raw: raw.upper())
        assert end.how == "complete" and end.error is None
        resp.release()

    _run(lambda r, w: _stream_pieces(r, w, pieces), test)
    assert b"".join(sent) == b"".join(pieces).upper()


def test_relay_stops_on_stop_and_on_a_transform_error() -> None:
    pieces = [b"a", b"b", b"STOP", b"c", b"d"]

    def stop_at(raw: bytes) -> bytes:
        if raw == b"STOP":
            raise Stop(b"last")
        return raw

    def fail_at(raw: bytes) -> bytes:
        if raw == b"STOP":
            raise ProxyError(502, "malformed", "backend_malformed_stream")
        return raw

    for transform, how in ((stop_at, "stopped"), (fail_at, "error")):
        sent: list[bytes] = []

        async def send(message: dict[str, Any], sent: list[bytes] = sent) -> None:
            sent.append(message["body"])

        async def test(up: Upstream, transform: Callable[[bytes], bytes] = transform, how: str = how) -> None:
            resp = await up.open("POST", "chat/completions", body=b"{}")
            end = await relay(resp, _never_disconnects(), send, transform)
            assert end.how == how
            if how == "error":
                assert end.error is not None and end.error.cause == "backend_malformed_stream"
            resp.close()

        _run(lambda r, w: _stream_pieces(r, w, pieces), test)
        assert b"".join(sent) == (b"ablast" if how == "stopped" else b"ab")


def test_relay_ends_when_the_client_leaves_or_the_backend_breaks_off() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await asyncio.sleep(10)

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        writer.transport.abort()

    async def send(message: dict[str, Any]) -> None:
        pass

    async def leaves() -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    async def client_leaves(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        end = await asyncio.wait_for(relay(resp, leaves, send, lambda raw: raw), 5)
        assert end.how == "gone"
        resp.close()

    async def backend_breaks(up: Upstream) -> None:
        resp = await up.open("POST", "chat/completions", body=b"{}")
        end = await asyncio.wait_for(relay(resp, _never_disconnects(), send, lambda raw: raw), 5)
        assert end.how == "broken" and end.error is not None and end.error.cause == "backend_stream_cut"
        resp.close()

    _run(hang, client_leaves)
    _run(cut, backend_breaks)
