"""``toolmend serve`` with a ``tools`` list added to every chat request, for the proxy benchmark.

The shared harness (../shared/bench-anchors/proxy) sends plain chat requests, which toolmend
forwards untouched. This wrapper adds one tool to each request body before the proxy sees it,
so the benchmark measures the mending path (every chunk parsed by the core and re-encoded).

    python benches/serve_with_tools.py --backend URL --port N [--workers W]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from toolmend.config import load_settings
from toolmend.proxy import create_app

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


def with_tools(app: Any) -> Any:
    """An ASGI wrapper adding TOOLS to JSON chat request bodies."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        req = orjson.loads(body)
        req["tools"] = TOOLS
        new = orjson.dumps(req)
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"content-length"]}
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": new, "more_body": False}
            return dict(await receive())

        await app(scope, replay, send)

    return wrapped


def worker_app() -> Any:
    """The wrapped app of one worker process (``--workers`` > 1)."""
    return with_tools(create_app(load_settings(overrides={"backend_url": os.environ["BENCH_BACKEND_URL"]})))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    options: dict[str, Any] = dict(
        host="127.0.0.1", port=a.port, log_level="warning", loop="uvloop", http="httptools", access_log=False
    )
    if a.workers == 1:
        uvicorn.run(with_tools(create_app(load_settings(overrides={"backend_url": a.backend}))), **options)
        return
    os.environ["BENCH_BACKEND_URL"] = a.backend
    uvicorn.run(
        "serve_with_tools:worker_app",
        factory=True,
        workers=a.workers,
        app_dir=str(Path(__file__).parent),
        **options,
    )


if __name__ == "__main__":
    main()
