"""The Anthropic Messages front door (``/v1/messages``) end to end, with the official
``anthropic`` SDK: a real uvicorn proxy in front of the scripted backend. Checked: the request
as the backend receives it (chat completions), the message and the event stream the SDK reads
(tool_use blocks, the event order of the wire contract), errors, auth, count_tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from proxy_harness import WHOLE_PREFIX, Recorder
from toolmend.config import load_settings
from toolmend.proxy import create_app
from toolmend.proxy.anthropic import IMAGE_TOKENS, to_chat_request
from toolmend.scripted import RunningServer, Script, ScriptedBackend, serve_in_thread

TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Weather forecast for a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
    {
        "name": "calculate",
        "description": "Arithmetic.",
        "input_schema": {
            "type": "object",
            "properties": {
                "x": {"type": "number"},
                "y": {"type": "integer"},
                "enabled": {"type": "boolean"},
                "items": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["x"],
        },
    },
]

HERMES = 'Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}</tool_call>'
PARIS = {"city": "Paris", "days": 3}
PLAIN = "Paris is sunny today, 24 degrees, light wind from the west."
REASONING = "The user wants the weather; I should call the tool."

# Calls written as text in four model families' formats, and the input each must become.
FORMAT_SCRIPTS: dict[str, tuple[str, list[tuple[str, dict[str, Any]]]]] = {
    "hermes": (HERMES, [("get_weather", PARIS)]),
    "mistral": (
        '[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}, '
        '{"name": "get_weather", "arguments": {"city": "Rome"}}]',
        [("get_weather", PARIS), ("get_weather", {"city": "Rome"})],
    ),
    "llama3": (
        '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}',
        [("get_weather", PARIS)],
    ),
    "qwen3_xml": (
        "<tool_call>\n<function=calculate>\n<parameter=x>\n3.5\n</parameter>\n<parameter=y>\n42\n</parameter>\n"
        '<parameter=enabled>\ntrue\n</parameter>\n<parameter=items>\n["a", "b"]\n</parameter>\n</function>\n</tool_call>',
        [("calculate", {"x": 3.5, "y": 42, "enabled": True, "items": ["a", "b"]})],
    ),
}


def _scripts() -> dict[str, Script]:
    scripts = {f"fmt/{name}": Script(text=text, chunk_size=3) for name, (text, _) in FORMAT_SCRIPTS.items()}
    scripts["plain"] = Script(text=PLAIN, chunk_size=5)
    scripts["think"] = Script(text=HERMES, reasoning=REASONING, chunk_size=4)
    # Native calls that need mending: "3" coerced to the declared integer, a trailing comma.
    scripts["native"] = Script(
        text="Checking.",
        tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris", "days": "3",}'}],
        chunk_size=3,
    )
    scripts["fault/http_500"] = Script(fault="http_500", error_message="the GPU caught fire")
    scripts["fault/error_event"] = Script(text=PLAIN, chunk_size=5, fault="error_event", cut_after=3)
    scripts["fault/cut"] = Script(text=HERMES, chunk_size=3, fault="cut", cut_after=4)
    return scripts


class Servers:
    def __init__(self) -> None:
        self.backend = ScriptedBackend(_scripts())
        self.backend_server = serve_in_thread(Recorder(self.backend.app))
        self.proxy_server = self.proxy()

    def proxy(self, **overrides: Any) -> RunningServer:
        settings = load_settings(env={}, overrides={"backend_url": self.backend_server.url + "/v1", **overrides})
        return serve_in_thread(create_app(settings))

    @property
    def url(self) -> str:
        """What the SDK is given: the proxy's root (it adds ``/v1/messages``)."""
        return self.proxy_server.url

    def last_request(self) -> dict[str, Any]:
        body: dict[str, Any] = self.backend.requests[-1]["body"]
        return body

    def stop(self) -> None:
        self.proxy_server.stop()
        self.backend_server.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def client(servers: Servers) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=servers.url, api_key="sk-client", max_retries=0, timeout=15.0) as c:
        yield c


USER = [{"role": "user", "content": "What is the weather in Paris?"}]


def tool_uses(message: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(b.name, b.input) for b in message.content if b.type == "tool_use"]


def check_tool_blocks(message: Any) -> None:
    """Text before tools; tool_use ids distinct non-empty strings; inputs objects."""
    kinds = [b.type for b in message.content]
    assert kinds == sorted(kinds, key=lambda k: {"thinking": 0, "text": 1, "tool_use": 2}[k]), kinds
    ids = [b.id for b in message.content if b.type == "tool_use"]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    assert all(isinstance(b.input, dict) for b in message.content if b.type == "tool_use")


