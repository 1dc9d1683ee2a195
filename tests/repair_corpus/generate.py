#!/usr/bin/env python3
"""Write the toolmend JSON repair corpus, ``cases.jsonl``, from the literals below.

Run ``python tests/repair_corpus/generate.py``: it rewrites ``cases.jsonl`` next to this
file byte-for-byte the same every time (the large cases come from a seeded generator), and
checks every case before writing anything.

One JSON object per line::

    {"id": "<category>/<short-name>", "category": "...", "input": "<text as a model wrote it>",
     "expected": <the JSON value the model meant>, "notes": "<only where useful>"}

``input`` is the text a small local model produced when asked for tool-call arguments.
``expected`` is what a careful human reads it as. Rules used throughout:

* Truncated output: strings are closed where they were cut and everything written so far is
  kept (including trailing spaces); a dangling key, colon or comma is dropped; a half-written
  escape sequence at the cut is dropped.
* Invalid escapes such as ``\\p`` or ``\\d`` keep the backslash: the model meant the two
  characters (Windows paths, regexes, LaTeX, shell).
* ``undefined``, ``NaN`` and ``±Infinity`` become ``null``; ``True``/``False``/``None``
  become ``true``/``false``/``null``.
* Where the intent is a judgement call the case says so in ``notes`` and the choice that
  loses no data wins. Cases whose notes start with ``hard:`` or ``trap:`` are ones where a
  purely syntactic repair is likely to get it wrong; they are kept because models really
  produce them.

Inputs are written as raw Python strings so each reads exactly like the model's output.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "cases.jsonl"

CATEGORIES: tuple[str, ...] = (
    "valid",
    "trailing_comma",
    "single_quotes",
    "unquoted_keys",
    "python_literals",
    "js_literals",
    "comments",
    "control_chars_in_strings",
    "invalid_escapes",
    "truncated_close",
    "truncated_string",
    "truncated_dangling",
    "code_fence",
    "prose_around",
    "json_string_args",
    "unescaped_quotes",
    "missing_commas",
    "mixed",
    "large",
)
MIN_PER_CATEGORY = 15
MIN_LARGE = 3

Case = dict[str, Any]
CASES: list[Case] = []


def case(category: str, name: str, text: str, expected: Any, notes: str = "") -> None:
    rec: Case = {"id": f"{category}/{name}", "category": category, "input": text, "expected": expected}
    if notes:
        rec["notes"] = notes
    CASES.append(rec)


def require(cond: bool, msg: str) -> None:
    if not cond:
        raise SystemExit(f"generate.py: {msg}")


def lines(*parts: str) -> str:
    """Join lines with a newline (for pretty-printed inputs)."""
    return "\n".join(parts)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --------------------------------------------------------------------------- valid


def add_valid() -> None:
    c = "valid"
    case(
        c,
        "read-file",
        r'{"path": "/home/alice/projects/toolmend/README.md"}',
        {"path": "/home/alice/projects/toolmend/README.md"},
    )
    case(
        c,
        "read-file-range",
        r'{"path": "src/parser/lexer.rs", "start_line": 120, "end_line": 180}',
        {"path": "src/parser/lexer.rs", "start_line": 120, "end_line": 180},
    )
    case(
        c,
        "shell-escaped-quotes",
        r'{"command": "grep -rn \"TODO\\|FIXME\" src/ | wc -l", "timeout": 30}',
        {"command": r'grep -rn "TODO\|FIXME" src/ | wc -l', "timeout": 30},
    )
    case(
        c,
        "windows-path",
        r'{"path": "C:\\Users\\bob\\Documents\\Q3 report.docx", "encoding": "utf-16"}',
        {"path": r"C:\Users\bob\Documents\Q3 report.docx", "encoding": "utf-16"},
    )
    case(
        c,
        "regex",
        r'{"pattern": "^(\\d{4})-(\\d{2})-(\\d{2})T\\d{2}:\\d{2}$", "flags": ["i", "m"], "replace": "$3/$2/$1"}',
        {"pattern": r"^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}$", "flags": ["i", "m"], "replace": "$3/$2/$1"},
    )
    case(
        c,
        "unicode-raw",
        '{"city": "Zürich", "note": "café — 東京 🌸", "currency": "€"}',
        {"city": "Zürich", "note": "café — 東京 🌸", "currency": "€"},
    )
    case(
        c,
        "unicode-escaped",
        r'{"greeting": "\u00a1Hola, se\u00f1or!", "emoji": "\ud83d\ude00", "dash": "\u2014"}',
        {"greeting": "¡Hola, señor!", "emoji": "😀", "dash": "—"},
        "ASCII-only output with \\u escapes, including a surrogate pair",
    )
    case(
        c,
        "nested-event",
        '{"title": "Sprint review", "start": "2025-03-14T09:30:00+01:00", "attendees": '
        '[{"name": "Zoë", "email": "zoe@example.com", "optional": false}, '
        '{"name": "José", "email": "jose@example.com", "optional": true}], "location": null, "reminders": [10, 60]}',
        {
            "title": "Sprint review",
            "start": "2025-03-14T09:30:00+01:00",
            "attendees": [
                {"name": "Zoë", "email": "zoe@example.com", "optional": False},
                {"name": "José", "email": "jose@example.com", "optional": True},
            ],
            "location": None,
            "reminders": [10, 60],
        },
    )
    case(
        c,
        "numbers",
        '{"lat": -33.8688, "lon": 151.2093, "zoom": 12, "scale": 1.5e-3, "tolerance": 2E+2, '
        '"id": 9007199254740993, "offset": -0.0}',
        {
            "lat": -33.8688,
            "lon": 151.2093,
            "zoom": 12,
            "scale": 0.0015,
            "tolerance": 200.0,
            "id": 9007199254740993,
            "offset": -0.0,
        },
        "id is above 2**53 and must survive exactly (no round trip through a double)",
    )
    case(
        c,
        "sql",
        r"""{"sql": "SELECT u.id, u.name, COUNT(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id """
        r"""WHERE u.email LIKE '%@example.com' AND u.created_at >= '2024-01-01' GROUP BY u.id, u.name """
        r"""HAVING COUNT(o.id) > 2 ORDER BY orders DESC LIMIT 10;", "database": "shop"}""",
        {
            "sql": "SELECT u.id, u.name, COUNT(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id "
            "WHERE u.email LIKE '%@example.com' AND u.created_at >= '2024-01-01' GROUP BY u.id, u.name "
            "HAVING COUNT(o.id) > 2 ORDER BY orders DESC LIMIT 10;",
            "database": "shop",
        },
    )
    case(
        c,
        "http-request",
        r'{"method": "POST", "url": "https://api.example.com/v2/search?q=rust%20json&page=2&sort=desc#results", '
        r'"headers": {"Accept": "application/json", "Authorization": "Bearer eyJhbGciOi.abc.def"}, "body": null}',
        {
            "method": "POST",
            "url": "https://api.example.com/v2/search?q=rust%20json&page=2&sort=desc#results",
            "headers": {"Accept": "application/json", "Authorization": "Bearer eyJhbGciOi.abc.def"},
            "body": None,
        },
    )
    case(
        c,
        "pretty-printed",
        lines(
            "{",
            '  "name": "write_file",',
            '  "arguments": {',
            '    "path": "notes/todo.md",',
            r'    "content": "# TODO\n\n- [ ] ship v1\n- [x] write tests\n",',
            '    "overwrite": false',
            "  }",
            "}",
        ),
        {
            "name": "write_file",
            "arguments": {
                "path": "notes/todo.md",
                "content": "# TODO\n\n- [ ] ship v1\n- [x] write tests\n",
                "overwrite": False,
            },
        },
    )
    case(c, "empty-object", "{}", {}, "a tool that takes no arguments")
    case(
        c,
        "edit-file-code",
        r'{"path": "app/models.py", "old_str": "    def __str__(self):\n        return self.name\n", '
        r'"new_str": "    def __str__(self) -> str:\n        return f\"{self.name} <{self.email}>\"\n"}',
        {
            "path": "app/models.py",
            "old_str": "    def __str__(self):\n        return self.name\n",
            "new_str": '    def __str__(self) -> str:\n        return f"{self.name} <{self.email}>"\n',
        },
    )
    case(
        c,
        "top-level-array",
        '[{"name": "get_weather", "arguments": {"city": "Oslo"}}, {"name": "get_time", "arguments": {"tz": "Europe/Oslo"}}]',
        [
            {"name": "get_weather", "arguments": {"city": "Oslo"}},
            {"name": "get_time", "arguments": {"tz": "Europe/Oslo"}},
        ],
        "parallel calls as one array",
    )
    case(
        c,
        "lookalikes-in-strings",
        r"""{"text": "It's fine, isn't it? {braces}, [brackets], // not a comment, /* nor this */, # nor this, True/None/NaN/undefined,", "trailing": ",}"}""",
        {
            "text": "It's fine, isn't it? {braces}, [brackets], // not a comment, /* nor this */, # nor this, "
            "True/None/NaN/undefined,",
            "trailing": ",}",
        },
        "every defect pattern appears only inside strings: nothing may change",
    )
    case(
        c,
        "deep-nesting",
        '{"a": {"b": {"c": {"d": {"e": {"f": [1, [2, [3, {"g": null}]]]}}}}}}',
        {"a": {"b": {"c": {"d": {"e": {"f": [1, [2, [3, {"g": None}]]]}}}}}},
    )
    case(
        c,
        "whitespace-around",
        '\n  {"query": "rust serde flatten", "max_results": 5}\n\n',
        {"query": "rust serde flatten", "max_results": 5},
    )
    case(
        c,
        "escape-sequences",
        r'{"html": "<\/script>", "tsv": "a\tb\tc", "crlf": "one\r\ntwo", "quote": "\"", "backslash": "\\", "nul": "\u0000", "bell": "\b\f"}',
        {
            "html": "</script>",
            "tsv": "a\tb\tc",
            "crlf": "one\r\ntwo",
            "quote": '"',
            "backslash": "\\",
            "nul": "\x00",
            "bell": "\b\f",
        },
    )
    case(
        c,
        "json-in-string",
        r'{"url": "https://hooks.example.com/x", "body": "{\"user\": \"bob\", \"tags\": [\"a\", \"b\"]}"}',
        {"url": "https://hooks.example.com/x", "body": '{"user": "bob", "tags": ["a", "b"]}'},
        "a string field holding JSON text stays a string (no over-eager decoding)",
    )
    case(
        c,
        "negative-and-zero",
        '{"dx": -12, "dy": 0, "scale": 0.5, "angle": -90.25, "depth": 1e2}',
        {"dx": -12, "dy": 0, "scale": 0.5, "angle": -90.25, "depth": 100.0},
    )


