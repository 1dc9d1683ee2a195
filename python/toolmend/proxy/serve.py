"""Running the proxy: pick the backend (probing when none is configured), then uvicorn."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys

import uvicorn

from toolmend.config import Settings
from toolmend.proxy.app import create_app
from toolmend.proxy.probe import find_backend


class ServeError(RuntimeError):
    """The proxy cannot start; the message says why and what to do."""


def resolve_backend(settings: Settings) -> Settings:
    """``settings`` with a backend URL: the configured one, or the first local server that
    answers on its usual port."""
    if settings.backend_url is not None:
        return settings
    found, tried = asyncio.run(find_backend())
    if found is None:
        ports = ", ".join(f"{c.name} {c.port}" for c in tried)
        raise ServeError(
            f"no backend found: nothing answered GET /v1/models on 127.0.0.1 ports ({ports}). "
            "Start your model server, or pass its URL: toolmend serve --backend http://HOST:PORT/v1"
        )
    print(f"toolmend: found {found.name} at {found.url}", file=sys.stderr)
    return settings.model_copy(update={"backend_url": found.url})


def serve(settings: Settings, log_level: str = "info") -> None:
    """Runs the proxy until interrupted."""
    settings = resolve_backend(settings)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    print(
        f"toolmend: proxy for {settings.backend_url} on http://{settings.host}:{settings.port}/v1",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        timeout_graceful_shutdown=5,
    )