# -- whole messages ----------------------------------------------------------------------------


def test_create_with_tools_gives_tool_use_blocks(servers: Servers, client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model="fmt/hermes", max_tokens=200, tools=TOOLS, messages=USER)
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "fmt/hermes"
    assert msg.id.startswith("msg_")
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert msg.content[0].text == "Sure."
    assert tool_uses(msg) == [("get_weather", PARIS)]
    assert msg.stop_reason == "tool_use" and msg.stop_sequence is None
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    check_tool_blocks(msg)
    sent = servers.last_request()
    assert sent["model"] == "fmt/hermes" and sent["max_tokens"] == 200 and "stream" not in sent
    assert sent["messages"] == [{"role": "user", "content": "What is the weather in Paris?"}]
    assert sent["tools"][0] == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast for a city.",
            "parameters": TOOLS[0]["input_schema"],
        },
    }


def test_native_calls_are_mended(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model="native", max_tokens=100, tools=TOOLS, messages=USER)
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert tool_uses(msg) == [("get_weather", PARIS)]
    assert msg.stop_reason == "tool_use"


@pytest.mark.parametrize("fmt", sorted(FORMAT_SCRIPTS))
@pytest.mark.parametrize("stream", [False, True])
def test_text_call_formats_come_out_as_tool_use(client: anthropic.Anthropic, fmt: str, stream: bool) -> None:
    expected = FORMAT_SCRIPTS[fmt][1]
    if stream:
        with client.messages.stream(model=f"fmt/{fmt}", max_tokens=200, tools=TOOLS, messages=USER) as s:
            msg = s.get_final_message()
    else:
        msg = client.messages.create(model=f"fmt/{fmt}", max_tokens=200, tools=TOOLS, messages=USER)
    assert tool_uses(msg) == expected
    assert msg.stop_reason == "tool_use"
    check_tool_blocks(msg)
    # Only whitespace-free prose is left as text (the call markup is gone).
    assert all("<" not in b.text and "[TOOL_CALLS]" not in b.text for b in msg.content if b.type == "text")


def test_plain_answer_without_tools(servers: Servers, client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="plain",
        max_tokens=50,
        messages=USER,
        stop_sequences=["###"],
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 20},  # the 2.x SDK has no sampling parameters
    )
    assert [b.type for b in msg.content] == ["text"] and msg.content[0].text == PLAIN
    assert msg.stop_reason == "end_turn"
    sent = servers.last_request()
    assert sent["stop"] == ["###"] and sent["temperature"] == 0.2 and sent["top_p"] == 0.9 and sent["top_k"] == 20
    assert "tools" not in sent


def test_thinking_block_only_when_asked(client: anthropic.Anthropic) -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    msg = client.messages.create(model="think", max_tokens=300, tools=TOOLS, messages=USER, thinking=thinking)
    assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"]
    assert msg.content[0].thinking == REASONING
    with client.messages.stream(model="think", max_tokens=300, tools=TOOLS, messages=USER, thinking=thinking) as s:
        streamed = s.get_final_message()
    assert [b.type for b in streamed.content] == ["thinking", "text", "tool_use"]
    assert streamed.content[0].thinking == REASONING
    assert tool_uses(streamed) == [("get_weather", PARIS)]
    plain = client.messages.create(model="think", max_tokens=300, tools=TOOLS, messages=USER)
    assert [b.type for b in plain.content] == ["text", "tool_use"]


# -- streams -------------------------------------------------------------------------------------


def test_stream_helper(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="fmt/hermes", max_tokens=200, tools=TOOLS, messages=USER) as s:
        text = "".join(s.text_stream)
        msg = s.get_final_message()
    assert text == "Sure."
    assert [b.type for b in msg.content] == ["text", "tool_use"]
    assert tool_uses(msg) == [("get_weather", PARIS)]
    assert msg.stop_reason == "tool_use" and msg.usage.output_tokens > 0

    partial = []
    snapshots = []
    with client.messages.stream(model="fmt/mistral", max_tokens=200, tools=TOOLS, messages=USER) as s:
        for event in s:
            if event.type == "input_json":
                partial.append(event.partial_json)
                snapshots.append(event.snapshot)
        msg = s.get_final_message()
    assert tool_uses(msg) == FORMAT_SCRIPTS["mistral"][1]
    # The two calls' fragments, in order: each call's JSON joins to its input.
    joined = "".join(partial)
    assert json.loads("[" + joined.replace("}{", "},{") + "]") == [PARIS, {"city": "Rome"}]
    assert snapshots[-1] == {"city": "Rome"}


