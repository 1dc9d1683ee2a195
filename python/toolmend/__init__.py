"""toolmend: reliable tool calling from local LLMs.

The parsing core is Rust (``toolmend._core``); this package is its typed Python face::

    from toolmend import parse, StreamParser

    r = parse(text, tools=tools, format="auto", model="Qwen/Qwen3-8B")
    r.content, r.reasoning, r.tool_calls, r.format, r.diagnostics

    p = StreamParser(tools=tools)
    events = p.feed(delta)      # any chunking
    events += p.finish()
    p.result()                  # == parse(whole_text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from toolmend._core import (
    CoerceResult,
    Diagnostic,
    Event,
    InvalidToolsError,
    ParseResult,
    ParserFinishedError,
    RepairResult,
    StreamParser,
    ToolCall,
    ToolmendError,
    Tools,
    UnknownFormatError,
    __version__,
    coerce,
    format_for_model,
    parse,
    repair_json,
)
from toolmend._core import formats as _formats

if TYPE_CHECKING:
    from toolmend.pipeline import Pipeline
    from toolmend.runner import Runner

__all__ = [
    "CoerceResult",
    "Diagnostic",
    "Event",
    "FormatInfo",
    "InvalidToolsError",
    "ParseResult",
    "ParserFinishedError",
    "Pipeline",
    "RepairResult",
    "Runner",
    "StreamParser",
    "ToolCall",
    "ToolmendError",
    "Tools",
    "UnknownFormatError",
    "__version__",
    "coerce",
    "format_for_model",
    "formats",
    "parse",
    "repair_json",
]


class FormatInfo(tuple[str, str]):
    """A supported format: ``(name, models)``."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self[0]

    @property
    def models(self) -> str:
        return self[1]


def formats() -> list[FormatInfo]:
    """The supported formats with the model families that emit them."""
    return [FormatInfo(f) for f in _formats()]


def __getattr__(name: str) -> object:
    # The runner and the pipeline pull in aiohttp and pydantic: imported on first use only.
    if name == "Runner":
        from toolmend.runner import Runner

        return Runner
    if name == "Pipeline":
        from toolmend.pipeline import Pipeline

        return Pipeline
    raise AttributeError(f"module 'toolmend' has no attribute {name!r}")
