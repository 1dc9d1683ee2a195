"""The tools most tests declare: a typed get_weather and an open search."""

from __future__ import annotations

from typing import Any

GET_WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
SEARCH: dict[str, Any] = {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}
WEATHER_TOOLS = [GET_WEATHER, SEARCH]
