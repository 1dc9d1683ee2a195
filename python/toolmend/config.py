"""Proxy settings: a TOML file, ``TOOLMEND_*`` environment variables and command-line flags,
in that order of precedence (later wins), validated with pydantic.

Example ``toolmend.toml``::

    backend_url = "http://127.0.0.1:8000/v1"   # omit to probe the usual local ports
    backend_api_key = "sk-..."                 # sent upstream instead of the client's key
    api_key = "sk-proxy"                       # clients must send this to use the proxy
    host = "127.0.0.1"
    port = 4000
    workers = 1                                # processes serving requests (see docs/proxy.md)

    [timeouts]          # seconds
    connect = 5.0       # opening a connection to the backend
    read = 300.0        # waiting for the next bytes of an answer (a stream's idle gap)

    [limits]
    max_request_bytes = 16777216   # larger request bodies get HTTP 413

    [middleware]        # see docs/middleware.md
    enabled = true                # false: parse and mend only, no steps
    max_attempts = 2              # 1 = never ask the model again
    respond_tool = false          # inject the synthetic respond(message) tool
    recommended_sampling = false  # fill in the model profile's sampling (unknown model: 400)
    constrained = ""              # tool_choice via constrained decoding: response_format,
                                  # guided_json or json_schema ("" = validate and retry)
    profiles = ""                 # a TOML file of extra model profiles

    [formats]           # model-id glob -> tool-call format (default: the model's profile, then detection)
    "Qwen/Qwen3-*" = "hermes"
    "*mistral*" = "mistral_v11"

Environment variables: ``TOOLMEND_BACKEND_URL``, ``TOOLMEND_BACKEND_API_KEY``,
``TOOLMEND_API_KEY``, ``TOOLMEND_HOST``, ``TOOLMEND_PORT``, ``TOOLMEND_WORKERS``, ``TOOLMEND_CONNECT_TIMEOUT``,
``TOOLMEND_READ_TIMEOUT``, ``TOOLMEND_MAX_REQUEST_BYTES``, ``TOOLMEND_MAX_ATTEMPTS``,
``TOOLMEND_RESPOND_TOOL``, ``TOOLMEND_RECOMMENDED_SAMPLING``, ``TOOLMEND_CONSTRAINED``,
``TOOLMEND_PROFILES``, ``TOOLMEND_CONFIG`` (the file) and
``TOOLMEND_FORMATS`` (``glob=format`` pairs separated by commas).
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from toolmend._core import format_for_model
from toolmend._core import formats as _formats

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_PORT = 4000


class ConfigError(ValueError):
    """The configuration is invalid; the message says where and why."""


class Timeouts(BaseModel):
    """Backend timeouts, in seconds."""

    model_config = ConfigDict(extra="forbid")

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=300.0, gt=0)


class Limits(BaseModel):
    """Request limits."""

    model_config = ConfigDict(extra="forbid")

    max_request_bytes: int = Field(default=16 * 1024 * 1024, gt=0)


class Middleware(BaseModel):
    """The pipeline steps the proxy runs (see ``toolmend.steps``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    max_attempts: int = Field(default=2, ge=1, le=10)
    respond_tool: bool = False
    recommended_sampling: bool = False
    constrained: str | None = None
    profiles: str | None = None

    @field_validator("constrained", "profiles")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("constrained")
    @classmethod
    def _check_constrained(cls, v: str | None) -> str | None:
        modes = ("response_format", "guided_json", "json_schema")
        if v is not None and v not in modes:
            raise ValueError(f"constrained must be one of {', '.join(modes)} (or empty)")
        return v


class Settings(BaseModel):
    """Everything the proxy needs to run."""

    model_config = ConfigDict(extra="forbid")

    backend_url: str | None = None
    backend_api_key: str | None = None
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    limits: Limits = Field(default_factory=Limits)
    middleware: Middleware = Field(default_factory=Middleware)
    formats: dict[str, str] = Field(default_factory=dict)

    @field_validator("backend_url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return normalize_backend_url(v)

    @field_validator("formats")
    @classmethod
    def _check_formats(cls, v: dict[str, str]) -> dict[str, str]:
        known = {name for name, _ in _formats()} | {"auto"}
        for pattern, name in v.items():
            if name not in known:
                raise ValueError(f"format {name!r} for {pattern!r} is not one of: {', '.join(sorted(known))}")
        return v

    def format_for(self, model: str | None) -> str:
        """The tool-call format to parse ``model``'s output with: a configured override, or
        ``auto`` (detection, helped by the model id)."""
        if model:
            for pattern, name in self.formats.items():
                if fnmatch.fnmatchcase(model.lower(), pattern.lower()):
                    return name
        return "auto"

    def known_format(self, model: str | None) -> str | None:
        """The format configured or known for ``model`` (None: detected from the text)."""
        name = self.format_for(model)
        if name != "auto":
            return name
        return format_for_model(model) if model else None


def read_toml(path: str | os.PathLike[str], what: str, error: type[ValueError]) -> dict[str, Any]:
    """A TOML file as a dict; a missing or invalid file raises ``error`` naming ``what`` it is."""
    try:
        with Path(path).open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
            return data
    except FileNotFoundError:
        raise error(f"{what} {os.fspath(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise error(f"{what} {os.fspath(path)!r} is not valid TOML: {e}") from None


def normalize_backend_url(url: str) -> str:
    """``http://host:port`` or ``.../v1`` (with or without a trailing slash) -> ``.../v1``."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"backend URL {url!r} must start with http:// or https://")
    if not url.endswith("/v1"):
        url += "/v1"
    return url


_ENV: dict[str, tuple[str, ...]] = {
    "TOOLMEND_BACKEND_URL": ("backend_url",),
    "TOOLMEND_BACKEND_API_KEY": ("backend_api_key",),
    "TOOLMEND_API_KEY": ("api_key",),
    "TOOLMEND_HOST": ("host",),
    "TOOLMEND_PORT": ("port",),
    "TOOLMEND_WORKERS": ("workers",),
    "TOOLMEND_CONNECT_TIMEOUT": ("timeouts", "connect"),
    "TOOLMEND_READ_TIMEOUT": ("timeouts", "read"),
    "TOOLMEND_MAX_REQUEST_BYTES": ("limits", "max_request_bytes"),
    "TOOLMEND_MAX_ATTEMPTS": ("middleware", "max_attempts"),
    "TOOLMEND_RESPOND_TOOL": ("middleware", "respond_tool"),
    "TOOLMEND_RECOMMENDED_SAMPLING": ("middleware", "recommended_sampling"),
    "TOOLMEND_CONSTRAINED": ("middleware", "constrained"),
    "TOOLMEND_PROFILES": ("middleware", "profiles"),
}


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key} must be a table")
        tree = node
    tree[path[-1]] = value


def load_settings(
    config: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from the file ``config`` (or ``$TOOLMEND_CONFIG``), the environment and
    ``overrides`` (flags; dotted keys such as ``timeouts.read`` reach into tables; ``None``
    values are ignored). Raises :class:`ConfigError` with a readable message."""
    env = os.environ if env is None else env
    tree: dict[str, Any] = {}
    path = config if config is not None else env.get("TOOLMEND_CONFIG")
    if path:
        tree = read_toml(path, "config file", ConfigError)
    for var, key_path in _ENV.items():
        if env.get(var):
            _set(tree, key_path, env[var])
    if env.get("TOOLMEND_FORMATS"):
        formats = tree.setdefault("formats", {})
        for pair in env["TOOLMEND_FORMATS"].split(","):
            pattern, sep, name = pair.partition("=")
            if not sep or not pattern.strip() or not name.strip():
                raise ConfigError(f"TOOLMEND_FORMATS: {pair!r} is not glob=format")
            formats[pattern.strip()] = name.strip()
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(tree, tuple(key.split(".")), value)
    try:
        return Settings.model_validate(tree)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in e.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
