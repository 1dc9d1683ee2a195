"""The ``toolmend`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from toolmend import ToolmendError, __version__, formats
from toolmend._core import StreamParser, Tools, parse
from toolmend.openai_message import deltas_from_events, finish_reason, message_from_result


def _load_tools(path: str | None) -> Tools | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        data: Any = json.load(f)
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    return Tools(data)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    obj = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return json.dumps(obj, ensure_ascii=False)


def _read_chunks(stream: TextIO, size: int) -> Any:
    while True:
        data = stream.read(size) if size > 0 else stream.readline()
        if not data:
            return
        yield data


def cmd_parse(args: argparse.Namespace) -> int:
    tools = _load_tools(args.tools)
    fmt = args.format
    if args.stream:
        p = StreamParser(tools=tools, format=fmt, model=args.model, repair=not args.no_repair)
        print(_chunk({"role": "assistant", "content": ""}), flush=True)
        for data in _read_chunks(sys.stdin, args.chunk_size):
            for d in deltas_from_events(p.feed(data)):
                print(_chunk(d), flush=True)
        for d in deltas_from_events(p.finish()):
            print(_chunk(d), flush=True)
        result = p.result()
        print(_chunk({}, finish_reason(result)), flush=True)
    else:
        text = sys.stdin.read()
        result = parse(text, tools=tools, format=fmt, model=args.model, repair=not args.no_repair)
        print(json.dumps(message_from_result(result), ensure_ascii=False, indent=None if args.compact else 2))
    if args.verbose:
        print(f"format: {result.format}", file=sys.stderr)
        for diag in result.diagnostics:
            print(f"{diag.kind} [{diag.start}:{diag.end}]: {diag.message}", file=sys.stderr)
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    for f in formats():
        print(f"{f.name:18} {f.models}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from toolmend.config import ConfigError, load_settings
    from toolmend.proxy.serve import ServeError, serve

    overrides = {
        "backend_url": args.backend,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "api_key": args.api_key,
        "backend_api_key": args.backend_api_key,
        "middleware.recommended_sampling": True if args.recommended_sampling else None,
        "middleware.respond_tool": True if args.respond_tool else None,
        "middleware.max_attempts": args.max_attempts,
        "middleware.profiles": args.profiles,
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
        serve(settings, log_level=args.log_level)
    except (ConfigError, ServeError) as e:
        print(f"toolmend: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from toolmend.profiles import Profiles

    profiles = Profiles.shipped().with_file(args.profiles)
    for p in profiles.profiles:
        sampling = ", ".join(f"{k}={v}" for k, v in p.sampling.items()) or "-"
        print(f"{p.name:18} format {p.format or 'auto':14} quirks {', '.join(sorted(p.quirks)) or '-'}")
        print(f"{'':18} models {', '.join(p.patterns)}")
        print(f"{'':18} sampling {sampling}" + (f"  (from {p.source})" if p.source else ""))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from toolmend.evaluation import corpus_cases, own_cases, run_eval

    cases = [] if args.no_own else own_cases()
    if args.corpus:
        exceptions = Path(args.exceptions) if args.exceptions else None
        cases += corpus_cases(Path(args.corpus), exceptions)
    if not cases:
        print("toolmend: nothing to evaluate (give --corpus or drop --no-own)", file=sys.stderr)
        return 2

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"  {done}/{total} cases", file=sys.stderr, flush=True)

    tally = run_eval(cases, on_case=progress)
    print(tally.table())
    if args.failures:
        for (mode, setup), ids in sorted(tally.failures.items()):
            print(f"\n{mode} / {setup}: {len(ids)} failed: {', '.join(ids[:50])}" + (" ..." if len(ids) > 50 else ""))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from toolmend.demo import SCENARIOS, run

    fixed = run(width=args.width)
    return 0 if fixed == len(SCENARIOS) else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    import asyncio

    from toolmend.doctor import print_report, run_doctor
    from toolmend.proxy.probe import find_backend

    backend = args.backend
    if backend is None:
        found, tried = asyncio.run(find_backend())
        if found is None:
            places = ", ".join(f"{c.name} ({c.url})" for c in tried)
            print(f"toolmend doctor: no backend answers on {places}; pass --backend URL", file=sys.stderr)
            return 2
        print(f"toolmend doctor: found {found.name} at {found.url}", file=sys.stderr)
        backend = found.url
    report = run_doctor(backend, model=args.model, api_key=args.api_key, timeout=args.timeout)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print_report(report)
    return report.exit_code


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="toolmend", description="Reliable tool calling from local LLMs.")
    ap.add_argument("--version", action="version", version=f"toolmend {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse model output from stdin into an OpenAI message (or chunks)")
    p.add_argument("--format", default="auto", help="format name (see `toolmend formats`) or auto (default)")
    p.add_argument("--model", default=None, help="model id, helps auto-detection")
    p.add_argument("--tools", default=None, help="JSON file with the OpenAI tools list")
    p.add_argument(
        "--stream", action="store_true", help="read stdin incrementally and print chat.completion.chunk lines"
    )
    p.add_argument(
        "--chunk-size", type=int, default=0, help="with --stream: read this many characters at a time (default: lines)"
    )
    p.add_argument("--no-repair", action="store_true", help="do not mend broken JSON")
    p.add_argument("--compact", action="store_true", help="print the message on one line")
    p.add_argument("-v", "--verbose", action="store_true", help="print the format and diagnostics to stderr")
    p.set_defaults(func=cmd_parse)

    s = sub.add_parser("serve", help="run the OpenAI-compatible proxy in front of a local backend")
    s.add_argument("--backend", default=None, help="backend URL, e.g. http://127.0.0.1:8000/v1 (default: probe)")
    s.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=None, help="port to listen on (default 4000)")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes serving requests (default 1); more spread the per-chunk work of many streams",
    )
    s.add_argument("--config", default=None, help="TOML config file (default: $TOOLMEND_CONFIG)")
    s.add_argument("--api-key", default=None, help="key clients must send to use the proxy")
    s.add_argument("--backend-api-key", default=None, help="key sent to the backend instead of the client's")
    s.add_argument(
        "--recommended-sampling",
        action="store_true",
        help="fill in the sampling the model's profile recommends (a model without one gets HTTP 400)",
    )
    s.add_argument("--respond-tool", action="store_true", help="inject the synthetic respond(message) tool")
    s.add_argument("--max-attempts", type=int, default=None, help="attempts per request, retries included (default 2)")
    s.add_argument("--profiles", default=None, help="a TOML file of extra model profiles (see `toolmend models`)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve)

    d = sub.add_parser("demo", help="show, with a scripted local model, what clients get without and with toolmend")
    d.add_argument("--width", type=int, default=None, help="output width (default: the terminal's)")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser(
        "eval", help="replay recorded model answers: success without toolmend, parsing only, full pipeline"
    )
    e.add_argument("--corpus", default=None, help="a corpus folder of <format>.jsonl files (e.g. ../shared/corpus)")
    e.add_argument("--exceptions", default=None, help="toolmend's documented deviations from the corpus (jsonl)")
    e.add_argument("--no-own", action="store_true", help="leave out toolmend's own failure cases")
    e.add_argument("--failures", action="store_true", help="list the failed case ids per mode and setup")
    e.set_defaults(func=cmd_eval)

    m = sub.add_parser("models", help="list the model profiles (format, recommended sampling, quirks)")
    m.add_argument("--profiles", default=None, help="a TOML file of extra [[profile]] tables")
    m.set_defaults(func=cmd_models)

    dr = sub.add_parser(
        "doctor",
        help="probe a backend's tool calling and print the configuration to use",
        description="Probe a backend's tool calling. Exit code: 0 it works for clients as it is, "
        "1 use toolmend's proxy (see Recommended), 2 unusable or unreachable.",
    )
    dr.add_argument("--backend", default=None, help="backend URL, e.g. http://127.0.0.1:8000/v1 (default: probe)")
    dr.add_argument("--model", default=None, help="model to probe (default: the first listed)")
    dr.add_argument("--api-key", default=None, help="key to send to the backend")
    dr.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer (default 120)")
    dr.add_argument("--json", action="store_true", help="print the report as JSON")
    dr.set_defaults(func=cmd_doctor)

    f = sub.add_parser("formats", help="list the supported formats")
    f.set_defaults(func=cmd_formats)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except (ToolmendError, OSError, json.JSONDecodeError, ValueError) as e:
        print(f"toolmend: error: {e}", file=sys.stderr)
        return 2
    return rc
