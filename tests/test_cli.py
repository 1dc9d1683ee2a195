"""The ``toolmend`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TEXT = 'Sure.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris",}}\n</tool_call>'


def run(*args: str, stdin: str = TEXT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolmend", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_parse_prints_openai_message() -> None:
    r = run("parse")
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)
    assert msg["role"] == "assistant"
    assert msg["content"] == "Sure."
    call = msg["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_parse_stream_prints_chunks() -> None:
    r = run("parse", "--stream", "--chunk-size", "3")
    assert r.returncode == 0, r.stderr
    chunks = [json.loads(line) for line in r.stdout.splitlines()]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    content = "".join(d.get("content", "") for d in deltas)
    assert content == "Sure."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"]
    args = "".join(tc["function"].get("arguments", "") for tc in calls)
    assert json.loads(args) == {"city": "Paris"}


def test_tools_file_and_verbose(tmp_path: Path) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"type": "function", "function": {"name": "other", "parameters": {}}}]))
    r = run("parse", "--tools", str(tools), "-v")
    assert r.returncode == 0
    msg = json.loads(r.stdout)
    assert "tool_calls" not in msg
    assert "unknown_tool" in r.stderr


def test_bad_format_is_a_clean_error() -> None:
    r = run("parse", "--format", "nonsense")
    assert r.returncode == 2
    assert "unknown format" in r.stderr and "hermes" in r.stderr


def test_formats_command() -> None:
    r = run("formats", stdin="")
    assert r.returncode == 0
    assert "hermes" in r.stdout


def test_demo_shows_every_scenario_mended() -> None:
    r = run("demo", "--width", "100", stdin="")
    assert r.returncode == 0, r.stderr
    from toolmend.demo import SCENARIOS

    assert f"toolmend turned {len(SCENARIOS)} of {len(SCENARIOS)}" in r.stdout
    assert r.stdout.count("WITH toolmend") == len(SCENARIOS)
    assert "call get_weather(" in r.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_runs_the_proxy_until_interrupted(tmp_path: Path) -> None:
    import signal
    import time
    import urllib.request

    from toolmend.scripted import Script, ScriptedBackend, serve_in_thread

    backend = ScriptedBackend({"m": Script(text='<tool_call>{"name": "f", "arguments": {}}</tool_call>')})
    port = _free_port()
    config = tmp_path / "toolmend.toml"
    config.write_text('[timeouts]\nread = 30\n[formats]\n"m" = "hermes"\n')
    with serve_in_thread(backend.app) as b:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "toolmend",
                "serve",
                "--backend",
                b.url,
                "--port",
                str(port),
                "--config",
                str(config),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                        health = json.loads(resp.read())
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "toolmend serve did not start"
                    time.sleep(0.1)
            assert health["backend"] == {"url": b.url + "/v1", "reachable": True}
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            }
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                answer = json.loads(resp.read())
            assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "f"
            assert answer["choices"][0]["finish_reason"] == "tool_calls"
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
    assert f"proxy for {b.url}/v1" in err


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_serve_with_workers_shares_the_port_and_sums_the_metrics() -> None:
    """``--workers 2``: two processes answer on one port; /metrics counts every worker's
    requests, whichever worker answers it."""
    import signal
    import time
    import urllib.request

    from toolmend.scripted import Script, ScriptedBackend, serve_in_thread

    backend = ScriptedBackend({"m": Script(text='<tool_call>{"name": "f", "arguments": {}}</tool_call>')})
    port = _free_port()
    with serve_in_thread(backend.app) as b:
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolmend", "serve", "--backend", b.url, "--port", str(port), "--workers", "2"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                        break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, "toolmend serve did not start"
                    time.sleep(0.1)
            assert len(_children(proc.pid)) >= 2  # uvicorn's worker processes (its supervisor is proc)
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            }
            sent = 16
            for _ in range(sent):  # a new connection each: the kernel hands them to either worker
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(), method="POST"
                )
                with urllib.request.urlopen(req, timeout=10) as resp:
                    answer = json.loads(resp.read())
                assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "f"
            for _ in range(6):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                    text = resp.read().decode()
                counted = [
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("toolmend_requests_total{") and 'status="200"' in line
                ]
                assert sum(counted) == sent, text
                assert f'toolmend_tool_calls_total{{format="hermes",source="text"}} {float(sent)}' in text
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "(2 workers)" in err


def test_serve_rejects_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('port = "not a port"\n[formats]\n"x*" = "no_such_format"\n')
    r = run("serve", "--backend", "http://127.0.0.1:9", "--config", str(config), stdin="")
    assert r.returncode == 2
    assert "port" in r.stderr and "no_such_format" in r.stderr


def test_serve_workers_come_from_flag_env_or_file_and_are_checked(tmp_path: Path) -> None:
    from toolmend.config import load_settings

    config = tmp_path / "toolmend.toml"
    config.write_text("workers = 3\n")
    assert load_settings(config, env={}).workers == 3
    assert load_settings(config, env={"TOOLMEND_WORKERS": "4"}).workers == 4
    assert load_settings(config, env={"TOOLMEND_WORKERS": "4"}, overrides={"workers": 2}).workers == 2
    assert load_settings(env={}).workers == 1
    r = run("serve", "--backend", "http://127.0.0.1:9", "--workers", "0", stdin="")
    assert r.returncode == 2
    assert "workers" in r.stderr and "greater than or equal to 1" in r.stderr


def test_serve_says_what_it_tried_when_no_backend_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from toolmend.config import Settings
    from toolmend.proxy import probe, serve

    dead = probe.Candidate("nothing here", _free_port())
    monkeypatch.setattr(serve, "find_backend", lambda: probe.find_backend((dead,), timeout=1.0))
    with pytest.raises(serve.ServeError) as e:
        serve.resolve_backend(Settings())
    assert f"nothing here {dead.port}" in str(e.value)
    assert "--backend" in str(e.value)


def test_models_lists_the_profiles() -> None:
    r = run("models", stdin="")
    assert r.returncode == 0, r.stderr
    from toolmend.profiles import Profiles

    for p in Profiles.shipped().profiles:
        assert p.name in r.stdout
    assert "temperature=0.6" in r.stdout


def test_models_reports_a_bad_profiles_file(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text('[[profile]]\nname = "x"\npatterns = []\n')
    r = run("models", "--profiles", str(f), stdin="")
    assert r.returncode == 2 and "patterns" in r.stderr


def test_serve_reports_a_missing_profiles_file() -> None:
    r = run("serve", "--backend", "http://127.0.0.1:9", "--profiles", "/no/such/profiles.toml", stdin="")
    assert r.returncode == 2 and "/no/such/profiles.toml" in r.stderr