def test_raw_stream_follows_the_wire_contract(client: anthropic.Anthropic) -> None:
    events = list(client.messages.create(model="fmt/mistral", max_tokens=200, tools=TOOLS, messages=USER, stream=True))
    first = events[0]
    assert first.type == "message_start"
    assert first.message.content == [] and first.message.stop_reason is None and first.message.role == "assistant"
    assert events[-1].type == "message_stop"
    assert events[-2].type == "message_delta"
    assert events[-2].delta.stop_reason == "tool_use" and events[-2].delta.stop_sequence is None
    assert events[-2].usage.output_tokens > 0
    # Per block: start, deltas, stop; indexes 0, 1, ... in order; tool_use starts with input {}.
    body = events[1:-2]
    blocks: list[tuple[int, str, str]] = []
    i = 0
    while i < len(body):
        start = body[i]
        assert start.type == "content_block_start" and start.index == len(blocks), start
        block = start.content_block
        assert block.type == "tool_use" and block.input == {} and block.name == "get_weather" and block.id
        i += 1
        fragments = []
        while body[i].type == "content_block_delta":
            assert body[i].index == start.index and body[i].delta.type == "input_json_delta"
            fragments.append(body[i].delta.partial_json)
            i += 1
        assert body[i].type == "content_block_stop" and body[i].index == start.index
        i += 1
        blocks.append((start.index, block.name, "".join(fragments)))
    assert [(n, json.loads(args)) for _, n, args in blocks] == FORMAT_SCRIPTS["mistral"][1]


def test_raw_sse_bytes_and_beta_path(servers: Servers) -> None:
    """Every event is ``event: <type>`` + ``data: {"type": <type>, ...}``; ``?beta=true`` is served."""
    body = {"model": "fmt/hermes", "max_tokens": 100, "stream": True, "tools": TOOLS, "messages": USER}
    resp = httpx.post(f"{servers.url}/v1/messages?beta=true", json=body, headers={"x-api-key": "k"}, timeout=15)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = [e for e in resp.text.split("\n\n") if e.strip()]
    names = []
    for raw in events:
        event_line, data_line = raw.split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        names.append(name)
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    starts = [json.loads(e.split("\n")[1][6:]) for e in events if e.startswith("event: content_block_start")]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use")]


def test_beta_client(servers: Servers, client: anthropic.Anthropic) -> None:
    msg = client.beta.messages.create(model="fmt/hermes", max_tokens=100, tools=TOOLS, messages=USER)  # type: ignore[arg-type]
    assert [(b.name, b.input) for b in msg.content if b.type == "tool_use"] == [("get_weather", PARIS)]
    assert msg.stop_reason == "tool_use"
    with client.beta.messages.stream(model="plain", max_tokens=100, messages=USER) as s:  # type: ignore[arg-type]
        assert "".join(s.text_stream) == PLAIN
    # Without the /v1 prefix too.
    resp = httpx.post(
        f"{servers.url}/messages", json={"model": "plain", "max_tokens": 10, "messages": USER}, timeout=15
    )
    assert resp.status_code == 200 and resp.json()["content"] == [{"type": "text", "text": PLAIN}]


def test_plain_stream_without_tools(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="plain", max_tokens=50, messages=USER) as s:
        text = "".join(s.text_stream)
        msg = s.get_final_message()
    assert text == PLAIN and msg.stop_reason == "end_turn"


@pytest.mark.parametrize("model", ["fmt/hermes", "plain"])
def test_backend_answering_whole_to_a_stream(client: anthropic.Anthropic, model: str) -> None:
    """A backend that ignores ``stream: true``: the answer still arrives as a Messages stream."""
    events = list(
        client.messages.create(model=WHOLE_PREFIX + model, max_tokens=100, tools=TOOLS, messages=USER, stream=True)
    )
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    with client.messages.stream(model=WHOLE_PREFIX + model, max_tokens=100, tools=TOOLS, messages=USER) as s:
        msg = s.get_final_message()
    if model == "plain":
        assert [b.text for b in msg.content] == [PLAIN] and msg.stop_reason == "end_turn"
    else:
        assert tool_uses(msg) == [("get_weather", PARIS)] and msg.stop_reason == "tool_use"