# --------------------------------------------------------------------------- trailing_comma


def add_trailing_comma() -> None:
    c = "trailing_comma"
    case(c, "object", r'{"path": "src/lib.rs", "line": 12,}', {"path": "src/lib.rs", "line": 12})
    case(
        c,
        "array",
        r'{"files": ["main.py", "utils.py", "tests/test_main.py",]}',
        {"files": ["main.py", "utils.py", "tests/test_main.py"]},
    )
    case(
        c,
        "nested-both",
        r'{"query": "coffee near me", "filters": {"open_now": true, "price": [1, 2,],}, "limit": 5,}',
        {"query": "coffee near me", "filters": {"open_now": True, "price": [1, 2]}, "limit": 5},
    )
    case(
        c,
        "pretty-newline",
        lines("{", '  "city": "Lisbon",', '  "units": "metric",', '  "days": 3,', "}"),
        {"city": "Lisbon", "units": "metric", "days": 3},
    )
    case(
        c,
        "doubled-comma",
        r'{"src": "a.txt",, "dst": "b.txt"}',
        {"src": "a.txt", "dst": "b.txt"},
        "a stray doubled comma between members",
    )
    case(
        c,
        "commas-inside-string",
        r'{"pattern": "a,}b,]c", "global": true,}',
        {"pattern": "a,}b,]c", "global": True},
        "',}' and ',]' inside the string must stay",
    )
    case(c, "regex-char-class", r'{"regex": "[a-z,]+", "flags": "g",}', {"regex": "[a-z,]+", "flags": "g"})
    case(c, "after-empty-array", r'{"items": [], "total": 0,}', {"items": [], "total": 0})
    case(
        c,
        "top-level-calls",
        r'[{"name": "ls", "arguments": {"path": "."}}, {"name": "pwd", "arguments": {}},]',
        [{"name": "ls", "arguments": {"path": "."}}, {"name": "pwd", "arguments": {}}],
    )
    case(
        c,
        "array-of-objects",
        r'{"attendees": [{"email": "a@example.com"}, {"email": "b@example.com"},], "notify": false}',
        {"attendees": [{"email": "a@example.com"}, {"email": "b@example.com"}], "notify": False},
    )
    case(c, "after-exponent", r'{"learning_rate": 3e-4, "epochs": 10,}', {"learning_rate": 0.0003, "epochs": 10})
    case(c, "after-null", r'{"cursor": null, "has_more": true,}', {"cursor": None, "has_more": True})
    case(
        c,
        "every-level",
        lines(
            "{",
            '  "name": "create_issue",',
            '  "arguments": {',
            '    "title": "Crash on empty input",',
            '    "labels": [',
            '      "bug",',
            '      "parser",',
            "    ],",
            "  },",
            "}",
        ),
        {"name": "create_issue", "arguments": {"title": "Crash on empty input", "labels": ["bug", "parser"]}},
    )
    case(
        c,
        "shell-with-commas",
        r"""{"cmd": "awk -F, '{print $1,$3}' data.csv | sort -u", "cwd": "/srv/data",}""",
        {"cmd": "awk -F, '{print $1,$3}' data.csv | sort -u", "cwd": "/srv/data"},
    )
    case(
        c,
        "sql-with-commas",
        r"""{"sql": "INSERT INTO tags (post_id, name) VALUES (7, 'rust'), (7, 'json');", "commit": true,}""",
        {"sql": "INSERT INTO tags (post_id, name) VALUES (7, 'rust'), (7, 'json');", "commit": True},
    )
    case(c, "array-multiline", lines('{"ids": [', "    101,", "    102,", "  ]", "}"), {"ids": [101, 102]})
    case(
        c,
        "unicode",
        '{"title": "Réunion d’équipe", "room": "Salle 3",}',
        {"title": "Réunion d’équipe", "room": "Salle 3"},
    )
    case(
        c,
        "argv-array",
        r'["git", "commit", "-m", "fix: trailing commas",]',
        ["git", "commit", "-m", "fix: trailing commas"],
    )
    case(c, "after-escaped-quote", r'{"msg": "say \"hi\"",}', {"msg": 'say "hi"'})


# --------------------------------------------------------------------------- single_quotes


def add_single_quotes() -> None:
    c = "single_quotes"
    case(c, "all", r"{'path': 'src/app.py', 'mode': 'r'}", {"path": "src/app.py", "mode": "r"})
    case(
        c,
        "keys-only",
        r"""{'city': "Paris", 'units': "metric", 'days': 2}""",
        {"city": "Paris", "units": "metric", "days": 2},
    )
    case(
        c,
        "values-only",
        r"""{"query": 'rust json repair crate', "limit": 5}""",
        {"query": "rust json repair crate", "limit": 5},
    )
    case(
        c,
        "double-quotes-inside",
        r"""{'cmd': 'echo "hello world" > out.txt'}""",
        {"cmd": 'echo "hello world" > out.txt'},
    )
    case(c, "escaped-apostrophe", r"""{'message': 'It\'s done, don\'t worry'}""", {"message": "It's done, don't worry"})
    case(
        c,
        "unescaped-apostrophe",
        r"""{'message': 'Don't panic', 'level': 'info'}""",
        {"message": "Don't panic", "level": "info"},
        "hard: the apostrophe is not escaped; the quote after 't' is followed by a letter, so it is text",
    )
    case(
        c,
        "escaped-backslashes",
        r"""{'path': 'C:\\Users\\ann\\notes.txt'}""",
        {"path": r"C:\Users\ann\notes.txt"},
        "doubled backslashes inside single quotes are escapes, as in JSON and Python",
    )
    case(
        c,
        "nested",
        r"""{'tags': ['bug', 'ui'], 'meta': {'priority': 'high', 'owner': 'kim'}}""",
        {"tags": ["bug", "ui"], "meta": {"priority": "high", "owner": "kim"}},
    )
    case(
        c,
        "sql-double-quoted-idents",
        r"""{'sql': 'SELECT "name", "email" FROM "users" WHERE "id" = 42'}""",
        {"sql": 'SELECT "name", "email" FROM "users" WHERE "id" = 42'},
        "'\", \"' inside a single-quoted string is text, not a member separator",
    )
    case(c, "unicode", r"""{'city': 'São Paulo', 'country': 'Brasil'}""", {"city": "São Paulo", "country": "Brasil"})
    case(c, "empty-string", r"""{'prefix': '', 'suffix': '.bak'}""", {"prefix": "", "suffix": ".bak"})
    case(c, "comma-inside", r"""{'text': 'a, b, c', 'count': 3}""", {"text": "a, b, c", "count": 3})
    case(
        c,
        "braces-inside",
        r"""{'template': 'Hello {name}: your order {id} shipped', 'lang': 'en'}""",
        {"template": "Hello {name}: your order {id} shipped", "lang": "en"},
    )
    case(c, "top-level-array", r"""['ls', '-la', '/var/log']""", ["ls", "-la", "/var/log"])
    case(
        c,
        "keys-with-spaces",
        r"""{'first name': 'Ada', 'last name': 'Lovelace'}""",
        {"first name": "Ada", "last name": "Lovelace"},
    )
    case(
        c,
        "escaped-newline",
        r"""{'body': 'line one\nline two', 'to': 'ops@example.com'}""",
        {"body": "line one\nline two", "to": "ops@example.com"},
    )
    case(
        c,
        "url",
        r"""{'url': 'https://example.com/search?q=a&b=c#top', 'method': 'GET'}""",
        {"url": "https://example.com/search?q=a&b=c#top", "method": "GET"},
    )
    case(c, "double-quoted-apostrophe", r"""{'note': "it's fine", 'ok': 'yes'}""", {"note": "it's fine", "ok": "yes"})
    case(
        c,
        "pretty-printed",
        lines(
            "{",
            "    'name': 'send_email',",
            "    'to': ['a@example.com', 'b@example.com'],",
            "    'subject': 'Status: green',",
            "    'urgent': false",
            "}",
        ),
        {"name": "send_email", "to": ["a@example.com", "b@example.com"], "subject": "Status: green", "urgent": False},
    )


# --------------------------------------------------------------------------- unquoted_keys


