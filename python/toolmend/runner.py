"""A small tool loop over Python functions, with toolmend's mending and middleware built in.

::

    from toolmend import Runner

    def get_weather(city: str, days: int = 1) -> str:
        "Weather forecast for a city."
        return f"sunny in {city} for {days} days"

    runner = Runner("http://127.0.0.1:8000/v1", tools=[get_weather], model="Qwen/Qwen3-8B")
    result = runner.run("What's the weather in Paris?")
    print(result.output)                         # the model's final answer
    for event in runner.stream("And in Rome?"):  # progress as it happens
        print(event)

``client_or_base_url`` is a backend URL (requests go straight to the model server, mended
in-process) or an ``openai.OpenAI`` / ``AsyncOpenAI`` client (e.g. pointed at ``toolmend
serve``). Each turn runs through the same pipeline as the proxy (validation with retries,
``tool_choice``, ...). A tool that raises has its error sent back to the model as the tool
result. The loop stops on an answer without calls, on a call to a terminal tool (pydantic
model tools are terminal: the validated instance is the output), or on a budget.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from pydantic import BaseModel

from toolmend._core import Tools
from toolmend.config import normalize_backend_url
from toolmend.pipeline import Answer, BackendError, Pipeline, Turn
from toolmend.proxy.chat import answer_from_completion
from toolmend.steps import default_steps
from toolmend.tools_from_python import PyTool, to_tool


@dataclass
class RunEvent:
    """One step of a run: ``kind`` is ``assistant`` (text), ``tool_call``, ``tool_result``,
    ``tool_error``, ``done`` or ``stopped`` (a budget ran out)."""

    kind: str
    text: str = ""
    name: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    result: Any = None


@dataclass
class RunResult:
    """How a run ended: ``output`` is the final text, or a terminal tool's result."""

    output: Any
    messages: list[dict[str, Any]]
    iterations: int
    stopped_by: str  # "answer", "terminal_tool", "max_iterations", "max_consecutive_errors"
    events: list[RunEvent]


class RunnerError(RuntimeError):
    """The backend failed in a way retries did not fix."""


async def _http_backend(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], request: dict[str, Any]
) -> Any:
    async with session.post(f"{url}/chat/completions", data=orjson.dumps(request), headers=headers) as resp:
        body = await resp.read()
        if resp.status in (429, 503):
            retry = resp.headers.get("retry-after")
            raise BackendError(
                resp.status, body.decode(errors="replace"), float(retry) if retry and retry.isdigit() else None
            )
        if resp.status >= 400:
            raise RunnerError(f"backend HTTP {resp.status}: {body.decode(errors='replace')[:500]}")
        return orjson.loads(body)


