"""The OpenAI-compatible proxy: a small Starlette app in front of a local backend.

``create_app(settings)`` builds it; ``toolmend serve`` runs it on uvicorn. The proxy knows
HTTP and the OpenAI wire format; every token grammar lives in the core (``toolmend._core``).
"""

from __future__ import annotations

from toolmend.proxy.app import create_app

__all__ = ["create_app"]