def add_unquoted_keys() -> None:
    c = "unquoted_keys"
    case(c, "single", r'{path: "src/main.py"}', {"path": "src/main.py"})
    case(c, "several", r'{city: "Berlin", units: "metric", days: 3}', {"city": "Berlin", "units": "metric", "days": 3})
    case(
        c,
        "nested",
        r'{query: "rust async", filters: {lang: "en", safe: true}, max_results: 10}',
        {"query": "rust async", "filters": {"lang": "en", "safe": True}, "max_results": 10},
    )
    case(
        c,
        "underscores-digits",
        r"{max_results: 10, page_2: false, _internal: null}",
        {"max_results": 10, "page_2": False, "_internal": None},
    )
    case(
        c,
        "dollar",
        r'{$schema: "https://json-schema.org/draft/2020-12/schema", type: "object"}',
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"},
    )
    case(
        c,
        "dashes",
        r'{content-type: "application/json", x-request-id: "abc-123"}',
        {"content-type": "application/json", "x-request-id": "abc-123"},
        "judgement call: not a JS identifier, but the key clearly runs up to the colon",
    )
    case(
        c,
        "mixed-quoting",
        r'{"name": "deploy", env: "staging", "dry_run": true}',
        {"name": "deploy", "env": "staging", "dry_run": True},
    )
    case(
        c,
        "array-of-objects",
        r'[{name: "a", size: 1}, {name: "b", size: 2}]',
        [{"name": "a", "size": 1}, {"name": "b", "size": 2}],
    )
    case(
        c,
        "js-style-pretty",
        lines("{", '  title: "Weekly sync",', '  start: "2025-06-02T10:00:00Z",', "  duration_minutes: 30", "}"),
        {"title": "Weekly sync", "start": "2025-06-02T10:00:00Z", "duration_minutes": 30},
    )
    case(
        c,
        "key-colon-in-value",
        r'{note: "use key: value pairs, e.g. a: 1", n: 1}',
        {"note": "use key: value pairs, e.g. a: 1", "n": 1},
    )
    case(c, "no-spaces", r"{a:1,b:2,c:[3,4]}", {"a": 1, "b": 2, "c": [3, 4]})
    case(c, "unicode-keys", r'{città: "Roma", año: 2024}', {"città": "Roma", "año": 2024})
    case(
        c,
        "camel-case",
        r'{filePath: "lib/index.ts", startLine: 5, endLine: 9}',
        {"filePath": "lib/index.ts", "startLine": 5, "endLine": 9},
    )
    case(
        c,
        "reserved-words",
        r'{class: "btn", default: true, null_ok: false, true_color: null}',
        {"class": "btn", "default": True, "null_ok": False, "true_color": None},
        "keys that start with null/true are still keys",
    )
    case(
        c,
        "url-value",
        r'{url: "http://localhost:8080/api?x=1", timeout: 2.5}',
        {"url": "http://localhost:8080/api?x=1", "timeout": 2.5},
    )
    case(
        c,
        "dotted",
        r'{user.name: "bob", user.id: 7}',
        {"user.name": "bob", "user.id": 7},
        "judgement call: kept as flat dotted keys, not expanded into nested objects",
    )
    case(c, "deep", r'{a: {b: {c: "d"}}}', {"a": {"b": {"c": "d"}}})
    case(c, "space-before-colon", r'{path : "a.txt", recursive : true}', {"path": "a.txt", "recursive": True})


# --------------------------------------------------------------------------- python_literals


def add_python_literals() -> None:
    c = "python_literals"
    case(c, "bools", r'{"recursive": True, "force": False}', {"recursive": True, "force": False})
    case(c, "none", r'{"parent_id": None, "name": "docs"}', {"parent_id": None, "name": "docs"})
    case(c, "in-array", r'{"flags": [True, False, None, True]}', {"flags": [True, False, None, True]})
    case(
        c,
        "nested",
        r'{"options": {"dry_run": True, "verbose": False, "limit": None}, "target": "prod"}',
        {"options": {"dry_run": True, "verbose": False, "limit": None}, "target": "prod"},
    )
    case(
        c,
        "words-in-strings",
        r'{"text": "True story, None of it False", "spoiler": True}',
        {"text": "True story, None of it False", "spoiler": True},
    )
    case(c, "no-spaces", r'{"a":True,"b":None,"c":False}', {"a": True, "b": None, "c": False})
    case(
        c,
        "code-string",
        r'{"code": "if x is None:\n    return True", "lint": False}',
        {"code": "if x is None:\n    return True", "lint": False},
    )
    case(
        c,
        "tuple",
        r'{"size": (800, 600), "keep_ratio": True}',
        {"size": [800, 600], "keep_ratio": True},
        "judgement call: a Python tuple is a JSON array",
    )
    case(
        c,
        "pretty",
        lines("{", '    "include_hidden": False,', '    "follow_symlinks": True,', '    "max_depth": None', "}"),
        {"include_hidden": False, "follow_symlinks": True, "max_depth": None},
    )
    case(
        c,
        "array-of-objects",
        r'[{"id": 1, "done": True}, {"id": 2, "done": False}]',
        [{"id": 1, "done": True}, {"id": 2, "done": False}],
    )
    case(c, "string-none-vs-none", r'{"status": "None", "value": None}', {"status": "None", "value": None})
    case(
        c,
        "after-numbers",
        r'{"count": 0, "enabled": True, "ratio": 0.5, "default": None}',
        {"count": 0, "enabled": True, "ratio": 0.5, "default": None},
    )
    case(c, "single", r'{"confirm": True}', {"confirm": True})
    case(c, "deep", r'{"a": [{"b": [None, {"c": True}]}]}', {"a": [{"b": [None, {"c": True}]}]})
    case(
        c,
        "sql-null-text",
        r'{"sql": "UPDATE t SET x = NULL WHERE y IS NOT NULL", "dry_run": False, "params": None}',
        {"sql": "UPDATE t SET x = NULL WHERE y IS NOT NULL", "dry_run": False, "params": None},
    )
    case(
        c,
        "retry-config",
        r'{"retries": None, "backoff": 1.5, "jitter": True}',
        {"retries": None, "backoff": 1.5, "jitter": True},
    )
    case(
        c,
        "key-named-true",
        r'{"True": True, "None": None}',
        {"True": True, "None": None},
        "quoted keys that spell a literal stay strings",
    )


# --------------------------------------------------------------------------- js_literals


def add_js_literals() -> None:
    c = "js_literals"
    case(c, "undefined", r'{"value": undefined}', {"value": None})
    case(c, "nan", r'{"ratio": NaN, "count": 0}', {"ratio": None, "count": 0})
    case(c, "infinities", r'{"max": Infinity, "min": -Infinity}', {"max": None, "min": None})
    case(c, "nan-in-array", r'{"samples": [1.5, NaN, 3.25]}', {"samples": [1.5, None, 3.25]})
    case(c, "plus-infinity", r'{"limit": +Infinity}', {"limit": None})
    case(c, "string-nan", r'{"label": "NaN", "value": NaN}', {"label": "NaN", "value": None})
    case(
        c,
        "nested-stats",
        r'{"stats": {"mean": NaN, "std": NaN, "n": 0}}',
        {"stats": {"mean": None, "std": None, "n": 0}},
    )
    case(
        c,
        "undefined-option",
        r'{"timeout": undefined, "retries": 3}',
        {"timeout": None, "retries": 3},
        "judgement call: undefined kept as a null member rather than dropping the key",
    )
    case(c, "undefined-in-array", r'[undefined, "a", null]', [None, "a", None])
    case(
        c,
        "word-in-string",
        r'{"deadline": undefined, "title": "Fix the undefined variable bug"}',
        {"deadline": None, "title": "Fix the undefined variable bug"},
    )
    case(
        c,
        "pretty",
        lines("{", '  "best_score": -Infinity,', '  "last_error": undefined,', '  "epoch": 4', "}"),
        {"best_score": None, "last_error": None, "epoch": 4},
    )
    case(c, "bounds", r'{"bounds": [-Infinity, 0, Infinity]}', {"bounds": [None, 0, None]})
    case(c, "no-spaces", r'{"x":NaN,"y":undefined}', {"x": None, "y": None})
    case(
        c,
        "nan-and-prose",
        r'{"score": NaN, "note": "score is NaN because the set is empty"}',
        {"score": None, "note": "score is NaN because the set is empty"},
    )
    case(
        c,
        "config",
        r'{"config": {"cache": undefined, "ttl": Infinity}, "name": "default"}',
        {"config": {"cache": None, "ttl": None}, "name": "default"},
    )
    case(c, "with-empty-array", r'{"best": -Infinity, "history": []}', {"best": None, "history": []})


# --------------------------------------------------------------------------- comments


def add_comments() -> None:
    c = "comments"
    case(c, "line-before-key", lines("{", "  // file to open", '  "path": "src/main.rs"', "}"), {"path": "src/main.rs"})
    case(
        c,
        "line-after-value",
        '{"path": "a.txt", // relative to the repo root\n"mode": "r"}',
        {"path": "a.txt", "mode": "r"},
    )
    case(c, "inline-block", r'{"query": "rust" /* the language */, "limit": 10}', {"query": "rust", "limit": 10})
    case(
        c,
        "hash-line",
        lines("{", "  # which city", '  "city": "Kyoto",', '  "units": "metric"', "}"),
        {"city": "Kyoto", "units": "metric"},
    )
    case(c, "after-close", r'{"cmd": "cargo test"} // runs the tests', {"cmd": "cargo test"})
    case(
        c,
        "quotes-braces-in-comment",
        lines("{", '  // don\'t use "rm -rf" or {anything} dangerous here', '  "cmd": "ls -la /tmp"', "}"),
        {"cmd": "ls -la /tmp"},
    )
    case(
        c,
        "url-with-slashes",
        r'{"url": "https://example.com//double//slash"} // fetch it',
        {"url": "https://example.com//double//slash"},
        "'//' inside the string is not a comment",
    )
    case(
        c,
        "hash-in-string",
        lines("{", '  "color": "#ff0000", # red', '  "alpha": 1', "}"),
        {"color": "#ff0000", "alpha": 1},
    )
    case(
        c,
        "multiline-block",
        lines(
            "{",
            "  /*",
            "   * Arguments for create_event.",
            "   * Times are UTC.",
            "   */",
            '  "title": "Standup",',
            '  "start": "2025-01-06T09:00:00Z"',
            "}",
        ),
        {"title": "Standup", "start": "2025-01-06T09:00:00Z"},
    )
    case(
        c,
        "before-open",
        '// arguments for search\n{"query": "best hiking boots", "max_results": 3}',
        {"query": "best hiking boots", "max_results": 3},
    )
    case(
        c,
        "in-array",
        lines('{"files": [', '  "a.py", // main', '  "b.py" /* helpers */', "]}"),
        {"files": ["a.py", "b.py"]},
    )
    case(
        c,
        "jsdoc-with-braces",
        '/** @type {ReadArgs} */\n{"path": "docs/index.md"}',
        {"path": "docs/index.md"},
        "the comment itself contains braces",
    )
    case(
        c,
        "last-member",
        lines("{", '  "src": "a.png",', '  "dst": "b.webp" // convert', "}"),
        {"src": "a.png", "dst": "b.webp"},
    )
    case(
        c,
        "glob-in-string",
        r'{"glob": "src/**/*.rs" /* all rust files */, "exclude": "target/**"}',
        {"glob": "src/**/*.rs", "exclude": "target/**"},
        "'/*' inside the string is not a comment",
    )
    case(
        c, "nested", '{"opts": {\n  "depth": 2, // max\n  "follow": false\n}}', {"opts": {"depth": 2, "follow": False}}
    )
    case(c, "unterminated-block-at-end", r'{"a": 1, "b": [2, 3]} /* trailing note', {"a": 1, "b": [2, 3]})
    case(
        c,
        "hash-after-values",
        '{"host": "db.internal", # primary\n "port": 5432 # default\n}',
        {"host": "db.internal", "port": 5432},
    )
    case(c, "url-in-comment", lines("{", "  // docs: https://example.com/api#params", '  "page": 2', "}"), {"page": 2})


