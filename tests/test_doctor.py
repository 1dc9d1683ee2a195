"""``toolmend doctor`` against the scripted backend: a clean native server, each wire quirk,
calls printed as text in several formats, stripped special tokens, ``tool_choice`` handling,
faults, an unreachable server, and the command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from toolmend.doctor import CHECKS, Report, _analyze_stream, format_report, run_doctor
from toolmend.scripted import QUIRKS, Script, ScriptedBackend, serve_in_thread

WEATHER = [
    {"name": "get_weather", "arguments": {"city": "Paris"}},
    {"name": "get_weather", "arguments": {"city": "Tokyo"}},
]
TIME = [{"name": "get_time", "arguments": {"timezone": "Europe/Paris"}}]
NATIVE = Script(tool_calls=WEATHER)
PROSE = Script(text="I cannot look that up.")
FORCED_TIME = Script(tool_calls=TIME)
ONE_CALL = Script(tool_calls=WEATHER[:1])
ALL_CHECKS = set(CHECKS)


@pytest.fixture(scope="module")
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture(scope="module")
def url(backend: ScriptedBackend) -> Iterator[str]:
    with serve_in_thread(backend.app) as server:
        yield server.url


def attempts(
    main: Script,
    stream: Script | None = None,
    none: Script = PROSE,
    named: Script = FORCED_TIME,
    required: Script = ONE_CALL,
) -> list[Script]:
    """The doctor's requests in order: plain, streamed, tool_choice none, named, required."""
    return [main, stream or main, none, named, required]


def probe(backend: ScriptedBackend, url: str, model: str, scripts: list[Script]) -> Report:
    backend.add(model, scripts)
    report = run_doctor(url, model=model, timeout=10)
    assert [c.name for c in report.checks] == list(CHECKS)
    return report


def flagged(report: Report) -> set[str]:
    return {c.name for c in report.checks if c.status in ("warn", "fail")}


def test_a_clean_native_backend_needs_nothing(backend: ScriptedBackend, url: str) -> None:
    report = probe(backend, url, "clean-native", attempts(NATIVE))
    assert flagged(report) == set(), format_report(report)
    assert report.status("special_tokens") == "skip"
    assert {c.status for c in report.checks} == {"ok", "skip"}
    assert report.verdict == "direct" and report.exit_code == 0
    assert report.native_calls and report.text_format is None
    assert report.tool_choice == {"none": "honoured", "named": "honoured", "required": "honoured"}
    assert report.config["use_proxy"] is False and report.config["formats"] == {}
    assert "proxy is not needed" in report.recommendations[0]
    assert "get_weather" in report.check("calls").detail

    # What was sent: the probes in order, each with both tools.
    bodies = [r["body"] for r in backend.requests if r["body"] and r["body"].get("model") == "clean-native"]
    assert len(bodies) == 5
    assert [b.get("stream", False) for b in bodies] == [False, True, False, False, False]
    assert [b.get("tool_choice") for b in bodies] == [
        None,
        None,
        "none",
        {"type": "function", "function": {"name": "get_time"}},
        "required",
    ]
    for b in bodies:
        assert {t["function"]["name"] for t in b["tools"]} == {"get_weather", "get_time"}


QUIRK_FLAGS: dict[str, tuple[set[str], str]] = {
    "ollama_index0": ({"stream_index"}, "two calls share index 0"),
    "object_arguments": ({"call_shape", "stream_arguments"}, "JSON object, not a string"),
    "stop_with_calls": ({"call_shape", "stream_finish"}, "'stop'"),
    "no_ids": ({"call_shape", "stream_call_start"}, "no id"),
    "repeat_name": ({"stream_name_once"}, "name is repeated"),
    "name_late": ({"stream_call_start"}, "name comes after its first delta"),
    "no_role": ({"stream_role"}, "no role"),
    "content_and_calls_same_delta": ({"stream_content_separate"}, "both content and tool_calls"),
}


def test_every_quirk_has_a_case() -> None:
    assert set(QUIRK_FLAGS) == set(QUIRKS)


