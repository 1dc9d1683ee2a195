"""The Responses API front door (``POST /v1/responses``, what Codex CLI speaks), end to end with
openai-python's ``client.responses``: a real uvicorn proxy in front of the scripted backend.

Checked: the translation of the request (what the backend receives as a chat completion
request), the ``response`` object, the event stream of docs/clients.md item 25 (its order,
sequence numbers and item identities), tools of other types ignored (item 26), a multi-turn
loop that sends ``function_call_output`` back, calls written as text in several formats,
native calls, the token limit, stateful parameters refused, and backend faults.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from toolmend.config import load_settings
from toolmend.proxy import create_app
from toolmend.scripted import RunningServer, Script, ScriptedBackend, serve_in_thread

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather forecast for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
    "strict": False,
}
SEARCH = {
    "type": "function",
    "name": "search",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
}
# Tools of the types Codex CLI sends besides functions: a local model cannot be offered them.
OTHER_TOOLS: list[dict[str, Any]] = [
    {"type": "web_search"},
    {"type": "custom", "name": "apply_patch", "description": "Apply a patch.", "format": {"type": "text"}},
    {"type": "local_shell"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {"type": "mcp", "server_label": "deepwiki", "server_url": "https://example.invalid/mcp"},
]

HERMES_CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}

# Calls written as text in four formats; the proxy is told each model's format (as a user would).
TEXT_FORMATS = {
    "hermes": (
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}\n</tool_call>',
        [("get_weather", {"city": "Paris", "days": 2})],
    ),
    "mistral_array": (
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
        '{"name": "search", "arguments": {"q": "fjords"}}]',
        [("get_weather", {"city": "Oslo"}), ("search", {"q": "fjords"})],
    ),
    "llama3_json": (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Lima", "days": "3"}}',
        [("get_weather", {"city": "Lima", "days": 3})],
    ),
    "qwen3_xml": (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nRome\n</parameter>\n"
        "<parameter=days>\n4\n</parameter>\n</function>\n</tool_call>",
        [("get_weather", {"city": "Rome", "days": 4})],
    ),
}


class Setup:
    def __init__(self, backend: ScriptedBackend, proxy: RunningServer) -> None:
        self.backend = backend
        self.proxy = proxy
        self.client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-test", max_retries=0, timeout=15.0)

    def script(self, model: str, spec: Script | list[Script]) -> str:
        self.backend.add(model, spec)
        return model

    def last_request(self, model: str) -> dict[str, Any]:
        bodies = [r["body"] for r in self.backend.requests if r["body"].get("model") == model]
        assert bodies, f"the backend received no request for {model}"
        body: dict[str, Any] = bodies[-1]
        return body

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.backend.requests if r["body"].get("model") == model]


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    backend = ScriptedBackend()
    with serve_in_thread(backend.app) as b:
        formats = {f"fmt/{name}": name for name in TEXT_FORMATS}
        settings = load_settings(env={}, overrides={"backend_url": b.url + "/v1", "formats": formats})
        with serve_in_thread(create_app(settings)) as p:
            yield Setup(backend, p)


def calls_of(output: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, parsed arguments) of the function_call items, checking each item's shape."""
    out = []
    call_ids = []
    for item in output:
        if item.type != "function_call":
            continue
        assert item.id and item.id.startswith("fc_"), item
        assert item.call_id and isinstance(item.call_id, str)
        assert item.status == "completed"
        assert isinstance(item.arguments, str)
        out.append((item.name, json.loads(item.arguments)))
        call_ids.append(item.call_id)
    assert len(set(call_ids)) == len(call_ids), "call ids are distinct"
    return out