# --------------------------------------------------------------------------- control_chars_in_strings


def add_control_chars() -> None:
    c = "control_chars_in_strings"
    case(
        c,
        "code-newlines",
        '{"path": "hello.py", "content": "def main():\n    print(\\"hi\\")\n"}',
        {"path": "hello.py", "content": 'def main():\n    print("hi")\n'},
    )
    case(
        c,
        "tsv-tabs",
        '{"path": "data.tsv", "content": "id\tname\n1\tAda\n2\tGrace\n"}',
        {"path": "data.tsv", "content": "id\tname\n1\tAda\n2\tGrace\n"},
    )
    case(
        c,
        "crlf",
        '{"body": "Hello,\r\nThanks for the update.\r\n", "to": "a@example.com"}',
        {"body": "Hello,\r\nThanks for the update.\r\n", "to": "a@example.com"},
    )
    case(
        c,
        "commit-message",
        '{"message": "Fix off-by-one in lexer\n\nThe last byte was skipped when the\ninput ended in a digit."}',
        {"message": "Fix off-by-one in lexer\n\nThe last byte was skipped when the\ninput ended in a digit."},
    )
    case(
        c,
        "sql-multiline",
        '{"sql": "SELECT id,\n       name\nFROM users\nWHERE active = 1;"}',
        {"sql": "SELECT id,\n       name\nFROM users\nWHERE active = 1;"},
    )
    case(
        c,
        "makefile-tabs",
        '{"path": "Makefile", "content": "build:\n\tcargo build --release\n\ntest:\n\tcargo test\n"}',
        {"path": "Makefile", "content": "build:\n\tcargo build --release\n\ntest:\n\tcargo test\n"},
        "tabs are significant in a Makefile: they must survive as tabs",
    )
    case(
        c,
        "heredoc",
        '{"cmd": "cat <<\'EOF\' > config.toml\n[server]\nport = 8080\nEOF"}',
        {"cmd": "cat <<'EOF' > config.toml\n[server]\nport = 8080\nEOF"},
    )
    case(
        c,
        "raw-escape-char",
        '{"text": "\x1b[31mERROR\x1b[0m build failed"}',
        {"text": "\x1b[31mERROR\x1b[0m build failed"},
        "a raw ESC byte (ANSI colour) inside the string",
    )
    case(c, "trailing-newline", '{"line": "last line\n"}', {"line": "last line\n"})
    case(
        c,
        "pretty-object",
        '{\n  "title": "Release notes",\n  "body": "## v1.2\n\n- faster lexer\n- fewer allocations\n",\n  "draft": true\n}',
        {"title": "Release notes", "body": "## v1.2\n\n- faster lexer\n- fewer allocations\n", "draft": True},
    )
    case(
        c,
        "markdown-with-quotes",
        '{"content": "# Notes\n\n* say \\"hello\\"\n* then leave\n"}',
        {"content": '# Notes\n\n* say "hello"\n* then leave\n'},
    )
    case(c, "array-element", '{"lines": ["first\nsecond", "third"]}', {"lines": ["first\nsecond", "third"]})
    case(c, "unicode-poem", '{"poem": "古池や\n蛙飛び込む\n水の音"}', {"poem": "古池や\n蛙飛び込む\n水の音"})
    case(c, "tab-in-regex", '{"pattern": "^\t+", "replace": "  "}', {"pattern": "^\t+", "replace": "  "})
    case(
        c,
        "yaml-indent",
        '{"path": "ci.yml", "content": "jobs:\n  test:\n    runs-on: linux\n    steps:\n      - run: make\n"}',
        {"path": "ci.yml", "content": "jobs:\n  test:\n    runs-on: linux\n    steps:\n      - run: make\n"},
    )
    case(
        c,
        "code-with-escaped-newline",
        '{"path": "x.py", "content": "x = 1\nprint(\\"a\\\\nb\\")\n"}',
        {"path": "x.py", "content": 'x = 1\nprint("a\\nb")\n'},
        "raw newlines between lines, while the code itself holds the two characters backslash-n (a valid \\\\n escape)",
    )
    case(c, "carriage-returns", '{"progress": "10%\r20%\r30%"}', {"progress": "10%\r20%\r30%"})
    case(
        c,
        "email-body",
        '{"to": "kim@example.com", "subject": "Hi", "body": "Hi Kim,\n\n\tSee the attached report.\n\nBest,\nAl"}',
        {"to": "kim@example.com", "subject": "Hi", "body": "Hi Kim,\n\n\tSee the attached report.\n\nBest,\nAl"},
    )


# --------------------------------------------------------------------------- invalid_escapes


def add_invalid_escapes() -> None:
    c = "invalid_escapes"
    case(
        c,
        "program-files",
        r'{"path": "C:\Program Files\Python312\python.exe"}',
        {"path": r"C:\Program Files\Python312\python.exe"},
    )
    case(c, "data-dir", r'{"path": "D:\data\images\cat.png"}', {"path": r"D:\data\images\cat.png"})
    case(
        c, "regex-digits", r'{"pattern": "\d+\.\d+", "field": "version"}', {"pattern": r"\d+\.\d+", "field": "version"}
    )
    case(
        c,
        "regex-include",
        r'{"pattern": "^\s*#\s*include\s*<(\w+)\.h>$"}',
        {"pattern": r"^\s*#\s*include\s*<(\w+)\.h>$"},
    )
    case(c, "latex", r'{"latex": "\sum_{i=1}^{n} x_i \cdot \sqrt{2}"}', {"latex": r"\sum_{i=1}^{n} x_i \cdot \sqrt{2}"})
    case(
        c, "find-exec", r'{"cmd": "find . -name \*.log -exec rm {} \;"}', {"cmd": r"find . -name \*.log -exec rm {} \;"}
    )
    case(c, "sed", r"""{"cmd": "sed -i 's/\s\+$//' notes.txt"}""", {"cmd": r"sed -i 's/\s\+$//' notes.txt"})
    case(
        c,
        "grep-dot",
        r"""{"cmd": "grep -E '^[0-9]+\.[0-9]+$' versions.txt"}""",
        {"cmd": r"grep -E '^[0-9]+\.[0-9]+$' versions.txt"},
    )
    case(
        c,
        "shell-dollar",
        r'{"cmd": "echo \$HOME is $HOME"}',
        {"cmd": r"echo \$HOME is $HOME"},
        "the backslash is meaningful to the shell: kept",
    )
    case(
        c,
        "escaped-apostrophe",
        r"""{"message": "Don\'t forget the meeting"}""",
        {"message": "Don't forget the meeting"},
        "judgement call: \\' is a JS/Python escape for an apostrophe in prose; read as the apostrophe",
    )
    case(
        c,
        "printf-hex",
        r'{"cmd": "printf \"\x1b[32mok\x1b[0m\\n\""}',
        {"cmd": r'printf "\x1b[32mok\x1b[0m\n"'},
        '\\x is not a JSON escape: kept literally for printf; \\" and \\\\ are valid and decoded',
    )
    case(
        c,
        "half-doubled-path",
        r'{"dir": "C:\\Users\\ann\Desktop"}',
        {"dir": r"C:\Users\ann\Desktop"},
        "two backslashes are escaped, the last is not: every reading gives the same path",
    )
    case(
        c,
        "python-source",
        r'{"path": "parse.py", "content": "import re\nNUM = re.compile(r\"\d+(\.\d+)?\")\n"}',
        {"path": "parse.py", "content": 'import re\nNUM = re.compile(r"' + r"\d+(\.\d+)?" + '")\n'},
        '\\n and \\" are valid escapes (line breaks, quotes); \\d and \\. are not and keep their backslash',
    )
    case(
        c,
        "path-with-valid-escapes",
        r'{"path": "C:\Users\bob\notes.txt"}',
        {"path": r"C:\Users\bob\notes.txt"},
        "trap: \\b and \\n are valid JSON escapes (backspace, newline) but the model plainly meant a Windows path;"
        " the string also has the invalid \\U, so every backslash is taken literally",
    )
    case(
        c,
        "latex-with-valid-escapes",
        r'{"latex": "\frac{a}{b} + \beta"}',
        {"latex": r"\frac{a}{b} + \beta"},
        "trap: \\f and \\b are valid JSON escapes but this is LaTeX; the backslashes are literal",
    )
    case(
        c,
        "escaped-space",
        r'{"cmd": "cd /Volumes/My\ Drive/photos && ls"}',
        {"cmd": r"cd /Volumes/My\ Drive/photos && ls"},
    )
    case(c, "phone-regex", r'{"regex": "\(\d{3}\) \d{3}-\d{4}"}', {"regex": r"\(\d{3}\) \d{3}-\d{4}"})
    case(
        c,
        "markdown-escapes",
        r'{"text": "Use \[link\](url) and \*bold\*"}',
        {"text": r"Use \[link\](url) and \*bold\*"},
    )
    case(
        c,
        "backslash-u-not-hex",
        r'{"home": "C:\users\admin"}',
        {"home": r"C:\users\admin"},
        "\\u not followed by four hex digits is not a unicode escape",
    )
    case(
        c,
        "trailing-backslash",
        r'{"dest": "E:\Media\", "overwrite": true}',
        {"dest": "E:\\Media\\", "overwrite": True},
        'hard: the path ends in a backslash, so the model wrote \\" where the string should close',
    )
    case(
        c,
        "powershell",
        r'{"cmd": "Get-ChildItem -Path .\src -Recurse | Select-String \"TODO\""}',
        {"cmd": r'Get-ChildItem -Path .\src -Recurse | Select-String "TODO"'},
    )


