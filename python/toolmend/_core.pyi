"""Type stubs for the Rust extension module ``toolmend._core``."""

from collections.abc import Sequence
from typing import Any, Literal, Union, final

__version__: str

__all__ = [
    "CoerceResult",
    "Diagnostic",
    "Event",
    "InvalidToolsError",
    "ParseResult",
    "ParserFinishedError",
    "RepairResult",
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

_EventKind = Literal["content", "reasoning", "tool_call_start", "tool_call_args", "tool_call_end"]
_ToolsArg = Union[Sequence[Any], "Tools", None]

class ToolmendError(ValueError): ...
class UnknownFormatError(ToolmendError): ...
class InvalidToolsError(ToolmendError): ...
class ParserFinishedError(ToolmendError): ...

@final
class Tools:
    """A prepared OpenAI ``tools`` list, reusable across parses."""

    def __new__(cls, tools: Sequence[Any]) -> Tools: ...
    @property
    def names(self) -> list[str]: ...
    def __len__(self) -> int: ...

@final
class Event:
    @property
    def kind(self) -> _EventKind: ...
    @property
    def text(self) -> str | None: ...
    @property
    def index(self) -> int | None: ...
    @property
    def id(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...

@final
class ToolCall:
    def __new__(cls, id: str, name: str, arguments: str) -> ToolCall: ...
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def arguments(self) -> str: ...

@final
class Diagnostic:
    @property
    def kind(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def span(self) -> tuple[int, int]: ...
    @property
    def path(self) -> str | None:
        """For a ``schema_violation``: the JSON pointer of the offending value in the call's
        arguments (``""`` for the arguments object itself); ``None`` otherwise."""

@final
class ParseResult:
    @property
    def content(self) -> str | None: ...
    @property
    def reasoning(self) -> str | None: ...
    @property
    def tool_calls(self) -> list[ToolCall]: ...
    @property
    def format(self) -> str | None: ...
    @property
    def diagnostics(self) -> list[Diagnostic]: ...

@final
class StreamParser:
    def __new__(
        cls,
        tools: _ToolsArg = None,
        format: str | None = ...,
        model: str | None = None,
        *,
        repair: bool = True,
        in_reasoning: bool = False,
        id_seed: int | None = None,
        coerce: bool = True,
        validate: bool = True,
    ) -> StreamParser: ...
    def feed(self, delta: str) -> list[Event]: ...
    def finish(self) -> list[Event]: ...
    def call_start(self, name: str, id: str | None = None) -> list[Event]: ...
    def call_args(self, fragment: str) -> list[Event]: ...
    def call_end(self) -> list[Event]: ...
    def result(self) -> ParseResult: ...

def parse(
    text: str,
    tools: _ToolsArg = None,
    format: str | None = ...,
    model: str | None = None,
    *,
    repair: bool = True,
    in_reasoning: bool = False,
    id_seed: int | None = None,
    coerce: bool = True,
    validate: bool = True,
) -> ParseResult: ...

@final
class RepairResult:
    @property
    def json(self) -> str: ...
    @property
    def diagnostics(self) -> list[Diagnostic]: ...

def repair_json(text: str) -> RepairResult: ...

@final
class CoerceResult:
    @property
    def arguments(self) -> str: ...
    @property
    def diagnostics(self) -> list[Diagnostic]: ...

def coerce(arguments: str | dict[str, Any], schema: dict[str, Any]) -> CoerceResult: ...
def formats() -> list[tuple[str, str]]: ...
def format_for_model(model: str) -> str | None: ...
