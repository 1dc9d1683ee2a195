"""What the server adapters share: settings from the environment, the request's tools as a
:class:`~toolmend.Tools`, and a per-request stream of calls with the bookkeeping servers read.

No third-party import here: this module loads without vLLM, SGLang or LiteLLM.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from toolmend._core import Event, InvalidToolsError, ParseResult, StreamParser, Tools, parse

__all__ = [
    "ENV_FORMAT",
    "ENV_MODEL",
    "THINK_CLOSE",
    "THINK_OPEN",
    "CallState",
    "Piece",
    "RequestStream",
    "content_with_reasoning",
    "parse_text",
    "settings",
    "tool_dicts",
    "tools_arg",
]

log = logging.getLogger("toolmend.integrations")

ENV_FORMAT = "TOOLMEND_FORMAT"
"""A format name (see ``toolmend.formats()``) that overrides auto-detection."""
ENV_MODEL = "TOOLMEND_MODEL"
"""The model id used for format detection, when the served name is an alias."""


def settings(model: str | None) -> tuple[str, str | None]:
    """``(format, model)`` for a parser: ``$TOOLMEND_FORMAT`` (default ``"auto"``) and
    ``$TOOLMEND_MODEL``, else the model id the server knows."""
    fmt = os.environ.get(ENV_FORMAT, "").strip() or "auto"
    env_model = os.environ.get(ENV_MODEL, "").strip()
    return fmt, (env_model or model or None)


def _as_dict(tool: Any) -> dict[str, Any] | None:
    """One tool as a plain OpenAI dict, from a dict or a pydantic model (v2 or v1)."""
    if isinstance(tool, Mapping):
        return dict(tool)
    for method in ("model_dump", "dict"):
        dump = getattr(tool, method, None)
        if callable(dump):
            try:
                out = dump(exclude_none=True)
            except TypeError:
                out = dump()
            if isinstance(out, Mapping):
                return dict(out)
    return None


def tool_dicts(tools: Iterable[Any] | None) -> list[dict[str, Any]]:
    """The function tools of a request as OpenAI dicts (other tool kinds are left out)."""
    out: list[dict[str, Any]] = []
    for tool in tools or ():
        d = _as_dict(tool)
        if d is None:
            continue
        if d.get("type", "function") != "function":
            continue
        if not isinstance(d.get("function"), Mapping):
            # The Responses API's flat shape: {"type": "function", "name": ..., "parameters": ...}.
            if not isinstance(d.get("name"), str):
                continue
            fn = {k: d[k] for k in ("name", "description", "parameters", "strict") if d.get(k) is not None}
            d = {"type": "function", "function": fn}
        out.append(d)
    return out


def tools_arg(tools: Iterable[Any] | None) -> Tools | None:
    """A prepared :class:`~toolmend.Tools` for the request's tools; ``None`` when there are none
    or when toolmend rejects them (the calls are then parsed without schema checks)."""
    dicts = tool_dicts(tools)
    if not dicts:
        return None
    try:
        return Tools(dicts)
    except InvalidToolsError as e:
        log.warning("toolmend: tools not usable for validation, parsing without them: %s", e)
        return None


def parse_text(text: str, tools: Tools | None, model: str | None) -> ParseResult:
    """A whole output parsed with the environment's settings."""
    fmt, model = settings(model)
    return parse(text, tools=tools, format=fmt, model=model)


THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def content_with_reasoning(result: ParseResult) -> str | None:
    """The result's content, after its reasoning (if any) put back as ``<think>…</think>``: the
    servers' tool-parser interfaces have no reasoning field of their own (their reasoning parsers
    run before the tool parser), so the adapters leave reasoning in the text, as the servers do."""
    if result.reasoning is None:
        return result.content
    return f"{THINK_OPEN}{result.reasoning}{THINK_CLOSE}{result.content or ''}"