# --------------------------------------------------------------------------- truncated_close


def add_truncated_close() -> None:
    c = "truncated_close"
    case(
        c,
        "object",
        r'{"path": "src/main.rs", "line": 10',
        {"path": "src/main.rs", "line": 10},
        "judgement call: the number may have been longer; keep what was written",
    )
    case(c, "nested-object", r'{"filters": {"lang": "en", "safe": true', {"filters": {"lang": "en", "safe": True}})
    case(c, "array-in-object", r'{"files": ["a.py", "b.py"', {"files": ["a.py", "b.py"]})
    case(c, "deep", r'{"a": {"b": {"c": {"d": [1, 2, 3]', {"a": {"b": {"c": {"d": [1, 2, 3]}}}})
    case(c, "string-value", r'{"query": "weather in Paris tomorrow"', {"query": "weather in Paris tomorrow"})
    case(
        c,
        "number",
        r'{"city": "Quito", "timeout": 30',
        {"city": "Quito", "timeout": 30},
        "judgement call: the number may have been longer; keep what was written",
    )
    case(c, "literals", r'{"recursive": true, "parent": null', {"recursive": True, "parent": None})
    case(
        c,
        "pretty",
        lines("{", '  "title": "Fix login bug",', '  "labels": ["bug", "auth"],', '  "assignee": "kim"'),
        {"title": "Fix login bug", "labels": ["bug", "auth"], "assignee": "kim"},
    )
    case(
        c,
        "top-level-array",
        r'[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}',
        [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}],
    )
    case(
        c,
        "mismatched-inner",
        r'{"tags": ["a", "b"}',
        {"tags": ["a", "b"]},
        "the array's ']' is missing before the object's '}'",
    )
    case(c, "after-empty-array", r'{"items": []', {"items": []})
    case(c, "mixed-stack", r'{"a": 1, "b": {"c": [1, 2, {"d": "e"}', {"a": 1, "b": {"c": [1, 2, {"d": "e"}]}})
    case(c, "trailing-whitespace", '{"city": "Oslo", "days": 2\n\n', {"city": "Oslo", "days": 2})
    case(c, "unicode", r'{"city": "東京", "units": "metric"', {"city": "東京", "units": "metric"})
    case(
        c,
        "code-content",
        r'{"path": "x.sh", "content": "#!/bin/sh\necho \"done\"\n"',
        {"path": "x.sh", "content": '#!/bin/sh\necho "done"\n'},
    )
    case(
        c,
        "array-of-objects",
        r'{"attendees": [{"name": "Ana"}, {"name": "Bo"}',
        {"attendees": [{"name": "Ana"}, {"name": "Bo"}]},
    )
    case(c, "exponent", r'{"lr": 1e-5, "warmup": 0.1', {"lr": 1e-05, "warmup": 0.1})
    case(c, "top-array-objects", r'[{"done": true}, {"done": false', [{"done": True}, {"done": False}])
    case(
        c,
        "sql",
        r'{"sql": "DELETE FROM sessions WHERE expires_at < now()", "dry_run": false',
        {"sql": "DELETE FROM sessions WHERE expires_at < now()", "dry_run": False},
    )


# --------------------------------------------------------------------------- truncated_string


def add_truncated_string() -> None:
    c = "truncated_string"
    case(c, "query", r'{"query": "how to parse json in ru', {"query": "how to parse json in ru"})
    case(
        c,
        "code-content",
        r'{"path": "main.py", "content": "import sys\n\ndef main():\n    print(\"hel',
        {"path": "main.py", "content": 'import sys\n\ndef main():\n    print("hel'},
    )
    case(
        c,
        "dangling-backslash",
        '{"content": "line one\\',
        {"content": "line one"},
        "the cut fell after the backslash of an escape: the half escape is dropped",
    )
    case(
        c,
        "partial-unicode-escape",
        r'{"text": "caf\u00',
        {"text": "caf"},
        "the cut fell inside a \\u escape: the half escape is dropped",
    )
    case(c, "nested", r'{"a": {"b": ["x", "parti', {"a": {"b": ["x", "parti"]}})
    case(
        c,
        "trailing-space",
        r'{"title": "Meeting with the ',
        {"title": "Meeting with the "},
        "judgement call: the trailing space is kept (no data dropped)",
    )
    case(c, "emoji", '{"msg": "Great job 🎉 see you tomor', {"msg": "Great job 🎉 see you tomor"})
    case(
        c,
        "url",
        r'{"url": "https://example.com/search?q=json%20rep',
        {"url": "https://example.com/search?q=json%20rep"},
    )
    case(
        c,
        "sql",
        r"""{"sql": "SELECT * FROM orders WHERE status = 'pend""",
        {"sql": "SELECT * FROM orders WHERE status = 'pend"},
    )
    case(c, "escaped-quote", r'{"cmd": "grep -rn \"TO', {"cmd": 'grep -rn "TO'})
    case(c, "array-of-strings", r'{"names": ["alpha", "beta", "gam', {"names": ["alpha", "beta", "gam"]})
    case(
        c,
        "just-opened",
        r'{"a": 1, "b": "',
        {"a": 1, "b": ""},
        "judgement call: the string was opened, so the member is kept with an empty value",
    )
    case(
        c,
        "pretty",
        lines("{", '  "subject": "Quarterly report",', r'  "body": "Hi team,\n\nPlease find attached the numb'),
        {"subject": "Quarterly report", "body": "Hi team,\n\nPlease find attached the numb"},
    )
    case(c, "regex-code", r'{"code": "re.sub(r\"\\s+\", \" \", te', {"code": r're.sub(r"\s+", " ", te'})
    case(c, "windows-path", r'{"path": "C:\\Users\\bo', {"path": r"C:\Users\bo"})
    case(
        c,
        "after-escaped-backslash",
        '{"path": "C:\\\\Users\\\\',
        {"path": "C:\\Users\\"},
        "the text ends in \\\\, a complete escape: the final backslash is data and is kept",
    )
    case(c, "argv", r'["git", "commit", "-m", "wip: refac', ["git", "commit", "-m", "wip: refac"])
    case(c, "first-value", r'{"city": "San Fran', {"city": "San Fran"})
    case(
        c,
        "after-numbers",
        r'{"lat": 52.52, "lon": 13.405, "label": "Branden',
        {"lat": 52.52, "lon": 13.405, "label": "Branden"},
    )


# --------------------------------------------------------------------------- truncated_dangling


def add_truncated_dangling() -> None:
    c = "truncated_dangling"
    case(c, "after-comma", r'{"city": "Oslo", "days": 3,', {"city": "Oslo", "days": 3})
    case(c, "after-key", r'{"city": "Oslo", "units"', {"city": "Oslo"})
    case(c, "after-colon", r'{"city": "Oslo", "units":', {"city": "Oslo"})
    case(c, "after-colon-space", r'{"city": "Oslo", "units": ', {"city": "Oslo"})
    case(
        c,
        "partial-key",
        r'{"city": "Oslo", "uni',
        {"city": "Oslo"},
        "the cut fell inside a key: the partial key has no value and is dropped",
    )
    case(c, "nested-after-colon", r'{"filters": {"lang": "en", "region":', {"filters": {"lang": "en"}})
    case(c, "array-after-comma", r'{"ids": [1, 2,', {"ids": [1, 2]})
    case(c, "array-just-opened", r'{"ids": [', {"ids": []}, "judgement call: the array was opened, so it is kept empty")
    case(
        c,
        "object-just-opened",
        r'{"path": "a.txt", "options": {',
        {"path": "a.txt", "options": {}},
        "judgement call: the object was opened, so it is kept empty",
    )
    case(c, "only-brace", "{", {}, "judgement call: nothing but the opening brace")
    case(c, "pretty-after-comma", '{\n  "path": "a.txt",\n  ', {"path": "a.txt"})
    case(
        c,
        "key-in-second-object",
        r'[{"a": 1}, {"b"',
        [{"a": 1}, {}],
        "judgement call: the second object was opened; its dangling key is dropped and it stays empty",
    )
    case(c, "top-array-comma", r'[{"name": "ls"},', [{"name": "ls"}])
    case(c, "commas-in-previous-string", r'{"text": "a, b, c", "lang":', {"text": "a, b, c"})
    case(c, "unicode-key", r'{"città": "Roma", "paese"', {"città": "Roma"})
    case(c, "write-file-content-key", r'{"path": "src/app.py", "content":', {"path": "src/app.py"})
    case(
        c,
        "partial-true",
        r'{"path": "a", "recursive": tr',
        {"path": "a", "recursive": True},
        "judgement call: 'tr' can only be the start of true, so it is completed rather than dropped",
    )
    case(
        c, "lone-minus", r'{"offset": -', {}, "judgement call: a '-' with no digit is no number; the member is dropped"
    )
    case(c, "nested-array-object", r'{"events": [{"title": "A", "at":', {"events": [{"title": "A"}]})


# --------------------------------------------------------------------------- code_fence