@pytest.mark.parametrize("quirk", sorted(QUIRK_FLAGS))
def test_each_quirk_is_flagged_by_its_check(backend: ScriptedBackend, url: str, quirk: str) -> None:
    text = "Checking both cities." if quirk == "content_and_calls_same_delta" else None
    script = Script(text=text, tool_calls=WEATHER, quirks={quirk})
    report = probe(backend, url, f"quirk-{quirk}", attempts(script))
    expected, words = QUIRK_FLAGS[quirk]
    assert flagged(report) == expected, format_report(report)
    for name in expected:
        assert report.status(name) == "warn"
    assert any(words in report.check(n).detail for n in expected), format_report(report)
    assert report.verdict == "proxy" and report.exit_code == 1
    assert report.config["use_proxy"] is True
    assert "toolmend serve --backend" in report.recommendations[0]


def test_index0_without_ids_is_still_told_apart(backend: ScriptedBackend, url: str) -> None:
    script = Script(tool_calls=WEATHER, quirks={"ollama_index0", "no_ids"})
    report = probe(backend, url, "index0-no-ids", attempts(script))
    assert "two calls share index 0" in report.check("stream_index").detail
    assert report.status("stream_arguments") == "ok"  # each call's own arguments still parse


TEXT_FORMATS = {
    "hermes": "\n".join(
        f'<tool_call>\n{{"name": "get_weather", "arguments": {{"city": "{c}"}}}}\n</tool_call>'
        for c in ("Paris", "Tokyo")
    ),
    "mistral_array": '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}}, '
    '{"name": "get_weather", "arguments": {"city": "Tokyo"}}]',
    "mistral_v13": '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}',
    "llama3_json": '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    "qwen3_xml": "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
}


@pytest.mark.parametrize("fmt", sorted(TEXT_FORMATS))
def test_calls_as_text_report_the_format_and_pin_it(backend: ScriptedBackend, url: str, fmt: str) -> None:
    model = f"text-{fmt}"
    report = probe(backend, url, model, attempts(Script(text=TEXT_FORMATS[fmt])))
    assert report.text_format == fmt
    assert not report.native_calls and not report.markers_stripped
    assert report.status("calls") == "warn" and fmt in report.check("calls").detail
    assert report.status("stream") == "warn" and fmt in report.check("stream").detail
    assert report.status("special_tokens") == "ok"
    assert report.status("call_shape") == "skip"
    assert report.status("stream_call_start") == "skip"
    assert report.verdict == "proxy" and report.exit_code == 1
    assert report.config["formats"] == {model: fmt}
    assert any(f"TOOLMEND_FORMATS='{model}={fmt}'" in r for r in report.recommendations)
    assert not any("skip_special_tokens" in r for r in report.recommendations)


def test_bare_json_from_a_model_whose_format_has_markers(backend: ScriptedBackend, url: str) -> None:
    # A Qwen model prints hermes calls; here the <tool_call> wrapper is gone: bare JSON.
    model = "qwen2.5-7b-instruct-stripped"
    body = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    report = probe(backend, url, model, attempts(Script(text=body)))
    check = report.check("special_tokens")
    assert check.status == "warn"
    assert "<tool_call>" in check.detail and "hermes" in check.detail and "strips" in check.detail
    assert report.markers_stripped and report.text_format == "generic_json"
    assert report.config["keep_special_tokens"] is True
    assert report.config["formats"] == {}  # pinning the stripped form would break once fixed
    assert report.exit_code == 1
    advice = " ".join(report.recommendations)
    assert "skip_special_tokens" in advice and "--special" in advice


def test_bare_json_from_an_unknown_model_is_a_warning(backend: ScriptedBackend, url: str) -> None:
    body = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
    report = probe(backend, url, "bare-json", attempts(Script(text=body)))
    assert report.status("special_tokens") == "warn"
    assert "bare JSON" in report.check("special_tokens").detail
    assert report.exit_code == 1


def test_a_call_body_without_its_marker_is_found(backend: ScriptedBackend, url: str) -> None:
    # Qwen3-Coder's XML call with the <tool_call> token removed: no parser sees a call in it.
    body = "<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>"
    report = probe(backend, url, "xml-stripped", attempts(Script(text=body)))
    assert report.status("calls") == "warn"
    assert "without its <tool_call>" in report.check("calls").detail
    assert report.status("special_tokens") == "warn" and "qwen3_xml" in report.check("special_tokens").detail
    assert report.exit_code == 1
    assert "skip_special_tokens" in report.recommendations[0]
    assert "can tell them from text" in report.recommendations[0]


