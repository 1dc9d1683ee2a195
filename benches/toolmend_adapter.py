"""toolmend behind the bench-anchors adapter interface (../shared/bench-anchors/adapters.py).

Adapter: .fmt .name .family, parse_full(text) -> (content, [(name, args_json), ...]),
new_stream() -> stream with prepare / feed_prepared (the timed call) / consume / feed / finish,
where finish() -> (content, calls, notes) built from the streamed events, like the peers.

Workload renderings (bench-anchors gen.py `render`) and the toolmend format used for each:
  hermes   'preamble\\n<tool_call>\\n{"name": .., "arguments": {..}}\\n</tool_call>\\n<tool_call>..'
           -> "hermes"
  llama3   '<|python_tag|>{"name": .., "arguments": {..}}; {..}'  (python_tag prefix, calls joined
           by "; ", key "arguments", no preamble) -> "llama3_json"
  mistral  'preamble [TOOL_CALLS] [{"name": .., "arguments": {..}}, {..}]'  (pre-v11 JSON array)
           -> "mistral_array"
  pythonic "[f(a=1, b='x', c=True, d=None), g(..)]"  (Python literals via repr, no preamble)
           -> "pythonic"
"""

import json

FORMATS = {"hermes": "hermes", "llama3": "llama3_json", "mistral": "mistral_array", "pythonic": "pythonic"}


def openai_tools(tools):
    """bench-anchors tools.json entries ({name, description, parameters}) -> OpenAI tool dicts."""
    return [{"type": "function", "function": dict(t)} for t in tools]


class _Stream:
    def __init__(self, sp):
        self.p = sp
        self.content = []
        # index -> [name, [argument fragments]]: fragments are joined once at the end. (The
        # anchors' _Acc appends each fragment to the growing argument string, copying all of it
        # on every delta; between two timed feeds that evicts the parser's state from the CPU
        # cache, which costs toolmend ~50 ns per delta and the peers nothing measurable.)
        self.calls = {}
        self.notes = []
        # The timed call is exactly the user's call, `StreamParser.feed(delta)`, with no
        # adapter frame around it (the peers' argument building happens in `prepare`).
        self.feed_prepared = sp.feed

    def prepare(self, delta):
        return delta

    def consume(self, events):
        for ev in events:
            kind = ev.kind
            if kind == "content":
                self.content.append(ev.text)
            elif kind == "tool_call_start":
                slot = self.calls.setdefault(ev.index, [None, []])
                if slot[0] is not None and slot[0] != ev.name:
                    self.notes.append(f"call {ev.index}: second start event {slot[0]!r} -> {ev.name!r}")
                slot[0] = ev.name
            elif kind == "tool_call_args":
                self.calls.setdefault(ev.index, [None, []])[1].append(ev.text or "")

    def feed(self, delta):
        self.consume(self.feed_prepared(delta))

    def finish(self):
        self.consume(self.p.finish())
        content = "".join(self.content)
        calls = [(n, "".join(a)) for _, (n, a) in sorted(self.calls.items())]
        r = self.p.result()
        if (r.content or "") != content or _values(r.tool_calls) != _values(calls):
            self.notes.append("result() differs from the streamed events")
        return content, calls, self.notes


def _values(calls):
    """[(name, parsed arguments)] from ToolCall objects or (name, args) pairs; None if not JSON."""
    pairs = [(c.name, c.arguments) if hasattr(c, "name") else c for c in calls]
    try:
        return [(n, json.loads(a)) for n, a in pairs]
    except ValueError:
        return None


class ToolmendAdapter:
    family = "toolmend"

    def __init__(self, fmt, tools=None, format_override=None):
        import toolmend

        self.tm = toolmend
        self.fmt = fmt
        self.format = format_override or FORMATS[fmt]
        self.name = f"toolmend.{self.format}" + (f"[{fmt}]" if format_override else "")
        # prepared once, like the peers' parser objects (toolmend.Tools validates and indexes the list)
        self.tools = toolmend.Tools(tools) if tools is not None and hasattr(toolmend, "Tools") else tools

    def parse_full(self, text):
        r = self.tm.parse(text, tools=self.tools, format=self.format)
        return r.content, [(c.name, c.arguments) for c in r.tool_calls]

    def new_stream(self):
        return _Stream(self.tm.StreamParser(tools=self.tools, format=self.format))


def toolmend_adapters(tools=None, fmts=tuple(FORMATS), format_override=None):
    """-> (adapters, {workload format: reason skipped}): one adapter per workload format whose toolmend
    format exists in this build; `tools` in bench-anchors' tools.json shape (or None)."""
    import toolmend

    known = {"auto"} | {f[0] for f in toolmend.formats()}
    oa = openai_tools(tools) if tools is not None else None
    ads, skipped = [], {}
    for f in fmts:
        name = format_override or FORMATS[f]
        if name in known:
            ads.append(ToolmendAdapter(f, oa, format_override))
        else:
            skipped[f] = f"toolmend has no format {name!r}"
    return ads, skipped