def add_code_fence() -> None:
    c = "code_fence"
    case(c, "json", '```json\n{"path": "README.md"}\n```', {"path": "README.md"})
    case(c, "no-language", '```\n{"city": "Hanoi", "units": "metric"}\n```', {"city": "Hanoi", "units": "metric"})
    case(
        c,
        "uppercase-language",
        '```JSON\n{"query": "vector databases", "limit": 3}\n```',
        {"query": "vector databases", "limit": 3},
    )
    case(
        c,
        "js-language",
        '```js\n{"url": "https://example.com", "method": "HEAD"}\n```',
        {"url": "https://example.com", "method": "HEAD"},
    )
    case(
        c,
        "prose-both-sides",
        'Here is the call:\n\n```json\n{"path": "src/main.rs", "start_line": 1, "end_line": 50}\n```\n\nThis reads the first 50 lines.',
        {"path": "src/main.rs", "start_line": 1, "end_line": 50},
    )
    case(
        c,
        "unclosed",
        '```json\n{"query": "rust serde default"}\n',
        {"query": "rust serde default"},
        "the closing fence never came",
    )
    case(c, "indented", '  ```json\n  {"a": 1, "b": [2]}\n  ```', {"a": 1, "b": [2]})
    case(
        c,
        "fence-inside-string",
        '```json\n{"path": "README.md", "content": "# Demo\\n\\n```python\\nprint(1)\\n```\\n"}\n```',
        {"path": "README.md", "content": "# Demo\n\n```python\nprint(1)\n```\n"},
        "the string content contains its own ``` fence",
    )
    case(c, "single-line", '```{"city": "Rome"}```', {"city": "Rome"})
    case(c, "inline-backticks", 'Use `{"city": "Rome", "days": 1}` as the arguments.', {"city": "Rome", "days": 1})
    case(
        c,
        "pretty-in-fence",
        '```json\n{\n    "name": "run_shell",\n    "arguments": {\n        "cmd": "make test"\n    }\n}\n```',
        {"name": "run_shell", "arguments": {"cmd": "make test"}},
    )
    case(
        c,
        "braces-in-trailing-prose",
        '```json\n{"template": "welcome"}\n```\nReplace {placeholder} values as needed.',
        {"template": "welcome"},
    )
    case(
        c,
        "array",
        '```json\n[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}]\n```',
        [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": 1}}],
    )
    case(c, "crlf", '```json\r\n{"a": 1, "b": "two"}\r\n```\r\n', {"a": 1, "b": "two"})
    case(
        c, "tilde-fence", '~~~json\n{"repo": "toolmend", "branch": "main"}\n~~~', {"repo": "toolmend", "branch": "main"}
    )
    case(
        c,
        "tool-call-language",
        '```tool_call\n{"name": "get_weather", "arguments": {"city": "Accra"}}\n```',
        {"name": "get_weather", "arguments": {"city": "Accra"}},
    )
    case(
        c,
        "escapes-and-unicode",
        '```json\n{"path": "C:\\\\temp\\\\é.txt", "note": "ok \\"quoted\\" ✓"}\n```',
        {"path": "C:\\temp\\é.txt", "note": 'ok "quoted" ✓'},
    )
    case(c, "space-before-language", '``` json\n{"id": 7}\n```', {"id": 7})


# --------------------------------------------------------------------------- prose_around


def add_prose_around() -> None:
    c = "prose_around"
    case(c, "before", 'Sure! Here are the arguments: {"path": "src/main.rs"}', {"path": "src/main.rs"})
    case(c, "after", '{"city": "Madrid"}\n\nLet me know if you need anything else.', {"city": "Madrid"})
    case(
        c,
        "both-with-quotes",
        'I will call "read_file" with: {"path": "notes.txt", "start_line": 1} and then summarize it.',
        {"path": "notes.txt", "start_line": 1},
    )
    case(
        c,
        "brackets-in-prose",
        'Step [1]: {"cmd": "ls"}',
        {"cmd": "ls"},
        "hard: the '[1]' before the object is prose, not a JSON array",
    )
    case(
        c,
        "braces-in-trailing-prose",
        '{"path": "config.yaml"}\n(Note: the path is relative to {project_root}.)',
        {"path": "config.yaml"},
    )
    case(
        c,
        "hermes-tags",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lima"}}\n</tool_call>',
        {"name": "get_weather", "arguments": {"city": "Lima"}},
    )
    case(
        c,
        "react",
        'Action: search\nAction Input: {"query": "rust borrow checker", "max_results": 3}\nObservation:',
        {"query": "rust borrow checker", "max_results": 3},
    )
    case(
        c,
        "special-tokens",
        '<|python_tag|>{"name": "calc", "parameters": {"expr": "2+2"}}<|eom_id|>',
        {"name": "calc", "parameters": {"expr": "2+2"}},
    )
    case(
        c,
        "think-block",
        '<think>The user wants the weather. I should use metric units.</think>\n{"city": "Nairobi", "units": "metric"}',
        {"city": "Nairobi", "units": "metric"},
    )
    case(
        c,
        "explanation-after",
        'Arguments:\n\n{"path": "a.txt", "content": "hi"}\n\nI chose to overwrite because the file is small.',
        {"path": "a.txt", "content": "hi"},
    )
    case(
        c,
        "french",
        'Voici les arguments : {"ville": "Genève", "jours": 2}. Bonne journée !',
        {"ville": "Genève", "jours": 2},
    )
    case(c, "period-after", 'The answer is {"value": 42}.', {"value": 42})
    case(c, "label-prefix", 'JSON: {"ok": true}', {"ok": True})
    case(
        c,
        "array-in-prose",
        'The calls are: [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}] — run them in order.',
        [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}],
    )
    case(
        c,
        "apostrophes-in-prose",
        "Here's what I'll send: {\"query\": \"it's raining\"} — that's it.",
        {"query": "it's raining"},
        "apostrophes in the prose are not single-quoted strings",
    )
    case(
        c,
        "inline-tags",
        '<tool_call>{"name": "x", "arguments": {"a": 1}}</tool_call>\nDone.',
        {"name": "x", "arguments": {"a": 1}},
    )
    case(
        c,
        "pretty-between-prose",
        'Okay, calling the tool now.\n\n{\n  "cmd": "df -h"\n}\n\nWaiting for the output...',
        {"cmd": "df -h"},
    )
    case(c, "colon-heavy-prose", 'Note: time is 10:30; use: {"at": "10:30", "tz": "UTC"}', {"at": "10:30", "tz": "UTC"})


# --------------------------------------------------------------------------- json_string_args


def add_json_string_args() -> None:
    c = "json_string_args"
    case(c, "simple", r'"{\"path\": \"README.md\"}"', {"path": "README.md"})
    case(c, "inner-escaped-quotes", r'"{\"cmd\": \"echo \\\"hi\\\"\"}"', {"cmd": 'echo "hi"'})
    case(c, "unicode-escape", r'"{\"city\": \"Z\u00fcrich\"}"', {"city": "Zürich"})
    case(c, "windows-path", r'"{\"path\": \"C:\\\\Users\\\\ann\"}"', {"path": r"C:\Users\ann"})
    case(
        c,
        "single-quote-wrapper",
        r"""'{"a": 1, "b": [true, null]}'""",
        {"a": 1, "b": [True, None]},
        "judgement call: the object wrapped in single quotes like a Python/JS string literal",
    )
    case(c, "pretty-encoded", r'"{\n  \"query\": \"rust\",\n  \"limit\": 5\n}"', {"query": "rust", "limit": 5})
    case(c, "array", r'"[{\"name\": \"ls\", \"arguments\": {}}]"', [{"name": "ls", "arguments": {}}])
    case(
        c,
        "scalars",
        r'"{\"n\": 3, \"ratio\": 0.25, \"ok\": false, \"next\": null}"',
        {"n": 3, "ratio": 0.25, "ok": False, "next": None},
    )
    case(
        c,
        "inner-json-string",
        r'"{\"url\": \"https://x.example\", \"body\": \"{\\\"k\\\": 1}\"}"',
        {"url": "https://x.example", "body": '{"k": 1}'},
        "decode one level only: body was a string inside the object and stays a string",
    )
    case(c, "trailing-newline", '"{\\"city\\": \\"Oslo\\"}"\n', {"city": "Oslo"})
    case(
        c,
        "double-encoded",
        r'"\"{\\\"a\\\": 1}\""',
        {"a": 1},
        "judgement call: encoded twice; decoded until the object appears",
    )
    case(
        c,
        "content-escapes",
        r'"{\"path\": \"a.txt\", \"content\": \"line1\\nline2\\n\"}"',
        {"path": "a.txt", "content": "line1\nline2\n"},
    )
    case(
        c,
        "sql",
        r'''"{\"sql\": \"SELECT * FROM t WHERE name = 'O''Brien'\"}"''',
        {"sql": "SELECT * FROM t WHERE name = 'O''Brien'"},
    )
    case(c, "regex", r'"{\"pattern\": \"\\\\d+\"}"', {"pattern": r"\d+"})
    case(
        c,
        "url",
        r'"{\"url\": \"https://example.com/a?b=c&d=e\", \"method\": \"GET\"}"',
        {"url": "https://example.com/a?b=c&d=e", "method": "GET"},
    )
    case(c, "empty", r'"{}"', {})
    case(c, "spaces-around", r' "{\"query\": \"hello world\"}" ', {"query": "hello world"})


# --------------------------------------------------------------------------- unescaped_quotes


def add_unescaped_quotes() -> None:
    c = "unescaped_quotes"
    case(c, "speech", r'{"text": "He said "hi" to me"}', {"text": 'He said "hi" to me'})
    case(c, "print-call", r'{"code": "print("hello, world")"}', {"code": 'print("hello, world")'})
    case(
        c,
        "commit-message",
        r'{"cmd": "git commit -m "fix: handle empty input""}',
        {"cmd": 'git commit -m "fix: handle empty input"'},
        "the value ends in an inner quote right before the closing one",
    )
    case(
        c,
        "html-attr",
        r'{"html": "<a href="https://example.com">link</a>", "target": "_blank"}',
        {"html": '<a href="https://example.com">link</a>', "target": "_blank"},
    )
    case(
        c,
        "sql-idents",
        r'{"sql": "SELECT "user_id", "name" FROM "users""}',
        {"sql": 'SELECT "user_id", "name" FROM "users"'},
        "hard: the inner '\", \"' looks like a member separator",
    )
    case(c, "title", r'{"title": "The "Rust" book", "year": 2018}', {"title": 'The "Rust" book', "year": 2018})
    case(
        c,
        "leading-quote",
        r'{"q": ""quoted phrase" site:example.com", "n": 5}',
        {"q": '"quoted phrase" site:example.com', "n": 5},
    )
    case(c, "several", r'{"note": "Use "a" or "b", never "c"."}', {"note": 'Use "a" or "b", never "c".'})
    case(c, "in-array", r'["say "yes"", "ok"]', ['say "yes"', "ok"])
    case(
        c,
        "json-in-string",
        r'{"body": "{"k": 1}"}',
        {"body": '{"k": 1}'},
        "hard: the string holds JSON with unescaped quotes",
    )
    case(
        c,
        "colon-after-quote",
        r'{"msg": "Error: "file not found": check the path"}',
        {"msg": 'Error: "file not found": check the path'},
        "hard: '\": ' inside the value looks like a key separator",
    )
    case(
        c,
        "csv-row",
        r'{"row": "1,"Smith, John",42"}',
        {"row": '1,"Smith, John",42'},
        "hard: CSV quoting inside the value",
    )
    case(c, "subscript", r'{"code": "x = d["key"]"}', {"code": 'x = d["key"]'})
    case(c, "then-member", r'{"title": "My "best" day", "mood": "happy"}', {"title": 'My "best" day', "mood": "happy"})
    case(
        c,
        "markdown-content",
        r'{"content": "# Title\n\nRun "make" first.\n"}',
        {"content": '# Title\n\nRun "make" first.\n'},
    )
    case(
        c, "quote-before-period", r'{"line": "She whispered "go." and left"}', {"line": 'She whispered "go." and left'}
    )
    case(
        c,
        "search-phrase",
        r'{"search": "error "connection refused" nginx", "limit": 10}',
        {"search": 'error "connection refused" nginx', "limit": 10},
    )
    case(
        c,
        "key-value-text",
        r'{"json_example": "use "key": "value" pairs"}',
        {"json_example": 'use "key": "value" pairs'},
        "hard: the value spells a JSON member",
    )
    case(c, "alt-text", r'{"alt": "A "smiling" cat", "src": "cat.png"}', {"alt": 'A "smiling" cat', "src": "cat.png"})