@dataclass(frozen=True)
class Piece:
    """One step of a response for an adapter: ``text`` (content), ``reasoning`` (only when the
    stream keeps reasoning apart), or a call's ``start`` (index, id, name), ``args`` (index, a
    fragment of the arguments JSON) or ``end`` (index)."""

    kind: Literal["text", "reasoning", "start", "args", "end"]
    text: str = ""
    index: int = 0
    id: str = ""
    name: str = ""


@dataclass
class CallState:
    """One tool call of a stream: what has been sent of it."""

    index: int
    id: str
    name: str
    arguments: str = ""
    ended: bool = False


@dataclass
class RequestStream:
    """One response's :class:`~toolmend.StreamParser` and the calls it has produced so far.

    :meth:`feed` and :meth:`finish` turn the core's events into :class:`Piece` s; unless
    ``keep_reasoning``, reasoning becomes ``<think>…</think>`` text (see
    :func:`content_with_reasoning`), so the streamed text adds up to the non-streaming content.
    :attr:`calls` keeps each call's name and the arguments streamed so far, which servers read at
    the end of a stream.
    """

    parser: StreamParser
    keep_reasoning: bool = False
    calls: list[CallState] = field(default_factory=list)
    finished: bool = False
    in_reasoning: bool = False

    @classmethod
    def open(cls, tools: Tools | None, model: str | None, *, keep_reasoning: bool = False) -> RequestStream:
        fmt, model = settings(model)
        return cls(StreamParser(tools, format=fmt, model=model), keep_reasoning=keep_reasoning)

    def _pieces(self, events: list[Event], final: bool = False) -> list[Piece]:
        out: list[Piece] = []
        for e in events:
            if e.kind == "reasoning" and self.keep_reasoning:
                if e.text:
                    out.append(Piece("reasoning", e.text))
                continue
            if e.kind == "reasoning":
                if not self.in_reasoning:
                    self.in_reasoning = True
                    out.append(Piece("text", THINK_OPEN))
                if e.text:
                    out.append(Piece("text", e.text))
                continue
            if self.in_reasoning:
                self.in_reasoning = False
                out.append(Piece("text", THINK_CLOSE))
            if e.kind == "content":
                if e.text:
                    out.append(Piece("text", e.text))
            elif e.kind == "tool_call_start":
                new = CallState(index=e.index or 0, id=e.id or "", name=e.name or "")
                self.calls.append(new)
                out.append(Piece("start", index=new.index, id=new.id, name=new.name))
            elif e.kind == "tool_call_args":
                call = self.call(e.index)
                if call is not None and e.text:
                    call.arguments += e.text
                    out.append(Piece("args", e.text, index=call.index))
            elif e.kind == "tool_call_end":
                call = self.call(e.index)
                if call is not None:
                    call.ended = True
                    out.append(Piece("end", index=call.index))
        if final and self.in_reasoning:
            self.in_reasoning = False
            out.append(Piece("text", THINK_CLOSE))
        return out

    def call(self, index: int | None) -> CallState | None:
        """The call with this stream index (the latest one when ``index`` is ``None``)."""
        if index is None:
            return self.calls[-1] if self.calls else None
        for c in reversed(self.calls):
            if c.index == index:
                return c
        return None

    def feed(self, delta: str) -> list[Piece]:
        if self.finished or not delta:
            return []
        return self._pieces(self.parser.feed(delta))

    def finish(self) -> list[Piece]:
        if self.finished:
            return []
        self.finished = True
        return self._pieces(self.parser.finish(), final=True)

    def result(self) -> ParseResult:
        return self.parser.result()


def sync_bookkeeping(parser: Any, stream: RequestStream | None) -> None:
    """The fields vLLM's ``ToolParser`` and SGLang's detector read at the end of a stream: every
    call's name and the arguments sent so far (all of them: nothing is left to append)."""
    if stream is None:
        return
    calls = stream.calls
    parser.prev_tool_call_arr = [{"name": c.name, "arguments": c.arguments} for c in calls]
    parser.streamed_args_for_tool = [c.arguments for c in calls]
    parser.current_tool_id = len(calls) - 1
    parser.current_tool_name_sent = bool(calls)
