"""A custom middleware step, run three ways: in your own loop, in the proxy, and in the Runner.

The step refuses calls to a dangerous tool unless the user asked for it by name, and tells the
model so (the pipeline asks it again with that feedback). A scripted backend stands in for the
model server, so this runs anywhere:

    python examples/custom_step.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from toolmend._serve_thread import serve_in_thread
from toolmend.config import load_settings
from toolmend.pipeline import Answer, BaseStep, Pipeline, Turn
from toolmend.proxy import create_app
from toolmend.proxy.chat import answer_from_completion
from toolmend.scripted import Script, ScriptedBackend
from toolmend.steps import default_steps

TOOLS = [
    {"type": "function", "function": {"name": "list_files", "parameters": {"type": "object"}}},
    {
        "type": "function",
        "function": {
            "name": "delete_file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    },
]


class NoDeleteUnlessAsked(BaseStep):
    """Calls to delete_file are a problem unless the last user message mentions deleting."""

    name = "no_delete_unless_asked"

    def check(self, turn: Turn, answer: Answer) -> list[str]:
        last_user = next((m for m in reversed(turn.original["messages"]) if m.get("role") == "user"), {})
        asked = "delete" in str(last_user.get("content", "")).lower()
        if not asked and any(c.name == "delete_file" for c in answer.calls):
            return ["delete_file may only be called when the user asks to delete something; list the files instead."]
        return []


def call(name: str, args: str) -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


def main() -> None:
    backend = ScriptedBackend()
    # The model first reaches for delete_file, then (after the feedback) lists the files.
    answers = [Script(text=call("delete_file", '{"path": "/tmp/x"}')), Script(text=call("list_files", "{}"))]
    messages = [{"role": "user", "content": "What is in /tmp?"}]
    with serve_in_thread(backend.app) as b:
        # 1. Your own loop: the pipeline around any backend function that returns an Answer.
        backend.add("model-a", answers)
        pipeline = Pipeline([*default_steps(), NoDeleteUnlessAsked()], max_attempts=2)
        options = {"tools": TOOLS, "format": "auto", "model": "model-a"}

        async def ask(request: dict[str, Any]) -> Answer:
            async with httpx.AsyncClient() as client:
                resp = await client.post(f"{b.url}/v1/chat/completions", json=request)
            return answer_from_completion(resp.json(), options)

        turn = Turn({"model": "model-a", "messages": messages, "tools": TOOLS})
        answer, outcome = asyncio.run(pipeline.run(turn, ask))
        print("own loop:", [(c.name, json.loads(c.arguments)) for c in answer.calls], outcome.result)

        # 2. The proxy with the same step: any OpenAI client gets the mended answer.
        backend.add("model-b", answers)
        settings = load_settings(env={}, overrides={"backend_url": b.url})
        with serve_in_thread(create_app(settings, steps=[NoDeleteUnlessAsked()])) as proxy:
            body = {"model": "model-b", "messages": messages, "tools": TOOLS}
            msg = httpx.post(f"{proxy.url}/v1/chat/completions", json=body).json()["choices"][0]["message"]
            print("proxy:", [c["function"]["name"] for c in msg["tool_calls"]])


if __name__ == "__main__":
    main()
