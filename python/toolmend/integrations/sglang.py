"""An SGLang function-call detector backed by toolmend's Rust core, registered as ``toolmend``.

SGLang picks detectors by name from ``FunctionCallParser.ToolCallParserEnum``; importing this
module (or calling :func:`register`) adds ``toolmend`` there. Start a server with it through this
module, which registers it and then runs SGLang's own ``launch_server``::

    python -m toolmend.integrations.sglang --model-path Qwen/Qwen3-8B --tool-call-parser toolmend

(or register :func:`register` as an ``sglang.srt.plugins`` entry point, which SGLang's
``load_plugins()`` runs before it parses its arguments).

SGLang builds one ``FunctionCallParser``, hence one detector, per request (per choice when
streaming), so the detector holds that response's :class:`~toolmend.StreamParser`. The format is
auto-detected from the output and the model id (``$TOOLMEND_MODEL``, else the tokenizer's
``name_or_path``); ``$TOOLMEND_FORMAT`` pins one. SGLang's ``--reasoning-parser`` runs before the
detector; reasoning the core still finds stays in the text as ``<think>…</think>``.

Importing this module needs SGLang; ``import toolmend`` does not import it.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sglang.srt.function_call.base_format_detector import BaseFormatDetector
from sglang.srt.function_call.core_types import StreamingParseResult, StructureInfo, ToolCallItem
from sglang.srt.function_call.function_call_parser import FunctionCallParser

from toolmend._core import format_for_model, parse
from toolmend.integrations._common import (
    Piece,
    RequestStream,
    content_with_reasoning,
    parse_text,
    settings,
    sync_bookkeeping,
    tool_dicts,
    tools_arg,
)

__all__ = ["NAME", "ToolmendDetector", "main", "register"]

NAME = "toolmend"

# The call framing of the formats whose arguments are one JSON object between a fixed prefix and
# suffix: what SGLang's structural tags need (begin, end, trigger) for constrained decoding.
_FRAMING: dict[str, Callable[[str], StructureInfo]] = {
    "hermes": lambda name: StructureInfo(
        begin=f'<tool_call>\n{{"name": "{name}", "arguments": ', end="}\n</tool_call>", trigger="<tool_call>"
    ),
    "llama3_json": lambda name: StructureInfo(
        begin=f'{{"name": "{name}", "parameters": ', end="}", trigger='{"name": "'
    ),
    "mistral_array": lambda name: StructureInfo(
        begin=f'[TOOL_CALLS] [{{"name": "{name}", "arguments": ', end="}]", trigger="[TOOL_CALLS]"
    ),
}


def _model_of(tokenizer: Any) -> str | None:
    name = getattr(tokenizer, "name_or_path", None)
    return name if isinstance(name, str) and name else None


class ToolmendDetector(BaseFormatDetector):
    """SGLang ``BaseFormatDetector`` over :class:`toolmend.StreamParser`."""

    def __init__(self, tokenizer: Any = None) -> None:
        super().__init__()
        self._model = _model_of(tokenizer)
        self._stream: RequestStream | None = None

    # -- one-shot ------------------------------------------------------------------------------

    def has_tool_call(self, text: str) -> bool:
        fmt, model = settings(self._model)
        return bool(parse(text, format=fmt, model=model).tool_calls)

    def detect_and_parse(self, text: str, tools: list[Any]) -> Any:
        result = parse_text(text, tools_arg(tools), self._model)
        positions = {d["function"].get("name"): i for i, d in enumerate(tool_dicts(tools))}
        calls = [
            # tool_index: the tool's position in the request, as SGLang's detectors report it here.
            ToolCallItem(tool_index=positions.get(c.name, -1), name=c.name, parameters=c.arguments)
            for c in result.tool_calls
        ]
        return StreamingParseResult(normal_text=content_with_reasoning(result) or "", calls=calls)

    # -- streaming -----------------------------------------------------------------------------

    def parse_streaming_increment(self, new_text: str, tools: list[Any]) -> Any:
        if self._stream is None:
            self._stream = RequestStream.open(tools_arg(tools), self._model)
        return self._result(self._stream.feed(new_text))

    def finish(self, tools: list[Any]) -> Any:
        if self._stream is None:
            return StreamingParseResult()
        return self._result(self._stream.finish())

    def _result(self, pieces: Sequence[Piece]) -> Any:
        """A ``StreamingParseResult``: the text, then per call a first item with its name and
        empty parameters and items with the argument fragments (tool_index: the call's ordinal)."""
        text: list[str] = []
        calls: list[Any] = []
        for p in pieces:
            if p.kind == "text":
                text.append(p.text)
            elif p.kind == "start":
                calls.append(ToolCallItem(tool_index=p.index, name=p.name, parameters=""))
            elif p.kind == "args":
                last = calls[-1] if calls else None
                if last is not None and last.tool_index == p.index and last.name is None:
                    last.parameters += p.text
                else:
                    calls.append(ToolCallItem(tool_index=p.index, name=None, parameters=p.text))
        self._sync_bookkeeping()
        return StreamingParseResult(normal_text="".join(text), calls=calls)

    def _sync_bookkeeping(self) -> None:
        sync_bookkeeping(self, self._stream)

    # -- constrained decoding ------------------------------------------------------------------

    def supports_structural_tag(self) -> bool:
        # The format is known only once the model writes it, so SGLang constrains required and
        # named tool choices with its JSON schema path instead of this detector's framing.
        return False

    def structure_info(self) -> Callable[[str], StructureInfo]:
        """The call framing of the pinned or model-implied format, for the formats that have a
        fixed one (hermes, llama3_json, mistral_array; hermes when nothing says otherwise)."""
        fmt, model = settings(self._model)
        if fmt == "auto":
            fmt = (format_for_model(model) if model else None) or "hermes"
        framing = _FRAMING.get(fmt)
        if framing is None:
            raise ValueError(f"toolmend: no structural-tag framing for format {fmt!r}; known: {sorted(_FRAMING)}")
        return framing


def register() -> None:
    """Adds ``toolmend`` to SGLang's tool-call parsers (idempotent)."""
    FunctionCallParser.ToolCallParserEnum[NAME] = ToolmendDetector


register()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m toolmend.integrations.sglang ARGS``: SGLang's ``launch_server`` with
    ``toolmend`` registered."""
    sys.argv = ["sglang.launch_server", *(sys.argv[1:] if argv is None else argv)]
    runpy.run_module("sglang.launch_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