def test_tool_choice_none_ignored(backend: ScriptedBackend, url: str) -> None:
    report = probe(backend, url, "ignores-none", attempts(NATIVE, none=NATIVE))
    assert flagged(report) == {"tool_choice_none"}
    assert "ignored" in report.check("tool_choice_none").detail
    assert report.tool_choice["none"] == "ignored"
    assert report.exit_code == 0  # tool calling itself works; the caveat is in the advice
    assert any("leave out tools" in r for r in report.recommendations)


def test_tool_choice_none_ignored_with_a_text_call(backend: ScriptedBackend, url: str) -> None:
    text = Script(text=TEXT_FORMATS["hermes"])
    report = probe(backend, url, "ignores-none-text", attempts(text, none=text, named=text, required=PROSE))
    assert report.status("tool_choice_none") == "warn"
    assert "as text" in report.check("tool_choice_none").detail
    assert report.tool_choice == {"none": "ignored", "named": "ignored", "required": "ignored"}
    assert "got get_weather" in report.check("tool_choice_named").detail


def test_tool_choice_named_and_required_ignored(backend: ScriptedBackend, url: str) -> None:
    report = probe(backend, url, "ignores-choice", attempts(NATIVE, named=NATIVE, required=PROSE))
    assert flagged(report) == {"tool_choice_named", "tool_choice_required"}
    assert report.tool_choice == {"none": "honoured", "named": "ignored", "required": "ignored"}


def test_tool_choice_probe_error_is_untested(backend: ScriptedBackend, url: str) -> None:
    report = probe(backend, url, "choice-500", attempts(NATIVE, named=Script(fault="http_500")))
    assert report.status("tool_choice_named") == "warn"
    assert "HTTP 500" in report.check("tool_choice_named").detail
    assert report.tool_choice["named"] == "untested"


def test_no_call_at_all_is_unusable(backend: ScriptedBackend, url: str) -> None:
    report = probe(backend, url, "never-calls", attempts(PROSE, required=PROSE))
    assert report.status("calls") == "fail"
    assert "I cannot look that up." in report.check("calls").detail
    assert report.verdict == "unusable" and report.exit_code == 2
    assert "--jinja" in report.recommendations[0]


def test_streaming_faults_fail(backend: ScriptedBackend, url: str) -> None:
    report = probe(
        backend, url, "stream-error", attempts(NATIVE, stream=Script(tool_calls=WEATHER, fault="error_event"))
    )
    assert report.status("stream") == "fail" and "error event" in report.check("stream").detail
    assert report.exit_code == 2
    report = probe(
        backend, url, "stream-garbled", attempts(NATIVE, stream=Script(tool_calls=WEATHER, fault="malformed_sse"))
    )
    assert report.status("stream") == "fail" and "not JSON" in report.check("stream").detail
    cut = Script(tool_calls=WEATHER, fault="cut", cut_after=3)
    report = probe(backend, url, "stream-cut", attempts(NATIVE, stream=cut))
    assert report.status("stream") == "fail" and "broke off" in report.check("stream").detail
    assert report.exit_code == 2


def test_unknown_model_fails_the_tools_request(backend: ScriptedBackend, url: str) -> None:
    report = run_doctor(url, model="not-served", timeout=10)
    assert report.status("model") == "warn" and "not listed" in report.check("model").detail
    assert report.status("tools") == "fail" and "HTTP 404" in report.check("tools").detail
    assert report.status("stream") == "skip"
    assert report.exit_code == 2
    assert "--model" in report.recommendations[0]


def test_without_model_the_first_listed_is_used() -> None:
    solo = ScriptedBackend({"only-model": attempts(NATIVE)})
    with serve_in_thread(solo.app) as server:
        report = run_doctor(server.url + "/v1/", timeout=10)
    assert report.model == "only-model"
    assert report.status("model") == "ok" and "first listed" in report.check("model").detail
    assert report.exit_code == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_backend() -> None:
    report = run_doctor(f"http://127.0.0.1:{free_port()}", model="m", timeout=5)
    assert report.status("server") == "fail" and "cannot connect" in report.check("server").detail
    assert {c.status for c in report.checks[1:]} == {"skip"}
    assert report.verdict == "unusable" and report.exit_code == 2
    assert "start the backend" in report.recommendations[0]


