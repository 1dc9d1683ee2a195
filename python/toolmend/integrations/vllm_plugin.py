"""A vLLM tool-call parser backed by toolmend's Rust core, registered as ``toolmend``::

    vllm serve Qwen/Qwen3-8B --enable-auto-tool-choice \\
        --tool-parser-plugin toolmend.integrations.vllm_plugin --tool-call-parser toolmend

(``--tool-parser-plugin`` also takes this file's path.) The format is auto-detected from the
output and the model id (``$TOOLMEND_MODEL``, else the tokenizer's ``name_or_path``, else the
request's ``model``); ``$TOOLMEND_FORMAT`` pins one (see ``toolmend.formats()``).

vLLM builds one parser per request, so the instance holds that request's
:class:`~toolmend.StreamParser`. Streaming uses ``delta_text`` only; the parser declares
``engine_based_streaming`` so vLLM hands it the plain deltas and calls :meth:`finish_streaming` at
the end of the stream, which releases what the core held back (a call that only completes at the
end of the text, a partial marker that turned out to be text).

Reasoning is vLLM's ``--reasoning-parser``'s job, which runs before the tool parser: reasoning the
core still finds in the text stays in ``content`` as ``<think>…</think>``, streaming or not, as vLLM
returns it without a reasoning parser.

Importing this module needs vLLM; ``import toolmend`` does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolmend.integrations._common import (
    Piece,
    RequestStream,
    content_with_reasoning,
    parse_text,
    sync_bookkeeping,
    tools_arg,
)

try:  # vLLM >= 0.11: parsers under vllm.tool_parsers, protocol split by endpoint
    from vllm.entrypoints.generate.base.protocol import (
        DeltaFunctionCall,
        DeltaMessage,
        DeltaToolCall,
        ExtractedToolCallInformation,
        FunctionCall,
        ToolCall,
    )
    from vllm.tool_parsers import ToolParser, ToolParserManager
except ImportError:  # older layout
    from vllm.entrypoints.openai.protocol import (
        DeltaFunctionCall,
        DeltaMessage,
        DeltaToolCall,
        ExtractedToolCallInformation,
        FunctionCall,
        ToolCall,
    )
    from vllm.entrypoints.openai.tool_parsers import ToolParser, ToolParserManager

__all__ = ["NAME", "ToolmendToolParser"]

NAME = "toolmend"


def _model_of(tokenizer: Any) -> str | None:
    name = getattr(tokenizer, "name_or_path", None)
    return name if isinstance(name, str) and name else None


class ToolmendToolParser(ToolParser):
    """vLLM ``ToolParser`` over :class:`toolmend.StreamParser` (one per request)."""

    # vLLM then passes plain deltas and calls finish_streaming() when the stream ends.
    engine_based_streaming = True

    def __init__(self, tokenizer: Any, tools: list[Any] | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer, tools)
        self._tokenizer_model = _model_of(tokenizer)
        self._stream: RequestStream | None = None

    def _model(self, request: Any) -> str | None:
        model = getattr(request, "model", None)
        return self._tokenizer_model or (model if isinstance(model, str) else None)

    def _tools(self, request: Any) -> Any:
        tools = getattr(request, "tools", None)
        return tools if tools else self.tools

    # -- non-streaming -------------------------------------------------------------------------

    def extract_tool_calls(self, model_output: str, request: Any) -> Any:
        result = parse_text(model_output, tools_arg(self._tools(request)), self._model(request))
        content = content_with_reasoning(result)
        calls = [
            ToolCall(id=c.id, type="function", function=FunctionCall(name=c.name, arguments=c.arguments))
            for c in result.tool_calls
        ]
        return ExtractedToolCallInformation(tools_called=bool(calls), tool_calls=calls, content=content or None)

    # -- streaming -----------------------------------------------------------------------------

    def extract_tool_calls_streaming(
        self,
        previous_text: str,
        current_text: str,
        delta_text: str,
        previous_token_ids: Sequence[int],
        current_token_ids: Sequence[int],
        delta_token_ids: Sequence[int],
        request: Any,
    ) -> Any:
        if self._stream is None:
            self._stream = RequestStream.open(tools_arg(self._tools(request)), self._model(request))
        return self._delta(self._stream.feed(delta_text))

    def finish_streaming(self) -> Any:
        """The end of the stream: what the core still held."""
        if self._stream is None:
            return None
        return self._delta(self._stream.finish())

    def _delta(self, pieces: list[Piece]) -> Any:
        """One ``DeltaMessage`` for a batch of pieces (``None`` when there is nothing to send); a
        call's first delta carries its id, type and name."""
        text: list[str] = []
        calls: dict[int, Any] = {}
        for p in pieces:
            if p.kind == "text":
                text.append(p.text)
            elif p.kind == "start":
                calls[p.index] = DeltaToolCall(
                    index=p.index, id=p.id, type="function", function=DeltaFunctionCall(name=p.name, arguments="")
                )
            elif p.kind == "args":
                tc = calls.get(p.index)
                if tc is None:
                    calls[p.index] = DeltaToolCall(index=p.index, function=DeltaFunctionCall(arguments=p.text))
                else:
                    tc.function.arguments = (tc.function.arguments or "") + p.text
        self._sync_bookkeeping()
        if not (text or calls):
            return None
        return DeltaMessage(content="".join(text) if text else None, tool_calls=[calls[i] for i in sorted(calls)])

    def _sync_bookkeeping(self) -> None:
        sync_bookkeeping(self, self._stream)


ToolParserManager.register_module(name=NAME, module=ToolmendToolParser)
