"""Running the proxy: pick the backend (probing when none is configured), then uvicorn, in
one process or in ``settings.workers`` processes sharing the listening socket."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

import uvicorn
from starlette.applications import Starlette

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


# How the parent hands the resolved settings to its worker processes (uvicorn spawns them).
_WORKER_ENV = "TOOLMEND_WORKER_SETTINGS"
# prometheus_client's multiprocess mode: each worker writes its metrics to files in this folder
# and /metrics, whichever worker answers it, sums them all.
_METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(settings: Settings, log_level: str = "info") -> None:
    """Runs the proxy until interrupted."""
    settings = resolve_backend(settings)
    _configure_logging(log_level)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level,
        "access_log": False,
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "timeout_graceful_shutdown": 5,
    }
    workers = f" ({settings.workers} workers)" if settings.workers > 1 else ""
    print(
        f"toolmend: proxy for {settings.backend_url} on http://{settings.host}:{settings.port}/v1{workers}",
        file=sys.stderr,
    )
    if settings.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    metrics_dir = None
    if not os.environ.get(_METRICS_DIR_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="toolmend-metrics-")
        os.environ[_METRICS_DIR_ENV] = metrics_dir
    os.environ[_WORKER_ENV] = json.dumps({"settings": settings.model_dump(mode="json"), "log_level": log_level})
    try:
        uvicorn.run(f"{__name__}:worker_app", factory=True, workers=settings.workers, **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
            del os.environ[_METRICS_DIR_ENV]
        del os.environ[_WORKER_ENV]


def worker_app() -> Starlette:
    """The app of one worker process of ``serve`` (uvicorn calls this in each worker)."""
    handed = json.loads(os.environ[_WORKER_ENV])
    _configure_logging(handed["log_level"])
    return create_app(Settings.model_validate(handed["settings"]))


def _configure_logging(log_level: str) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
