"""Server-sent events: an incremental decoder for upstream bytes and the encoder we send with."""

from __future__ import annotations

from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"


def encode(obj: Any) -> bytes:
    """One SSE ``data:`` event holding ``obj`` as compact JSON."""
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class SSEDecoder:
    """Splits a byte stream into the ``data`` payloads of its events.

    Accepts ``\\n``, ``\\r\\n`` and ``\\r`` line ends, multi-line ``data`` fields (joined with
    ``\\n``), comments and other fields (ignored), and any chunking of the bytes.
    """

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Returns the payloads of the events that ``chunk`` completes."""
        buf = self._buf + chunk if self._buf else chunk
        tail = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):
                # A CR at the end may be the first half of a CRLF: decide with the next chunk.
                tail = b"\r"
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if not line:
                if self._data:
                    out.append(b"\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                self._data.append(value)
        self._buf = buf[start:] + tail
        return out

    def close(self) -> bytes | None:
        """End of stream: the payload of an event left without its blank line, if any."""
        rest = self._buf.replace(b"\r", b"")
        self._buf = b""
        if rest.startswith(b"data:"):
            value = rest[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        if self._data:
            payload = b"\n".join(self._data)
            self._data = []
            return payload
        return None
