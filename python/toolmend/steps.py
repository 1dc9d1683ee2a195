"""The built-in pipeline steps (see ``toolmend.pipeline``): validation, ``tool_choice``,
``parallel_tool_calls``, the synthetic ``respond`` tool, single-call history and recommended
sampling. Each is small and independent; :func:`default_steps` is what the proxy runs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from toolmend.pipeline import Answer, BaseStep, Call, Step, Turn
from toolmend.profiles import Profiles

RESPOND = "respond"
RESPOND_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": RESPOND,
        "description": "Reply to the user with a message. Use it when no other tool fits, instead of writing plain text.",
        "parameters": {
            "type": "object",
            "properties": {"message": {"type": "string", "description": "The reply to the user."}},
            "required": ["message"],
        },
    },
}


class StepError(Exception):
    """A request a step refuses, reported to the client as an HTTP error."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _finish(answer: Answer) -> Answer:
    """Sets the finish reason to match the calls (``length`` is kept)."""
    if answer.finish_reason != "length":
        answer.finish_reason = "tool_calls" if answer.calls else "stop"
    return answer


def _named_choice(choice: Any) -> str | None:
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    return None


class ValidateCalls(BaseStep):
    """Unusable calls (arguments that do not validate, unknown tools, calls that were started
    but never finished) are problems: the model is asked again with what was wrong."""

    name = "validate"

    def check(self, turn: Turn, answer: Answer) -> list[str]:
        return answer.problems()


class ToolChoice(BaseStep):
    """Honours ``tool_choice`` even when the backend ignores it.

    The choice is always passed through. ``"none"``: calls are dropped (never sent).
    ``"required"`` / a named function: an answer without (that) call is a problem, so the model
    is asked again with a forcing message; with ``constrained`` set, the backend's constrained
    decoding is asked to produce the call as JSON: ``"response_format"`` (OpenAI
    ``json_schema``: vLLM, SGLang, llama.cpp, LM Studio, Ollama), ``"guided_json"`` (older vLLM)
    or ``"json_schema"`` (llama.cpp's own field)."""

    name = "tool_choice"
    MODES = ("response_format", "guided_json", "json_schema")

    def __init__(self, constrained: str | None = None) -> None:
        if constrained is not None and constrained not in self.MODES:
            raise ValueError(f"constrained must be one of {self.MODES}")
        self.constrained = constrained

    @staticmethod
    def _choice(turn: Turn) -> Any:
        return turn.original.get("tool_choice")

    def _schema(self, turn: Turn) -> dict[str, Any] | None:
        choice = self._choice(turn)
        named = _named_choice(choice)
        options = []
        for t in turn.tools:
            fn = t.get("function") if isinstance(t, dict) else None
            if not isinstance(fn, dict) or (named is not None and fn.get("name") != named):
                continue
            params = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {"type": "object"}
            options.append(
                {
                    "type": "object",
                    "properties": {"name": {"const": fn.get("name")}, "arguments": params},
                    "required": ["name", "arguments"],
                }
            )
        if not options:
            return None
        return options[0] if len(options) == 1 else {"anyOf": options}

    def prepare(self, turn: Turn) -> None:
        choice = self._choice(turn)
        if self.constrained is None or not (choice == "required" or _named_choice(choice)):
            return
        schema = self._schema(turn)
        if schema is None:
            return
        if self.constrained == "response_format":
            turn.request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "tool_call", "schema": schema, "strict": True},
            }
        else:
            turn.request[self.constrained] = schema
        # The constrained answer is a bare {"name", "arguments"} object in the text.
        turn.notes["format"] = "generic_json"

    def check(self, turn: Turn, answer: Answer) -> list[str]:
        choice = self._choice(turn)
        named = _named_choice(choice)
        if named is not None and not any(c.name == named for c in answer.calls):
            return [f'tool_choice requires a call to the function "{named}", but the reply did not call it.']
        if choice == "required" and not answer.calls:
            return ['tool_choice is "required": the reply must call one of the tools, but it only wrote text.']
        return []

    def finalize(self, turn: Turn, answer: Answer) -> Answer:
        choice = self._choice(turn)
        named = _named_choice(choice)
        if choice == "none" and answer.calls:
            answer.calls = []
        elif named is not None:
            answer.calls = [c for c in answer.calls if c.name == named]
        return _finish(answer)

    def holds_calls(self, turn: Turn) -> bool:
        choice = self._choice(turn)
        return choice in ("none", "required") or _named_choice(choice) is not None


class ParallelCalls(BaseStep):
    """``parallel_tool_calls: false``: at most one call reaches the client (the first)."""

    name = "parallel_tool_calls"

    def finalize(self, turn: Turn, answer: Answer) -> Answer:
        if turn.original.get("parallel_tool_calls") is False and len(answer.calls) > 1:
            answer.calls = answer.calls[:1]
        return answer

    def holds_calls(self, turn: Turn) -> bool:
        return turn.original.get("parallel_tool_calls") is False