# --------------------------------------------------------------------------- missing_commas


def add_missing_commas() -> None:
    c = "missing_commas"
    case(c, "members", r'{"path": "a.txt" "mode": "w"}', {"path": "a.txt", "mode": "w"})
    case(
        c,
        "pretty-members",
        lines("{", '  "city": "Denver"', '  "units": "imperial"', '  "days": 5', "}"),
        {"city": "Denver", "units": "imperial", "days": 5},
    )
    case(c, "numbers-array", r'{"ids": [1 2 3]}', {"ids": [1, 2, 3]})
    case(c, "strings-array", r'{"args": ["-la" "--color=auto" "/tmp"]}', {"args": ["-la", "--color=auto", "/tmp"]})
    case(c, "objects-array", r'[{"name": "a"} {"name": "b"}]', [{"name": "a"}, {"name": "b"}])
    case(c, "after-object", r'{"filters": {"lang": "en"} "limit": 10}', {"filters": {"lang": "en"}, "limit": 10})
    case(c, "after-array", r'{"tags": ["x", "y"] "count": 2}', {"tags": ["x", "y"], "count": 2})
    case(
        c,
        "after-literals",
        r'{"verbose": true "dry_run": null "force": false}',
        {"verbose": True, "dry_run": None, "force": False},
    )
    case(c, "one-of-several", r'{"a": 1, "b": 2 "c": 3, "d": 4}', {"a": 1, "b": 2, "c": 3, "d": 4})
    case(c, "after-escaped-quote", r'{"cmd": "echo \"hi\"" "cwd": "/tmp"}', {"cmd": 'echo "hi"', "cwd": "/tmp"})
    case(c, "matrix", r'{"matrix": [[1, 2] [3, 4]]}', {"matrix": [[1, 2], [3, 4]]})
    case(c, "mixed-array", r'[1 "two" 3.0 false]', [1, "two", 3.0, False])
    case(
        c,
        "negative-numbers",
        r'{"deltas": [1 -2 3]}',
        {"deltas": [1, -2, 3]},
        "judgement call: three numbers, not an expression",
    )
    case(c, "adjacent-strings", r'{"a": "x""b": "y"}', {"a": "x", "b": "y"}, "hard: no whitespace between the members")
    case(c, "dates", r'{"start": "2025-01-01" "end": "2025-01-31"}', {"start": "2025-01-01", "end": "2025-01-31"})
    case(c, "coordinates", r'{"lat": 48.8566 "lon": 2.3522}', {"lat": 48.8566, "lon": 2.3522})
    case(
        c,
        "calls-list",
        lines(
            "[",
            '  {"name": "read_file", "arguments": {"path": "a"}}',
            '  {"name": "read_file", "arguments": {"path": "b"}}',
            "]",
        ),
        [{"name": "read_file", "arguments": {"path": "a"}}, {"name": "read_file", "arguments": {"path": "b"}}],
    )
    case(
        c,
        "nested-object",
        r'{"user": {"id": 1 "name": "Ana"} "active": true}',
        {"user": {"id": 1, "name": "Ana"}, "active": True},
    )


# --------------------------------------------------------------------------- mixed


def add_mixed() -> None:
    c = "mixed"
    case(
        c,
        "python-repr",
        r"""{'path': 'a.py', 'recursive': True, 'depth': None}""",
        {"path": "a.py", "recursive": True, "depth": None},
    )
    case(
        c,
        "fence-single-quotes-trailing",
        "```json\n{'city': 'Oslo', 'days': [1, 2,], 'hourly': False,}\n```",
        {"city": "Oslo", "days": [1, 2], "hourly": False},
    )
    case(
        c,
        "js-object-literal",
        '{\n  // search args\n  query: "rust lifetimes",\n  limit: 5,\n}',
        {"query": "rust lifetimes", "limit": 5},
    )
    case(
        c,
        "prose-trailing-truncated",
        'Here you go: {"path": "a.txt", "lines": [1, 2,]',
        {"path": "a.txt", "lines": [1, 2]},
    )
    case(
        c,
        "encoded-with-trailing-comma",
        r'"{\"path\": \"a.txt\", \"overwrite\": true,}"',
        {"path": "a.txt", "overwrite": True},
    )
    case(c, "single-quoted-truncated", r"""{'query': 'best pizza in Nap""", {"query": "best pizza in Nap"})
    case(
        c,
        "raw-newlines-invalid-escape",
        '{"path": "nums.py", "content": "import re\nNUM = re.compile(r\'\\d+\')\n"}',
        {"path": "nums.py", "content": "import re\nNUM = re.compile(r'\\d+')\n"},
    )
    case(c, "fence-truncated", '```json\n{"query": "weather in Ber', {"query": "weather in Ber"})
    case(
        c,
        "tags-python-literals",
        '<tool_call>\n{"name": "toggle", "arguments": {"enabled": True, "id": None}}\n</tool_call>',
        {"name": "toggle", "arguments": {"enabled": True, "id": None}},
    )
    case(
        c,
        "js-literals-unquoted",
        r"""{name: 'x', value: undefined, ratio: NaN,}""",
        {"name": "x", "value": None, "ratio": None},
    )
    case(
        c,
        "comments-single-quotes",
        "{\n  'path': 'a.txt', // input\n  'mode': 'r'  # read\n}",
        {"path": "a.txt", "mode": "r"},
    )
    case(
        c,
        "python-repr-tuple",
        r"""{'cmd': 'echo "hi"', 'size': (3, 4), 'env': None}""",
        {"cmd": 'echo "hi"', "size": [3, 4], "env": None},
    )
    case(
        c,
        "single-quoted-windows-path",
        r"""{'path': 'C:\Users\ann\data'}""",
        {"path": r"C:\Users\ann\data"},
        "trap: as a Python literal \\U is an error and \\a is a bell; the model meant the path, backslashes literal",
    )
    case(c, "jsonc-fence", '```jsonc\n{\n  "a": 1, // one\n  "b": [2, 3,],\n}\n```', {"a": 1, "b": [2, 3]})
    case(
        c,
        "raw-newlines-unescaped-quotes",
        '{"code": "def f():\n    print("hi")\n"}',
        {"code": 'def f():\n    print("hi")\n'},
        "hard: raw newlines and unescaped quotes in the same code string",
    )
    case(c, "unquoted-missing-comma", r"{a: 1 b: 2}", {"a": 1, "b": 2})
    case(c, "python-dangling", r'{"a": True, "b":', {"a": True})
    case(
        c,
        "all-in",
        'Sure, here it is:\n```python\n{\n    "query": "rust", # language\n    "safe": True,\n}\n```',
        {"query": "rust", "safe": True},
    )
    case(c, "prose-encoded", r'Arguments: "{\"city\": \"Quito\"}"', {"city": "Quito"})
    case(c, "nan-comment-trailing", '{"score": NaN, // not computed yet\n "n": 0,}', {"score": None, "n": 0})
    case(c, "unquoted-single-truncated", r"""{path: 'src/index.ts', line: 12""", {"path": "src/index.ts", "line": 12})
    case(
        c,
        "encoded-truncated",
        r'"{\"query\": \"rust',
        {"query": "rust"},
        "hard: a JSON-encoded object cut inside its inner string",
    )
    case(
        c,
        "prose-python-dict",
        "Calling tool with {'city': 'Lima', 'units': 'metric'}.",
        {"city": "Lima", "units": "metric"},
    )
    case(
        c,
        "unquoted-trailing-raw-newline",
        '{title: "Notes", body: "line 1\nline 2",}',
        {"title": "Notes", "body": "line 1\nline 2"},
    )
    case(
        c,
        "fence-tab-trailing",
        '```json\n{"path": "Makefile", "content": "all:\n\tmake -C src\n",}\n```',
        {"path": "Makefile", "content": "all:\n\tmake -C src\n"},
    )
    case(c, "missing-comma-truncated", r'{"a": 1 "b": [1 2', {"a": 1, "b": [1, 2]})


# --------------------------------------------------------------------------- large (generated)