def raw_events(setup: Setup, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The data of each SSE event, checking the framing: ``event: <type>`` matches the data."""
    resp = httpx.post(setup.proxy.url + "/v1/responses", json={**body, "stream": True}, timeout=15.0)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in resp.text.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        data = json.loads(lines["data"])
        assert lines["event"] == data["type"]
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


# -- the response object ------------------------------------------------------------------------


def test_create_with_a_text_call(setup: Setup) -> None:
    model = setup.script("r/hermes", Script(text="I will check." + HERMES_CALL, usage=USAGE))
    resp = setup.client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER, SEARCH])
    assert resp.object == "response" and resp.id.startswith("resp_")
    assert resp.status == "completed" and resp.error is None and resp.incomplete_details is None
    assert resp.model == model
    assert [item.type for item in resp.output] == ["message", "function_call"]
    msg = resp.output[0]
    assert msg.type == "message" and msg.role == "assistant" and msg.status == "completed"
    assert msg.id.startswith("msg_")
    assert [(c.type, c.text) for c in msg.content] == [("output_text", "I will check.")]
    assert resp.output_text == "I will check."
    assert calls_of(resp.output) == [("get_weather", {"city": "Paris"})]
    assert resp.usage is not None
    assert (resp.usage.input_tokens, resp.usage.output_tokens, resp.usage.total_tokens) == (11, 7, 18)
    # The fields the SDK's Response model requires are there, echoing the request.
    assert resp.parallel_tool_calls is True and resp.tool_choice == "auto"
    assert [t.name for t in resp.tools if t.type == "function"] == ["get_weather", "search"]
    # The backend got a chat completion request with chat-shaped tools.
    sent = setup.last_request(model)
    assert sent["messages"] == [{"role": "user", "content": "Weather in Paris?"}]
    assert sent["stream"] is False
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "search"]
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": WEATHER["description"],
            "parameters": WEATHER["parameters"],
            "strict": False,
        },
    }


def test_plain_text_and_reasoning(setup: Setup) -> None:
    model = setup.script("r/plain", Script(text="It is sunny.", reasoning="The user wants weather."))
    resp = setup.client.responses.create(model=model, input="Hi", instructions="Be brief.")
    assert [item.type for item in resp.output] == ["reasoning", "message"]
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert [c.text for c in reasoning.content] == ["The user wants weather."]
    assert resp.output_text == "It is sunny."
    assert resp.instructions == "Be brief."
    sent = setup.last_request(model)
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert "tools" not in sent


def test_native_calls_with_quirks(setup: Setup) -> None:
    calls = [{"name": "get_weather", "arguments": {"city": "Oslo", "days": "2"}}, {"name": "search", "arguments": {}}]
    model = setup.script("r/native", Script(tool_calls=calls, quirks={"ollama_index0", "no_ids"}))
    resp = setup.client.responses.create(model=model, input="go", tools=[WEATHER, SEARCH])
    assert [item.type for item in resp.output] == ["function_call", "function_call"]
    assert calls_of(resp.output) == [("get_weather", {"city": "Oslo", "days": 2}), ("search", {})]


def test_token_limit_is_incomplete(setup: Setup) -> None:
    model = setup.script("r/length", Script(text="The weather in Par", finish_reason="length"))
    resp = setup.client.responses.create(model=model, input="go", max_output_tokens=5)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None and resp.incomplete_details.reason == "max_output_tokens"
    assert resp.output[-1].status == "incomplete"
    assert resp.max_output_tokens == 5
    assert setup.last_request(model)["max_tokens"] == 5
    events = raw_events(setup, {"model": model, "input": "go", "max_output_tokens": 5})
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert not any(e["type"] == "response.completed" for e in events)


# -- the event stream ---------------------------------------------------------------------------


def test_stream_event_order(setup: Setup) -> None:
    model = setup.script("r/stream", Script(text="Checking." + HERMES_CALL, chunk_size=5, usage=USAGE))
    stream = setup.client.responses.create(model=model, input="Weather?", tools=[WEATHER], stream=True)
    events = list(stream)
    types = [e.type for e in events]
    # Collapse runs of deltas: the order of everything else is the contract.
    collapsed = [t for i, t in enumerate(types) if not (t.endswith(".delta") and i > 0 and types[i - 1] == t)]
    assert collapsed == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    created, completed = events[0], events[-1]
    assert created.type == "response.created" and completed.type == "response.completed"
    assert created.response.id == completed.response.id and created.response.status == "in_progress"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Checking."
    added = [e for e in events if e.type == "response.output_item.added"]
    done = [e for e in events if e.type == "response.output_item.done"]
    assert [e.output_index for e in added] == [0, 1] and [e.output_index for e in done] == [0, 1]
    call_added, call_done = added[1].item, done[1].item
    assert call_added.type == "function_call" and call_done.type == "function_call"
    assert (call_added.arguments, call_added.status) == ("", "in_progress")
    assert call_added.id == call_done.id and call_added.call_id == call_done.call_id and call_done.call_id
    assert call_added.name == call_done.name == "get_weather"
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert {e.item_id for e in deltas} == {call_added.id} and {e.output_index for e in deltas} == {1}
    (args_done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert "".join(e.delta for e in deltas) == args_done.arguments == call_done.arguments
    assert json.loads(call_done.arguments) == {"city": "Paris"} and call_done.status == "completed"
    final = completed.response
    assert final.status == "completed"
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output[1].call_id == call_done.call_id
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    assert setup.last_request(model)["stream_options"] == {"include_usage": True}


def test_stream_helper(setup: Setup) -> None:
    calls = [{"name": "get_weather", "arguments": '{"city": "Bergen", "days": 1}'}]
    model = setup.script("r/helper", Script(text="On it.", tool_calls=calls, chunk_size=3))
    with setup.client.responses.stream(model=model, input="Weather?", tools=[WEATHER]) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in types and types[-1] == "response.completed"
    assert final.output_text == "On it."
    assert calls_of(final.output) == [("get_weather", {"city": "Bergen", "days": 1})]


def test_stream_whitespace_around_calls_is_not_a_message(setup: Setup) -> None:
    model = setup.script("r/ws", Script(text="\n\n" + HERMES_CALL + "\n", chunk_size=4))
    events = raw_events(setup, {"model": model, "input": "go", "tools": [WEATHER]})
    items = [e["item"]["type"] for e in events if e["type"] == "response.output_item.done"]
    assert items == ["function_call"]
    assert [item["type"] for item in events[-1]["response"]["output"]] == ["function_call"]


@pytest.mark.parametrize("fmt", sorted(TEXT_FORMATS))
def test_text_formats(setup: Setup, fmt: str) -> None:
    text, expected = TEXT_FORMATS[fmt]
    model = setup.script(f"fmt/{fmt}", Script(text=text, chunk_size=3))
    resp = setup.client.responses.create(model=model, input="go", tools=[WEATHER, SEARCH])
    assert calls_of(resp.output) == expected
    with setup.client.responses.stream(model=model, input="go", tools=[WEATHER, SEARCH]) as stream:
        final = stream.get_final_response()
    assert calls_of(final.output) == expected
    assert all("<tool_call>" not in item.content[0].text for item in final.output if item.type == "message")


# -- request translation ---------------------------------------------------------------------------


def test_other_tool_types_are_ignored(setup: Setup) -> None:
    model = setup.script("r/others", Script(text=HERMES_CALL))
    resp = setup.client.responses.create(
        model=model, input="go", tools=[*OTHER_TOOLS, WEATHER], tool_choice={"type": "custom", "name": "apply_patch"}
    )
    assert calls_of(resp.output) == [("get_weather", {"city": "Paris"})]
    sent = setup.last_request(model)
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert "tool_choice" not in sent
    # Only tools of other types: the backend is asked without tools.
    model = setup.script("r/only-others", Script(text="No tools for me."))
    resp = setup.client.responses.create(model=model, input="go", tools=OTHER_TOOLS)
    assert resp.output_text == "No tools for me."
    assert "tools" not in setup.last_request(model)
    events = raw_events(setup, {"model": model, "input": "go", "tools": OTHER_TOOLS})
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "No tools for me."


def test_request_translation(setup: Setup) -> None:
    model = setup.script("r/translate", Script(text=HERMES_CALL))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    setup.client.responses.create(
        model=model,
        instructions="You are terse.",
        input=[
            {"role": "developer", "content": "Answer in JSON."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Which city is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Paris."}]},
            {"role": "user", "content": "Again, as JSON."},
        ],
        tools=[WEATHER, {"type": "web_search"}],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=64,
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
        store=False,
    )
    sent = setup.last_request(model)
    assert sent["messages"] == [
        {"role": "system", "content": "You are terse.\n\nAnswer in JSON."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Which city is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Again, as JSON."},
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert (sent["parallel_tool_calls"], sent["temperature"], sent["top_p"], sent["max_tokens"]) == (
        False,
        0.2,
        0.9,
        64,
    )
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }
    assert "store" not in sent and "text" not in sent and "input" not in sent


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_multi_turn_tool_loop(setup: Setup, stream: bool) -> None:
    model = setup.script(
        f"r/loop-{stream}",
        [Script(text="Let me check." + HERMES_CALL), Script(text="It is 21 °C and sunny in Paris.")],
    )
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    instructions = "Use the tools."

    def ask() -> Any:
        if not stream:
            return setup.client.responses.create(
                model=model, instructions=instructions, input=history, tools=[WEATHER, *OTHER_TOOLS]
            )
        with setup.client.responses.stream(
            model=model, instructions=instructions, input=history, tools=[WEATHER, *OTHER_TOOLS]
        ) as s:
            return s.get_final_response()

    first = ask()
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    # The client runs the tool and sends the output back with the whole conversation.
    history += first.output
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'})
    second = ask()
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text == "It is 21 °C and sunny in Paris."
    # The backend saw proper chat history: one assistant turn with the text and the call, then
    # the tool's answer keyed by the call's id.
    sent = setup.requests_for(model)[-1]
    assert sent["messages"] == [
        {"role": "system", "content": instructions},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": call.call_id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.call_id, "content": '{"temp_c": 21}'},
    ]


def test_consecutive_calls_make_one_assistant_turn(setup: Setup) -> None:
    model = setup.script("r/merge", Script(text="Done."))
    setup.client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "Two cities."},
            {"type": "function_call", "call_id": "callA", "name": "get_weather", "arguments": '{"city": "A"}'},
            {"type": "function_call", "call_id": "callB", "name": "get_weather", "arguments": '{"city": "B"}'},
            {"type": "function_call_output", "call_id": "callA", "output": "sunny"},
            {
                "type": "function_call_output",
                "call_id": "callB",
                "output": [{"type": "input_text", "text": "rainy"}],
            },
            {"type": "local_shell_call_output", "call_id": "x", "output": "ignored"},
        ],
        tools=[WEATHER],
    )
    messages = setup.last_request(model)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "tool"]
    assert messages[1]["content"] is None
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["callA", "callB"]
    assert [(m["tool_call_id"], m["content"]) for m in messages[2:]] == [("callA", "sunny"), ("callB", "rainy")]


@pytest.mark.parametrize(
    "extra",
    [
        {"previous_response_id": "resp_123"},
        {"conversation": "conv_123"},
        {"input": [{"type": "item_reference", "id": "msg_123"}]},
    ],
    ids=["previous_response_id", "conversation", "item_reference"],
)
def test_stateful_requests_are_refused(setup: Setup, extra: dict[str, Any]) -> None:
    model = setup.script("r/stateful", Script(text="never"))
    before = len(setup.requests_for(model))
    kwargs: dict[str, Any] = {"model": model, "input": "go", **extra}
    with pytest.raises(openai.BadRequestError) as info:
        setup.client.responses.create(**kwargs)
    assert "keeps no" in info.value.message or "toolmend does not keep" in info.value.message
    assert len(setup.requests_for(model)) == before, "nothing reached the backend"


def test_invalid_requests(setup: Setup) -> None:
    for body in ({"model": "x", "input": 3}, {"model": "x", "input": [{"role": "robot", "content": "hi"}]}):
        resp = httpx.post(setup.proxy.url + "/v1/responses", json=body, timeout=15.0)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["type"] == "invalid_request_error"
    resp = httpx.post(setup.proxy.url + "/responses", content=b"{not json", timeout=15.0)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


# -- faults ----------------------------------------------------------------------------------------


def test_backend_http_error(setup: Setup) -> None:
    model = setup.script("r/http500", Script(fault="http_500"))
    with pytest.raises(openai.APIStatusError) as info:
        setup.client.responses.create(model=model, input="go", tools=[WEATHER])
    assert info.value.status_code >= 500
    with pytest.raises(openai.APIStatusError):
        setup.client.responses.create(model=model, input="go", tools=[WEATHER], stream=True)


@pytest.mark.parametrize("fault", ["error_event", "cut"])
def test_stream_fault_fails_the_response(setup: Setup, fault: str) -> None:
    script = Script(text="Some text before it breaks. " + HERMES_CALL, fault=fault, error_message="the GPU caught fire")
    model = setup.script(f"r/{fault}", script)
    events = raw_events(setup, {"model": model, "input": "go", "tools": [WEATHER]})
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.failed"
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    if fault == "error_event":
        assert "the GPU caught fire" in failed["error"]["message"]
    assert failed["id"] == events[0]["response"]["id"]
    assert not any(e["type"] == "response.completed" for e in events)
    with setup.client.responses.stream(model=model, input="go", tools=[WEATHER]) as stream:
        types = [event.type for event in stream]
        assert types[-1] == "response.failed"
        with pytest.raises(RuntimeError):
            stream.get_final_response()


def test_error_event_whole(setup: Setup) -> None:
    model = setup.script("r/error-whole", Script(text="x", fault="error_event"))
    with pytest.raises(openai.APIStatusError) as info:
        setup.client.responses.create(model=model, input="go", tools=[WEATHER])
    assert info.value.status_code == 502


def test_client_disconnect_cancels_the_backend_request(setup: Setup) -> None:
    # The whole answer would take ~10 s (200 deltas, 50 ms apart).
    model = setup.script("r/slow", Script(text="word " * 200, chunk_size=5, delay_ms=50))
    cut_before = setup.backend.streams_cut
    body = {"model": model, "input": "go", "tools": [WEATHER], "stream": True}
    with httpx.stream("POST", setup.proxy.url + "/v1/responses", json=body, timeout=15.0) as resp:
        assert resp.status_code == 200
        received = b""
        for part in resp.iter_raw():
            received += part
            if b"response.output_text.delta" in received:
                break
    assert setup.backend.wait_streams_cut(cut_before + 1, timeout=5.0)
