"""Run an ASGI app on uvicorn in a background thread (tests, ``toolmend demo``).

::

    with serve_in_thread(app) as server:
        httpx.get(server.url + "/health")

The listening socket is bound before the thread starts, so ``port=0`` gives a free port with no
race, and :func:`serve_in_thread` returns only once the server accepts connections.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

__all__ = ["RunningServer", "bind_socket", "serve_in_thread", "url_for"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (``port=0``: a free one), not yet listening."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    """``http://host:port``, with brackets around an IPv6 address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RunningServer:
    """A uvicorn server running in a daemon thread; stop it with :meth:`stop` or ``with``."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, host: str) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.host = host
        self.port: int = sock.getsockname()[1]
        self.url = url_for(host, self.port)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Asks uvicorn to exit and joins the thread. Streams still open after the server's
        graceful timeout are cancelled; if the thread still lingers, uvicorn is forced out."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError(f"the server on {self.url} did not stop within {2 * timeout:g} s")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_in_thread(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    graceful_timeout: int = 1,
    log_level: str | None = None,
    startup_timeout: float = 10.0,
) -> RunningServer:
    """Starts ``app`` on uvicorn in a daemon thread and waits until it is listening.

    ``graceful_timeout``: on :meth:`RunningServer.stop`, how many seconds open responses may
    run before they are cancelled. ``log_level``: uvicorn's, if it should set one (``None`` leaves
    logging alone; uvicorn's records reach the root logger). The access log is off.
    """
    sock = bind_socket(host, port)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{sock.getsockname()[1]}", daemon=True
    )
    running = RunningServer(server, thread, sock, host)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the server on {running.url} failed to start")
        if time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"the server on {running.url} did not start within {startup_timeout:g} s")
        time.sleep(0.002)
    return running