def test_invalid_url() -> None:
    report = run_doctor("localhost:8000", timeout=5)
    assert report.status("server") == "fail" and "http://" in report.check("server").detail
    assert report.exit_code == 2


def test_ascii_report() -> None:
    report = Report(backend_url="http://x/v1", model="m", verdict="proxy")
    report.add("server", "ok", "fine")
    report.add("model", "fail", "bad")
    text = format_report(report, ascii_only=True)
    assert text.isascii()
    assert "+ server reachable" in text and "x model listed" in text and "(exit 1)" in text


# --- the command line --------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "toolmend", "doctor", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        env=env,
    )


def test_cli_clean_backend(backend: ScriptedBackend, url: str) -> None:
    backend.add("cli-clean", attempts(NATIVE))
    r = cli("--backend", url, "--model", "cli-clean", "--timeout", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"toolmend doctor: {url}/v1, model cli-clean"
    assert sum(line.startswith("✓ ") for line in lines) == len(CHECKS) - 1
    assert any(line.startswith("- special tokens") for line in lines)
    assert "Verdict: the backend works for tool calling as it is (exit 0)" in r.stdout
    assert "Recommended: point the client at" in r.stdout


def test_cli_text_backend_recommends_the_proxy(backend: ScriptedBackend, url: str) -> None:
    backend.add("cli-hermes", attempts(Script(text=TEXT_FORMATS["hermes"])))
    r = cli("--backend", url, "--model", "cli-hermes", "--timeout", "10")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "! tool calls" in r.stdout and "hermes format" in r.stdout
    assert "Recommended: run `toolmend serve --backend" in r.stdout
    assert "TOOLMEND_FORMATS='cli-hermes=hermes'" in r.stdout


def test_cli_json(backend: ScriptedBackend, url: str) -> None:
    backend.add("cli-json", attempts(Script(tool_calls=WEATHER, quirks={"repeat_name"})))
    r = cli("--backend", url, "--model", "cli-json", "--json", "--timeout", "10")
    assert r.returncode == 1, r.stdout + r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    assert data["exit_code"] == 1 and data["verdict"] == "proxy"
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert statuses["stream_name_once"] == "warn"
    assert set(statuses) == ALL_CHECKS


def test_cli_unreachable() -> None:
    r = cli("--backend", f"http://127.0.0.1:{free_port()}/v1", "--model", "m", "--timeout", "5")
    assert r.returncode == 2
    assert "✗ server reachable" in r.stdout
    assert "(exit 2)" in r.stdout


# --- servers the scripted backend cannot imitate -------------------------------------------------


def odd_server(models_status: int, completion: dict[str, Any]) -> Starlette:
    """No usable model list (``models_status``), and ``completion`` as JSON even for streams."""

    async def models(request: Request) -> Response:
        return JSONResponse({"error": {"message": "nope"}}, status_code=models_status)

    async def chat(request: Request) -> Response:
        return JSONResponse(completion)

    return Starlette(
        routes=[Route("/v1/models", models, methods=["GET"]), Route("/v1/chat/completions", chat, methods=["POST"])]
    )


def completion(calls: list[dict[str, Any]]) -> dict[str, Any]:
    tool_calls = [
        {"id": f"call{i}", "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
        for i, c in enumerate(calls)
    ]
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


def test_no_model_list_and_json_for_a_stream() -> None:
    with serve_in_thread(odd_server(404, completion(WEATHER))) as server:
        report = run_doctor(server.url, model="m", timeout=10)
        without_model = run_doctor(server.url, timeout=10)
    assert report.status("server") == "warn" and "HTTP 404" in report.check("server").detail
    assert report.status("model") == "skip"
    assert report.status("calls") == "ok" and report.status("call_shape") == "ok"
    assert report.status("stream") == "warn" and "one JSON body" in report.check("stream").detail
    assert report.status("stream_role") == "skip"
    assert report.exit_code == 1  # the proxy turns such an answer into a stream
    assert without_model.status("server") == "fail" and "--model" in without_model.check("server").detail
    assert without_model.exit_code == 2


def test_a_key_is_needed() -> None:
    with serve_in_thread(odd_server(401, completion(WEATHER))) as server:
        report = run_doctor(server.url, model="m", timeout=10)
    assert report.status("server") == "fail" and "--api-key" in report.check("server").detail
    assert report.exit_code == 2
    assert "--api-key" in report.recommendations[0]


# --- stream shapes no quirk produces -------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def head(index: int, cid: str, name: str, args: str = "") -> dict[str, Any]:
    return {"index": index, "id": cid, "type": "function", "function": {"name": name, "arguments": args}}


def frag(index: int, args: str) -> dict[str, Any]:
    return {"index": index, "function": {"arguments": args}}


def issues_of(chunks: list[dict[str, Any]]) -> dict[str, list[str]]:
    return _analyze_stream(chunks).issues.by_check


def test_stream_canonical_has_no_issues() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [head(0, "a", "get_weather")]}),
        chunk({"tool_calls": [frag(0, '{"city": ')]}),
        chunk({"tool_calls": [frag(0, '"Paris"}')]}),
        chunk({"tool_calls": [head(1, "b", "get_time", '{"timezone": "UTC"}')]}),
        chunk({}, "tool_calls"),
    ]
    found = _analyze_stream(chunks)
    assert found.issues.by_check == {}
    assert [(c.name, json.loads(c.arguments)) for c in found.calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"timezone": "UTC"}),
    ]


