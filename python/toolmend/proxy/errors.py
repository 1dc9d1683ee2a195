"""OpenAI-style errors: the HTTP body before a stream starts, the ``data:`` event inside one."""

from __future__ import annotations

from typing import Any

import orjson

# OpenAI's error types, by HTTP status class (clients branch on status; the type is shown).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


class ProxyError(Exception):
    """A failure to report to the client: HTTP ``status``, a message, a machine ``code``.
    ``cause`` labels the failure in the metrics (default: ``code``); it must come from a small
    fixed set, never from a string the backend chose."""

    def __init__(self, status: int, message: str, code: str | None, cause: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.cause = cause or code or "error"
        self.type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)

    def json(self) -> bytes:
        return orjson.dumps(self.body())


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