# -- requests the backend receives ---------------------------------------------------------------


def test_multi_turn_tool_results(servers: Servers, client: anthropic.Anthropic) -> None:
    messages: Any = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Rome", "days": 2}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny, 24 C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01B",
                    "content": [{"type": "text", "text": "city not found"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Summarise, please."},
            ],
        },
    ]
    system: Any = [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Answer in English.", "cache_control": {"type": "ephemeral"}},
    ]
    msg = client.messages.create(model="plain", max_tokens=100, system=system, tools=TOOLS, messages=messages)
    assert msg.content[0].text == PLAIN and msg.stop_reason == "end_turn"
    sent = servers.last_request()["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "tool", "user"]
    assert sent[0] == {"role": "system", "content": "You are terse.\n\nAnswer in English."}
    assert sent[1] == {"role": "user", "content": "Weather in Paris and Rome?"}
    assistant = sent[2]
    assert assistant["content"] == "Let me check."
    calls = assistant["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("toolu_01A", "function", "get_weather"),
        ("toolu_01B", "function", "get_weather"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Rome", "days": 2}]
    assert sent[3] == {"role": "tool", "tool_call_id": "toolu_01A", "content": "sunny, 24 C"}
    assert sent[4]["tool_call_id"] == "toolu_01B"
    assert "city not found" in sent[4]["content"] and "error" in sent[4]["content"].lower()
    assert sent[5] == {"role": "user", "content": "Summarise, please."}


def test_round_trip_of_a_streamed_call(servers: Servers, client: anthropic.Anthropic) -> None:
    """The SDK's own message goes back as history: its tool_use id is the call id sent back."""
    with client.messages.stream(model="fmt/hermes", max_tokens=100, tools=TOOLS, messages=USER) as s:
        first = s.get_final_message()
    (call,) = [b for b in first.content if b.type == "tool_use"]
    messages: Any = [
        *USER,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    client.messages.create(model="plain", max_tokens=100, tools=TOOLS, messages=messages)
    sent = servers.last_request()["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == PARIS
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}


@pytest.mark.parametrize(
    ("choice", "forwarded", "parallel"),
    [
        ({"type": "any"}, "required", None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, None),
    ],
)
def test_tool_choice_is_forwarded(
    servers: Servers, client: anthropic.Anthropic, choice: Any, forwarded: Any, parallel: Any
) -> None:
    msg = client.messages.create(model="fmt/hermes", max_tokens=100, tools=TOOLS, tool_choice=choice, messages=USER)
    assert tool_uses(msg) == [("get_weather", PARIS)]
    sent = servers.last_request()
    assert sent["tool_choice"] == forwarded
    assert sent.get("parallel_tool_calls") == parallel


def test_tool_choice_none_drops_calls(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(
        model="native", max_tokens=100, tools=TOOLS, tool_choice={"type": "none"}, messages=USER
    )
    assert [b.type for b in msg.content] == ["text"] and msg.stop_reason == "end_turn"


def test_image_blocks_become_image_urls(servers: Servers, client: anthropic.Anthropic) -> None:
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "What is this?"},
    ]
    client.messages.create(model="plain", max_tokens=10, messages=[{"role": "user", "content": content}])
    assert servers.last_request()["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]


def test_translation_of_a_request_is_pure() -> None:
    req = {
        "model": "m",
        "system": "be brief",
        "max_tokens": 5,
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
        "tools": [*TOOLS, {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
    }
    chat = to_chat_request(req)
    assert chat["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a\n\nb"}]
    assert [t["function"]["name"] for t in chat["tools"]] == ["get_weather", "calculate"]  # built-in tool dropped
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert set(chat) == {"model", "messages", "max_tokens", "tools", "stream", "stream_options"}


# -- count_tokens --------------------------------------------------------------------------------


def test_count_tokens(servers: Servers, client: anthropic.Anthropic) -> None:
    before = len(servers.backend.requests)
    short = client.messages.count_tokens(model="plain", messages=USER).input_tokens
    longer = client.messages.count_tokens(
        model="plain", system="You are a weather bot. " * 40, tools=TOOLS, messages=USER
    ).input_tokens
    image: Any = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}]
    with_image = client.messages.count_tokens(model="plain", messages=[{"role": "user", "content": image}])
    beta = client.beta.messages.count_tokens(model="plain", messages=USER)  # type: ignore[arg-type]
    assert 0 < short < longer
    assert len(json.dumps(USER)) // 8 <= short <= len(json.dumps(USER))
    assert IMAGE_TOKENS <= with_image.input_tokens < IMAGE_TOKENS + 100  # the base64 data is not text
    assert beta.input_tokens == short
    assert len(servers.backend.requests) == before, "count_tokens never asks the backend"


# -- errors and auth -----------------------------------------------------------------------------


def test_backend_http_error(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.InternalServerError) as info:
        client.messages.create(model="fault/http_500", max_tokens=10, tools=TOOLS, messages=USER)
    assert info.value.status_code == 500
    body: Any = info.value.body
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == "api_error" and "the GPU caught fire" in body["error"]["message"]
    stream = client.messages.stream(model="fault/http_500", max_tokens=10, messages=USER)
    with pytest.raises(anthropic.InternalServerError), stream as s:  # also before a stream starts
        s.get_final_message()


def test_invalid_request(client: anthropic.Anthropic, servers: Servers) -> None:
    bad: Any = [{"role": "system", "content": "no"}]
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="plain", max_tokens=10, messages=bad)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    resp = httpx.post(f"{servers.url}/v1/messages", content=b"{not json", timeout=15)
    assert resp.status_code == 400 and resp.json()["type"] == "error"
    assert resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["fault/error_event", "fault/cut"])
def test_error_in_the_stream(servers: Servers, client: anthropic.Anthropic, model: str) -> None:
    received = []
    stream = client.messages.stream(model=model, max_tokens=50, tools=TOOLS, messages=USER)
    with pytest.raises(anthropic.APIStatusError) as info, stream as s:
        for event in s:
            received.append(event.type)
    assert received[0] == "message_start" and "message_stop" not in received
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    # On the wire: the error event ends the stream (no message_delta, no message_stop).
    body = {"model": model, "max_tokens": 50, "stream": True, "tools": TOOLS, "messages": USER}
    raw = httpx.post(f"{servers.url}/v1/messages", json=body, timeout=15).text
    names = [e.split("\n")[0] for e in raw.split("\n\n") if e.strip()]
    assert names[0] == "event: message_start" and names[-1] == "event: error"
    assert "event: message_delta" not in names and "event: message_stop" not in names


def test_plain_stream_error_keeps_the_text_before_it(servers: Servers) -> None:
    body = {"model": "fault/error_event", "max_tokens": 50, "stream": True, "messages": USER}
    raw = httpx.post(f"{servers.url}/v1/messages", json=body, timeout=15).text
    deltas = [json.loads(e.split("\n")[1][6:]) for e in raw.split("\n\n") if e.startswith("event: content_block_delta")]
    text = "".join(d["delta"]["text"] for d in deltas)
    assert text and PLAIN.startswith(text)
    assert raw.rstrip().split("\n\n")[-1].startswith("event: error")


def test_proxy_key(servers: Servers) -> None:
    with servers.proxy(api_key="sk-proxy") as proxy:
        good = anthropic.Anthropic(base_url=proxy.url, api_key="sk-proxy", max_retries=0)
        bad = anthropic.Anthropic(base_url=proxy.url, api_key="sk-wrong", max_retries=0)
        msg = good.messages.create(model="plain", max_tokens=10, messages=USER)
        assert msg.content[0].text == PLAIN  # type: ignore[union-attr]
        assert "authorization" not in servers.backend.requests[-1]["headers"], "the proxy's key stays here"
        with pytest.raises(anthropic.AuthenticationError) as info:
            bad.messages.create(model="plain", max_tokens=10, messages=USER)
        assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
        with pytest.raises(anthropic.AuthenticationError):
            bad.messages.count_tokens(model="plain", messages=USER)


def test_client_key_is_forwarded_as_bearer(servers: Servers, client: anthropic.Anthropic) -> None:
    client.messages.create(model="plain", max_tokens=10, messages=USER)
    assert servers.backend.requests[-1]["headers"]["authorization"] == "Bearer sk-client"
    with servers.proxy(backend_api_key="sk-backend") as proxy:
        other = anthropic.Anthropic(base_url=proxy.url, api_key="sk-client", max_retries=0)
        other.messages.create(model="plain", max_tokens=10, messages=USER)
        assert servers.backend.requests[-1]["headers"]["authorization"] == "Bearer sk-backend"