def test_stream_finish_in_the_last_call_chunk() -> None:
    chunks = [chunk({"role": "assistant"}), chunk({"tool_calls": [head(0, "a", "get_weather", "{}")]}, "tool_calls")]
    assert issues_of(chunks) == {"stream_finish": ["finish_reason shares its chunk with a call delta"]}


def test_stream_index_from_one_interleaving_and_missing_index() -> None:
    from_one = [
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [head(1, "a", "get_weather", "{}")]}),
        chunk({}, "tool_calls"),
    ]
    assert issues_of(from_one) == {"stream_index": ["call 0 has index 1, expected 0"]}
    interleaved = [
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [head(0, "a", "get_weather", '{"city":')]}),
        chunk({"tool_calls": [head(1, "b", "get_time", '{"timezone": "UTC"}')]}),
        chunk({"tool_calls": [frag(0, ' "Paris"}')]}),
        chunk({}, "tool_calls"),
    ]
    assert list(issues_of(interleaved)) == ["stream_index"]
    no_index = [
        chunk({"role": "assistant"}),
        chunk(
            {"tool_calls": [{"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}
        ),
        chunk({}, "tool_calls"),
    ]
    assert issues_of(no_index) == {"stream_index": ["a call delta has no integer index"]}


def test_stream_resent_arguments_and_missing_function() -> None:
    resent = [
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [head(0, "a", "get_weather", '{"city": "Paris"}')]}),
        chunk({"tool_calls": [frag(0, '{"city": "Paris"}')]}),
        chunk({}, "tool_calls"),
    ]
    assert list(issues_of(resent)) == ["stream_arguments"]
    bare = [
        chunk({"role": "assistant"}),
        chunk({"tool_calls": [head(0, "a", "get_weather", '{"city": "Paris"}')]}),
        chunk({"tool_calls": [{"index": 0}]}),
        chunk({}, "tool_calls"),
    ]
    assert issues_of(bare) == {"stream_arguments": ["a call delta has no function object"]}


def test_cli_without_backend_uses_the_probe(
    backend: ScriptedBackend, url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolmend import cli
    from toolmend.proxy import probe as probe_module
    from toolmend.proxy.probe import Candidate

    port = int(url.rsplit(":", 1)[1])
    found = Candidate("Scripted", port)

    async def find_one(*args: Any, **kwargs: Any) -> tuple[Candidate | None, list[Candidate]]:
        return found, [found]

    backend.add("cli-probed", attempts(NATIVE))
    monkeypatch.setattr(probe_module, "find_backend", find_one)
    assert cli.main(["doctor", "--model", "cli-probed", "--timeout", "10"]) == 0
    out, err = capsys.readouterr()
    assert f"found Scripted at {found.url}" in err
    assert out.startswith(f"toolmend doctor: {found.url}, model cli-probed")

    async def find_none(*args: Any, **kwargs: Any) -> tuple[Candidate | None, list[Candidate]]:
        return None, [Candidate("Nothing", 9)]

    monkeypatch.setattr(probe_module, "find_backend", find_none)
    assert cli.main(["doctor"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no backend answers on Nothing (http://127.0.0.1:9/v1)" in err