class Runner:
    """See the module docs."""

    def __init__(
        self,
        client_or_base_url: Any,
        tools: Sequence[Callable[..., Any] | type[BaseModel] | PyTool],
        *,
        model: str,
        system: str | None = None,
        terminal: Sequence[str] = (),
        max_iterations: int = 10,
        max_consecutive_errors: int = 3,
        pipeline: Pipeline | None = None,
        api_key: str | None = None,
        format: str = "auto",
        request_options: dict[str, Any] | None = None,
    ) -> None:
        self.tools = [to_tool(t) for t in tools]
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique: {names}")
        self.by_name = {t.name: t for t in self.tools}
        self.terminal = set(terminal) | {t.name for t in self.tools if t.model is not None}
        self.model = model
        self.system = system
        self.max_iterations = max_iterations
        self.max_consecutive_errors = max_consecutive_errors
        self.pipeline = pipeline or Pipeline(default_steps(), max_attempts=3)
        self.request_options = dict(request_options or {})
        self._definitions = [t.definition() for t in self.tools]
        self._parser_options: dict[str, Any] = {"tools": Tools(self._definitions), "format": format, "model": model}
        self._client = None if isinstance(client_or_base_url, str) else client_or_base_url
        self._url = normalize_backend_url(client_or_base_url) if isinstance(client_or_base_url, str) else None
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    async def _complete(self, session: aiohttp.ClientSession | None, request: dict[str, Any]) -> Answer:
        if self._client is not None:
            create = self._client.chat.completions.create
            if asyncio.iscoroutinefunction(create):
                completion = await create(**request)
            else:
                completion = await asyncio.to_thread(create, **request)
            data = completion.model_dump() if hasattr(completion, "model_dump") else completion
        else:
            assert session is not None and self._url is not None
            data = await _http_backend(session, self._url, self._headers, request)
        return answer_from_completion(data, self._parser_options)

    def _start(self, prompt: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
        if isinstance(prompt, str):
            messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        else:
            messages = list(prompt)
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system})
        return messages

    async def astream(self, prompt: str | list[dict[str, Any]]) -> AsyncIterator[RunEvent]:
        """Runs the loop, yielding progress; the last event is ``done`` or ``stopped``
        (its ``result`` is the :class:`RunResult`)."""
        messages = self._start(prompt)
        events: list[RunEvent] = []

        def ev(e: RunEvent) -> RunEvent:
            events.append(e)
            return e

        errors_in_a_row = 0
        session = aiohttp.ClientSession() if self._client is None else None
        try:
            for iteration in range(1, self.max_iterations + 1):
                request = {
                    **self.request_options,
                    "model": self.model,
                    "messages": messages,
                    "tools": self._definitions,
                    "stream": False,
                }
                turn = Turn(request)
                try:
                    answer, _ = await self.pipeline.run(turn, lambda r: self._complete(session, r))
                except BackendError as e:
                    raise RunnerError(f"backend HTTP {e.status}: {e}") from None
                messages.append(answer.as_message())
                if answer.content:
                    yield ev(RunEvent("assistant", text=answer.content))
                if not answer.calls:
                    result = RunResult(answer.content or "", messages, iteration, "answer", events)
                    yield ev(RunEvent("done", text=answer.content or "", result=result))
                    return
                terminal_output: Any = None
                terminal_hit = False
                failed = False
                for call in answer.calls:
                    try:
                        args = json.loads(call.arguments)
                    except ValueError:
                        args = {}
                    yield ev(RunEvent("tool_call", name=call.name, arguments=args))
                    tool = self.by_name.get(call.name)
                    try:
                        if tool is None:
                            raise ValueError(f"unknown tool {call.name!r}; available: {', '.join(self.by_name)}")
                        output = tool.call(args if isinstance(args, dict) else {})
                        if asyncio.iscoroutine(output):
                            output = await output
                    except Exception as e:  # the tool's failure goes back to the model
                        failed = True
                        text = f"Error: {type(e).__name__}: {e}"
                        messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
                        yield ev(RunEvent("tool_error", name=call.name, arguments=args, text=text))
                        continue
                    content = output if isinstance(output, str) else _to_text(output)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
                    yield ev(RunEvent("tool_result", name=call.name, arguments=args, result=output, text=content))
                    if call.name in self.terminal and not terminal_hit:
                        terminal_hit, terminal_output = True, output
                if terminal_hit:
                    result = RunResult(terminal_output, messages, iteration, "terminal_tool", events)
                    yield ev(RunEvent("done", result=result))
                    return
                errors_in_a_row = errors_in_a_row + 1 if failed else 0
                if errors_in_a_row >= self.max_consecutive_errors:
                    result = RunResult(None, messages, iteration, "max_consecutive_errors", events)
                    yield ev(RunEvent("stopped", text="too many consecutive tool errors", result=result))
                    return
            result = RunResult(None, messages, self.max_iterations, "max_iterations", events)
            yield ev(RunEvent("stopped", text="iteration budget spent", result=result))
        finally:
            if session is not None:
                await session.close()

    async def arun(self, prompt: str | list[dict[str, Any]]) -> RunResult:
        last: RunEvent | None = None
        async for e in self.astream(prompt):
            last = e
        assert last is not None and isinstance(last.result, RunResult)
        return last.result

    def stream(self, prompt: str | list[dict[str, Any]]) -> Iterator[RunEvent]:
        """:meth:`astream` for synchronous code (the loop runs in a helper thread)."""
        q: queue.Queue[tuple[str, Any]] = queue.Queue()

        async def pump() -> None:
            try:
                async for e in self.astream(prompt):
                    q.put(("event", e))
            except BaseException as e:  # handed to the caller's thread
                q.put(("error", e))
            finally:
                q.put(("end", None))

        t = threading.Thread(target=lambda: asyncio.run(pump()), daemon=True)
        t.start()
        while True:
            kind, item = q.get()
            if kind == "event":
                yield item
            elif kind == "error":
                raise item
            else:
                break
        t.join()

    def run(self, prompt: str | list[dict[str, Any]]) -> RunResult:
        """Runs the loop to the end (synchronous)."""
        last: RunEvent | None = None
        for e in self.stream(prompt):
            last = e
        assert last is not None and isinstance(last.result, RunResult)
        return last.result


def _to_text(value: Any) -> str:
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)
