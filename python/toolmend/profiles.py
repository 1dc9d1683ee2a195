"""Model profiles: the data file ``profiles.toml`` (format, recommended sampling, quirks per
model-id pattern) and the lookup the proxy and the middleware use.

A user file can add to or override the shipped profiles (``profiles = "my.toml"`` in the
proxy config): profiles of the same name are replaced, new ones are tried first.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from toolmend._core import formats as _formats
from toolmend.config import read_toml

QUIRKS = frozenset({"single_call", "mistral_ids", "strips_special_tokens"})
SAMPLING_FIELDS = frozenset(
    {"temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"}
)
SHIPPED = Path(__file__).with_name("profiles.toml")


class ProfileError(ValueError):
    """A profiles file is invalid; the message says which profile and why."""


@dataclass(frozen=True)
class Profile:
    """What toolmend knows about one model family."""

    name: str
    patterns: tuple[str, ...]
    format: str | None = None
    sampling: Mapping[str, float] = field(default_factory=dict)
    source: str | None = None
    quirks: frozenset[str] = frozenset()

    def matches(self, model: str) -> bool:
        m = model.lower()
        return any(fnmatch.fnmatchcase(m, p.lower()) for p in self.patterns)


def _profile(raw: Any, where: str) -> Profile:
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}: a profile must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{where}: every profile needs a name")
    where = f"{where}: profile {name!r}"
    unknown = set(raw) - {"name", "patterns", "format", "sampling", "source", "quirks"}
    if unknown:
        raise ProfileError(f"{where}: unknown fields {sorted(unknown)}")
    patterns = raw.get("patterns")
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ProfileError(f"{where}: patterns must be a non-empty list of strings")
    fmt = raw.get("format")
    if fmt is not None and fmt not in {n for n, _ in _formats()}:
        raise ProfileError(f"{where}: unknown format {fmt!r} (see `toolmend formats`)")
    sampling = raw.get("sampling", {})
    if not isinstance(sampling, dict) or not all(
        k in SAMPLING_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in sampling.items()
    ):
        raise ProfileError(f"{where}: sampling must map {sorted(SAMPLING_FIELDS)} to numbers")
    if sampling and not raw.get("source"):
        raise ProfileError(f"{where}: sampling values need a source (the model card they come from)")
    quirks = raw.get("quirks", [])
    if not isinstance(quirks, list) or set(quirks) - QUIRKS:
        raise ProfileError(f"{where}: quirks must be a list of {sorted(QUIRKS)}")
    return Profile(
        name=name,
        patterns=tuple(patterns),
        format=fmt,
        sampling=dict(sampling),
        source=raw.get("source"),
        quirks=frozenset(quirks),
    )


def load_profiles(path: str | Path) -> list[Profile]:
    """The profiles of one TOML file (``[[profile]]`` tables)."""
    raw = read_toml(path, "profiles file", ProfileError).get("profile", [])
    if not isinstance(raw, list):
        raise ProfileError(f"{path}: [[profile]] tables expected")
    return [_profile(p, str(path)) for p in raw]


class Profiles:
    """An ordered set of profiles; the first whose pattern matches a model id wins."""

    def __init__(self, profiles: Iterable[Profile]) -> None:
        self.profiles = list(profiles)

    @classmethod
    def shipped(cls) -> Profiles:
        return cls(_shipped())

    def with_file(self, path: str | Path | None) -> Profiles:
        """These profiles with a user file's in front (same names replaced)."""
        if path is None:
            return self
        extra = load_profiles(path)
        names = {p.name for p in extra}
        return Profiles([*extra, *(p for p in self.profiles if p.name not in names)])

    def find(self, model: str | None) -> Profile | None:
        if not model:
            return None
        for p in self.profiles:
            if p.matches(model):
                return p
        return None


@lru_cache(maxsize=1)
def _shipped() -> tuple[Profile, ...]:
    return tuple(load_profiles(SHIPPED))