class RespondTool(BaseStep):
    """The synthetic ``respond(message)`` tool keeps a small model in tool-calling mode: a
    ``respond`` call becomes plain assistant text with ``finish_reason: "stop"``; next to real
    calls it is dropped. Opt-in (``enabled``, or the request field ``toolmend.respond_tool``);
    never injected when the client has a tool of that name."""

    name = "respond"

    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    def prepare(self, turn: Turn) -> None:
        opts = turn.original.get("toolmend")
        wanted = self.enabled
        if isinstance(opts, dict) and isinstance(opts.get("respond_tool"), bool):
            wanted = opts["respond_tool"]
        if not wanted or not turn.tools or RESPOND in turn.tool_names():
            return
        turn.request["tools"] = [*turn.tools, copy.deepcopy(RESPOND_TOOL)]
        turn.notes["respond_injected"] = True

    def finalize(self, turn: Turn, answer: Answer) -> Answer:
        if not turn.notes.get("respond_injected"):
            return answer
        replies = [c for c in answer.calls if c.name == RESPOND]
        if not replies:
            return answer
        real = [c for c in answer.calls if c.name != RESPOND]
        if real:
            answer.calls = real
            return _finish(answer)
        texts = []
        for c in replies:
            try:
                args = json.loads(c.arguments)
            except ValueError:
                args = {}
            message = args.get("message") if isinstance(args, dict) else None
            texts.append(message if isinstance(message, str) else c.arguments)
        answer.content = "\n\n".join(t for t in [answer.content, *texts] if t)
        answer.calls = []
        return _finish(answer)

    def holds_calls(self, turn: Turn) -> bool:
        return bool(turn.notes.get("respond_injected"))


def split_parallel_calls(messages: list[Any]) -> list[Any]:
    """History with assistant turns of several calls rewritten into consecutive one-call turns,
    each followed by its tool result (for chat templates that accept one call per turn)."""
    out: list[Any] = []
    i = 0
    while i < len(messages):
        m = messages[i]
        calls = m.get("tool_calls") if isinstance(m, dict) and m.get("role") == "assistant" else None
        if not isinstance(calls, list) or len(calls) < 2:
            out.append(m)
            i += 1
            continue
        j = i + 1
        results: dict[str, Any] = {}
        unmatched: list[Any] = []
        while j < len(messages) and isinstance(messages[j], dict) and messages[j].get("role") == "tool":
            tid = messages[j].get("tool_call_id")
            if isinstance(tid, str) and tid not in results:
                results[tid] = messages[j]
            else:
                unmatched.append(messages[j])
            j += 1
        for k, call in enumerate(calls):
            turn = {key: v for key, v in m.items() if key != "tool_calls"}
            if k > 0:
                turn["content"] = None
            turn["tool_calls"] = [call]
            out.append(turn)
            cid = call.get("id") if isinstance(call, dict) else None
            if isinstance(cid, str) and cid in results:
                out.append(results.pop(cid))
        out += list(results.values()) + unmatched
        i = j
    return out


class SingleCallHistory(BaseStep):
    """For models whose chat template takes one call per assistant turn (the profile quirk
    ``single_call``; Llama 3.1 raises "This model only supports single tool-calls at once!"),
    history with parallel calls is rewritten into consecutive one-call turns."""

    name = "single_call_history"

    def __init__(self, profiles: Profiles) -> None:
        self.profiles = profiles

    def prepare(self, turn: Turn) -> None:
        profile = self.profiles.find(turn.request.get("model"))
        messages = turn.request.get("messages")
        if profile is not None and "single_call" in profile.quirks and isinstance(messages, list):
            turn.request["messages"] = split_parallel_calls(messages)


class RecommendedSampling(BaseStep):
    """Fills in the sampling parameters the model's profile recommends (fields the client set
    are kept). Only when enabled; then a model without a profile, or a profile without
    sampling values, is refused with HTTP 400 rather than guessed."""

    name = "recommended_sampling"

    def __init__(self, profiles: Profiles, enabled: bool = False) -> None:
        self.profiles = profiles
        self.enabled = enabled

    def prepare(self, turn: Turn) -> None:
        if not self.enabled:
            return
        model = turn.request.get("model")
        profile = self.profiles.find(model if isinstance(model, str) else None)
        if profile is None or not profile.sampling:
            why = "no profile matches it" if profile is None else f"its profile {profile.name!r} has no sampling values"
            raise StepError(
                400,
                f"recommended sampling is on, but model {model!r} is unknown: {why}. Add a profile "
                "(see `toolmend models`) or run without --recommended-sampling.",
                "unknown_model_profile",
            )
        for k, v in profile.sampling.items():
            turn.request.setdefault(k, v)
        turn.notes["sampling_source"] = profile.source


def default_steps(
    profiles: Profiles | None = None,
    *,
    respond_tool: bool = False,
    recommended_sampling: bool = False,
    constrained: str | None = None,
) -> list[Step]:
    """The proxy's steps, in order."""
    profiles = profiles or Profiles.shipped()
    return [
        RecommendedSampling(profiles, recommended_sampling),
        SingleCallHistory(profiles),
        RespondTool(respond_tool),
        ToolChoice(constrained),
        ValidateCalls(),
        ParallelCalls(),
    ]


def answer_from_message(
    message: Mapping[str, Any], finish_reason: Any, diagnostics: list[Any], fmt: str | None
) -> Answer:
    """An :class:`Answer` from a mended OpenAI assistant message."""
    calls = []
    for c in message.get("tool_calls") or []:
        fn = c.get("function") or {}
        calls.append(
            Call(id=str(c.get("id", "")), name=str(fn.get("name", "")), arguments=str(fn.get("arguments", "{}")))
        )
    content = message.get("content")
    reasoning = message.get("reasoning_content")
    return Answer(
        content=content if isinstance(content, str) else None,
        calls=calls,
        finish_reason=finish_reason if isinstance(finish_reason, str) else "stop",
        reasoning=reasoning if isinstance(reasoning, str) else None,
        diagnostics=list(diagnostics),
        format=fmt,
    )
