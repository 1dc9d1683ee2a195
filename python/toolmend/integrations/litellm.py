"""A LiteLLM proxy callback that mends tool calls a model printed as text, with toolmend's core.

In the proxy's ``config.yaml``::

    litellm_settings:
      callbacks: ["toolmend.integrations.litellm.proxy_handler_instance"]

For a request that declares ``tools``, the assistant text of the response goes through the parser:
calls found in it become ``tool_calls`` (``finish_reason`` ``"tool_calls"``), reasoning
(``<think>…</think>`` and the like) becomes ``reasoning_content`` and the rest stays ``content``.
Streams are mended chunk by chunk, in the canonical OpenAI shape (a call's first delta carries
index, id, type and name, argument fragments follow; text and calls never share a delta). A
choice whose upstream already sent native ``tool_calls`` is passed through untouched, and so is
every request without tools.

The format is auto-detected from the text and the request's model name; ``$TOOLMEND_FORMAT`` pins
one and ``$TOOLMEND_MODEL`` names the model for detection (or pass ``format=``/``model=`` to
:class:`ToolmendCallback`).

Importing this module needs LiteLLM; ``import toolmend`` does not import it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.types.utils import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Delta,
    Function,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
)

from toolmend._core import ParseResult, StreamParser, Tools, parse
from toolmend.integrations._common import Piece, RequestStream, settings, tool_dicts, tools_arg

__all__ = ["ToolmendCallback", "proxy_handler_instance"]


@dataclass
class _Choice:
    """The state of one streamed choice."""

    stream: RequestStream
    native: bool = False
    role_sent: bool = False
    done: bool = False
    called: bool = False


class ToolmendCallback(CustomLogger):
    """LiteLLM ``CustomLogger`` whose post-call hooks turn text tool calls into ``tool_calls``."""

    def __init__(self, format: str | None = None, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.format = format
        self.model = model

    # -- helpers -------------------------------------------------------------------------------

    def _settings(self, data: Mapping[str, Any]) -> tuple[str, str | None]:
        request_model = data.get("model")
        fmt, model = settings(self.model or (request_model if isinstance(request_model, str) else None))
        return (self.format or fmt), model

    def _tools(self, data: Mapping[str, Any]) -> tuple[bool, Tools | None]:
        """Whether the request declares function tools, and those tools prepared."""
        tools = data.get("tools")
        if not tool_dicts(tools):
            return False, None
        return True, tools_arg(tools)

    def _parse(self, text: str, tools: Tools | None, data: Mapping[str, Any]) -> ParseResult:
        fmt, model = self._settings(data)
        return parse(text, tools=tools, format=fmt, model=model)

    def _open(self, tools: Tools | None, data: Mapping[str, Any]) -> RequestStream:
        fmt, model = self._settings(data)
        return RequestStream(StreamParser(tools, format=fmt, model=model), keep_reasoning=True)

    # -- non-streaming -------------------------------------------------------------------------

    async def async_post_call_success_hook(self, data: dict[str, Any], user_api_key_dict: Any, response: Any) -> Any:
        """Mends each text choice of a chat completion in place; ``None`` (unchanged) otherwise."""
        if not isinstance(response, ModelResponse):
            return None
        wanted, tools = self._tools(data)
        if not wanted:
            return None
        for choice in response.choices:
            message = getattr(choice, "message", None)
            if message is None or getattr(message, "tool_calls", None):
                continue
            text = getattr(message, "content", None)
            if not isinstance(text, str) or not text:
                continue
            result = self._parse(text, tools, data)
            message.content = result.content or None
            if result.reasoning is not None:
                message.reasoning_content = (getattr(message, "reasoning_content", None) or "") + result.reasoning
            if result.tool_calls:
                message.tool_calls = [
                    ChatCompletionMessageToolCall(
                        id=c.id, type="function", function=Function(name=c.name, arguments=c.arguments)
                    )
                    for c in result.tool_calls
                ]
                if choice.finish_reason in (None, "stop"):
                    choice.finish_reason = "tool_calls"
        return response

    # -- streaming -----------------------------------------------------------------------------

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: AsyncIterator[Any], request_data: dict[str, Any]
    ) -> AsyncGenerator[Any, None]:
        """Re-chunks the stream: text through the parser, calls as ``tool_calls`` deltas."""
        wanted, tools = self._tools(request_data)
        if not wanted:
            async for chunk in response:
                yield chunk
            return
        choices: dict[int, _Choice] = {}
        last: Any = None
        async for chunk in response:
            items = getattr(chunk, "choices", None)
            if not isinstance(chunk, ModelResponseStream) or not items:
                yield chunk
                continue
            last = chunk
            keep = getattr(chunk, "usage", None) is not None
            for choice in items:
                state = choices.get(choice.index)
                if state is None:
                    state = choices[choice.index] = _Choice(self._open(tools, request_data))
                delta = choice.delta
                if state.native or getattr(delta, "tool_calls", None) or getattr(delta, "function_call", None):
                    # The upstream parsed the calls itself: leave this choice as it is.
                    state.native = True
                    keep = True
                    continue
                role = getattr(delta, "role", None)
                if role and not state.role_sent:
                    state.role_sent = True
                    yield self._chunk(chunk, choice.index, Delta(role=role, content=""))
                pieces = state.stream.feed(getattr(delta, "content", None) or "")
                if choice.finish_reason:
                    pieces += state.stream.finish()
                    state.done = True
                for out in self._chunks(chunk, choice.index, pieces, state):
                    yield out
                delta.content = None
                delta.role = None
                if getattr(delta, "reasoning_content", None):
                    keep = True
                if choice.finish_reason:
                    keep = True
                    if state.called and choice.finish_reason == "stop":
                        choice.finish_reason = "tool_calls"
            if keep:
                yield chunk
        # A stream that ended without a finish_reason: release what the parsers still hold.
        for index, state in choices.items():
            if state.native or state.done:
                continue
            state.done = True
            for out in self._chunks(last, index, state.stream.finish(), state):
                yield out

    def _chunks(self, template: Any, index: int, pieces: list[Piece], state: _Choice) -> list[Any]:
        """Chunks for a choice's pieces: consecutive text (or reasoning) in one delta, a call's
        start in its own delta, its consecutive argument fragments in one delta."""
        out: list[Any] = []
        i = 0
        while i < len(pieces):
            p = pieces[i]
            if p.kind in ("text", "reasoning", "args"):
                j = i
                while j < len(pieces) and pieces[j].kind == p.kind and pieces[j].index == p.index:
                    j += 1
                joined = "".join(q.text for q in pieces[i:j])
                i = j
                if p.kind == "text":
                    out.append(self._chunk(template, index, Delta(content=joined)))
                elif p.kind == "reasoning":
                    out.append(self._chunk(template, index, Delta(reasoning_content=joined)))
                else:
                    call = ChatCompletionDeltaToolCall(index=p.index, function=Function(arguments=joined))
                    out.append(self._chunk(template, index, Delta(tool_calls=[call])))
                continue
            if p.kind == "start":
                state.called = True
                call = ChatCompletionDeltaToolCall(
                    index=p.index, id=p.id, type="function", function=Function(name=p.name, arguments="")
                )
                out.append(self._chunk(template, index, Delta(tool_calls=[call])))
            i += 1
        return out

    @staticmethod
    def _chunk(template: Any, index: int, delta: Any) -> Any:
        return ModelResponseStream(
            id=template.id,
            created=template.created,
            model=template.model,
            system_fingerprint=getattr(template, "system_fingerprint", None),
            choices=[StreamingChoices(index=index, delta=delta, finish_reason=None)],
        )


proxy_handler_instance = ToolmendCallback()
"""The instance to name in the proxy's ``litellm_settings.callbacks``."""