BLOB_LINES: tuple[str, ...] = (
    r"def @FN@(path: str, limit: int = @N@) -> list[str]:",
    r'    """Read @W@ rows from "path"; lines starting with # are skipped."""',
    r"    with open(path, encoding='utf-8') as fh:",
    r'        rows = [ln.rstrip("\n") for ln in fh if not ln.startswith("#")]',
    r'    return [r for r in rows if re.match(r"^\w+\s*=\s*\S+$", r)][:limit]',
    r"",
    r'WIN_DIR = "C:\\ProgramData\\@W@\\cache"',
    r"""SQL = "SELECT id, name FROM @W@ WHERE note LIKE '%\"%' LIMIT @N@" """,
    r'print(f"{len(rows)} rows — @U@ ✓")',
    r'    log.info("%s -> %s", src, dst)  # @U@',
    r"const @FN@ = (s) => s.replace(/\\/g, '/').split('/');",
    r"""echo "tab\there" | sed -E 's/[[:space:]]+/ /g'""",
    r'    if value in {"yes", "true", "1"}:',
    r'        return {"ok": True, "n": @N@, "tag": "@W@"}',
    r"class @CLS@(Exception):",
    "\tpass  # tab-indented on purpose",
    r'    assert parse("[1, 2,]") == [1, 2], "trailing comma"',
    r"    raw = b'\x00\xff' + '@U@'.encode()",
)
WORDS: tuple[str, ...] = (
    "users",
    "orders",
    "config",
    "tokens",
    "cache",
    "index",
    "report",
    "session",
    "queue",
    "events",
)
UNI: tuple[str, ...] = ("café", "Zürich", "東京", "Łódź", "🌸", "ñandú", "Ελλάδα", "€", "—", "한국어")


def code_blob(seed: int, nbytes: int) -> str:
    """Deterministic code-like text, ending in a newline, whose JSON string encoding
    (without the quotes) is at most ``nbytes`` UTF-8 bytes."""
    r = random.Random(seed)
    out: list[str] = []
    size = 0
    while True:
        line = (
            r.choice(BLOB_LINES)
            .replace("@FN@", f"{r.choice(WORDS)}_{r.choice(WORDS)}")
            .replace("@CLS@", r.choice(WORDS).title() + "Error")
            .replace("@W@", r.choice(WORDS))
            .replace("@U@", r.choice(UNI))
            .replace("@N@", str(r.randint(0, 9999)))
        )
        n = len(dumps(line).encode()) - 2 + 2  # minus the quotes, plus the escaped newline
        if size + n > nbytes:
            break
        out.append(line)
        size += n
    return "\n".join(out) + "\n"


def raw_newline_encoding(s: str) -> str:
    """JSON string body with every newline left raw (a common model failure)."""
    return "\n".join(dumps(part)[1:-1] for part in s.split("\n"))


def truncate_inside_string(text: str, frac: float) -> tuple[str, str]:
    """Cut ``text`` at about ``frac`` of its length, inside a string, never mid-escape.

    Returns the cut text and the decoded value of the string that was cut.
    """
    cut = int(len(text) * frac)
    while True:
        prefix = text[:cut]
        tail = prefix[len(prefix.rstrip("\\")) :]
        if len(tail) % 2 == 0:  # not in the middle of a backslash escape
            try:
                value = json.loads(prefix + '"}')
            except json.JSONDecodeError:
                pass
            else:
                return prefix, value["content"]
        cut -= 1


def add_large() -> None:
    # 16 KB write_file call shared by the four rows that bench_repair.py reports separately.
    blob16 = code_blob(16, 16 * 1024 - 80)
    obj16 = {"path": "src/loader/rows.py", "content": blob16, "overwrite": True, "mode": 420}
    text16 = dumps(obj16)
    require(16 * 1024 - 200 < len(text16.encode()) <= 16 * 1024, f"16 KB row is {len(text16.encode())} bytes")
    case("valid", "large-16k-write-file", text16, obj16, "16 KB control for the large rows of benches/bench_repair.py")

    c = "large"
    case(c, "trailing-comma-16k", text16[:-1] + ",}", obj16, "one trailing comma after the last member")
    case(c, "single-quoted-key-16k", "{'path'" + text16[len('{"path"') :], obj16, "only the first key is single-quoted")
    cut_text, cut_content = truncate_inside_string(text16, 0.9)
    case(
        c,
        "truncated-90pct-16k",
        cut_text,
        {"path": obj16["path"], "content": cut_content},
        "cut at 90% of the text, inside content; later members were never written",
    )

    blob8 = code_blob(8, 8 * 1024 - 80)
    case(
        c,
        "raw-newlines-8k",
        '{"path": "src/app.py", "content": "' + raw_newline_encoding(blob8) + '"}',
        {"path": "src/app.py", "content": blob8},
        "every newline in content is a raw newline",
    )

    blob4 = code_blob(4, 4 * 1024)
    obj4 = {"path": "lib/util.py", "content": blob4}
    case(c, "missing-close-4k", dumps(obj4)[:-1], obj4, "the final } is missing")

    blob12 = code_blob(12, 12 * 1024)
    obj12 = {"path": "tools/gen.py", "content": blob12, "overwrite": False}
    case(
        c,
        "fence-prose-12k",
        "I'll write the generator now.\n\n```json\n" + dumps(obj12) + "\n```\n\nDone — the file is in place.",
        obj12,
        "fenced and surrounded by prose",
    )

    blob6 = code_blob(6, 6 * 1024)
    marker = "# data lives in C:\\data\\cache\n"
    mid = blob6.index("\n", len(blob6) // 2) + 1
    blob6 = blob6[:mid] + marker + blob6[mid:]
    text6 = dumps({"path": "etl/paths.py", "content": blob6})
    good = "C:\\\\data\\\\cache"
    require(text6.count(good) == 1, "invalid-escape-6k marker must occur once")
    case(
        c,
        "invalid-escape-6k",
        text6.replace(good, "C:\\data\\cache"),
        {"path": "etl/paths.py", "content": blob6},
        "one Windows path inside content has single backslashes (\\d, \\c are invalid escapes)",
    )

    blob2 = code_blob(2, 2 * 1024)
    marker2 = '# see the "main" entry point below\n'
    mid = blob2.index("\n", len(blob2) // 2) + 1
    blob2 = blob2[:mid] + marker2 + blob2[mid:]
    text2 = dumps({"path": "app/__init__.py", "content": blob2})
    good2 = '\\"main\\"'
    require(text2.count(good2) == 1, "unescaped-quote-2k marker must occur once")
    case(
        c,
        "unescaped-quote-2k",
        text2.replace(good2, '"main"'),
        {"path": "app/__init__.py", "content": blob2},
        'hard: one pair of inner quotes ("main") is not escaped; the rest of content is',
    )

    blob10 = code_blob(10, 10 * 1024)
    obj10 = {"path": "jobs/cron.py", "content": blob10, "overwrite": True, "backup": None}
    text10 = dumps(obj10)
    require(text10.endswith('"overwrite": true, "backup": null}'), "python-literals-10k tail")
    case(
        c,
        "python-literals-10k",
        text10[: -len('true, "backup": null}')] + 'True, "backup": None}',
        obj10,
        "True and None after the big content string",
    )

    blob3 = code_blob(3, 3 * 1024)
    obj3 = {"path": "web/routes.js", "content": blob3}
    case(c, "comment-3k", "{ // new module\n" + dumps(obj3)[1:], obj3, "a line comment before the first key")

    blob5 = code_blob(5, 5 * 1024)
    obj5 = {"path": "src/parse.py", "content": blob5}
    case(
        c,
        "dangling-key-5k",
        dumps(obj5)[:-1] + ', "mode":',
        obj5,
        "cut right after a key and colon that follow the content",
    )


# --------------------------------------------------------------------------- checks and output


class StrictConstantError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise StrictConstantError(name)


def strict_loads(text: str) -> Any:
    """json.loads that also rejects NaN/Infinity (which Python accepts by default)."""
    return json.loads(text, parse_constant=_reject_constant)


def same_value(a: Any, b: Any) -> bool:
    """Equality with JSON semantics: bool is not a number, 1 == 1.0, dicts ignore order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def check(cases: list[Case]) -> list[str]:
    errors: list[str] = []
    seen: set[str] = set()
    for rec in cases:
        cid, cat, text = rec["id"], rec["category"], rec["input"]
        if cid in seen:
            errors.append(f"{cid}: duplicate id")
        seen.add(cid)
        if cat not in CATEGORIES or not cid.startswith(cat + "/"):
            errors.append(f"{cid}: bad category {cat!r}")
        try:
            strict_loads(json.dumps(rec["expected"], allow_nan=False))
        except (ValueError, TypeError) as exc:
            errors.append(f"{cid}: expected is not strict JSON: {exc}")
        try:
            parsed = strict_loads(text)
            ok = True
        except ValueError:
            parsed, ok = None, False
        if cat == "valid":
            if not ok or not same_value(parsed, rec["expected"]):
                errors.append(f"{cid}: valid case does not parse to expected")
        elif ok and same_value(parsed, rec["expected"]):
            errors.append(f"{cid}: input is already valid JSON for expected (not a defect)")
    counts = Counter(rec["category"] for rec in cases)
    for cat in CATEGORIES:
        need = MIN_LARGE if cat == "large" else MIN_PER_CATEGORY
        if counts[cat] < need:
            errors.append(f"category {cat}: {counts[cat]} cases, need {need}")
    return errors


def build() -> list[Case]:
    CASES.clear()
    for add in (
        add_valid,
        add_trailing_comma,
        add_single_quotes,
        add_unquoted_keys,
        add_python_literals,
        add_js_literals,
        add_comments,
        add_control_chars,
        add_invalid_escapes,
        add_truncated_close,
        add_truncated_string,
        add_truncated_dangling,
        add_code_fence,
        add_prose_around,
        add_json_string_args,
        add_unescaped_quotes,
        add_missing_commas,
        add_mixed,
        add_large,
    ):
        add()
    order = {cat: i for i, cat in enumerate(CATEGORIES)}
    return sorted(CASES, key=lambda rec: order[rec["category"]])  # stable: keeps authoring order inside a category


def main() -> int:
    cases = build()
    errors = check(cases)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    with OUT.open("w", encoding="utf-8", newline="\n") as fh:
        for rec in cases:
            fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
    counts = Counter(rec["category"] for rec in cases)
    size = OUT.stat().st_size
    print(f"wrote {len(cases)} cases ({size / 1024:.1f} KiB) to {OUT}")
    for cat in CATEGORIES:
        print(f"  {cat:26s} {counts[cat]:3d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
