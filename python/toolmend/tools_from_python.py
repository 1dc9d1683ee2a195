"""OpenAI tool definitions from Python callables (type hints, docstrings) and pydantic models."""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter, ValidationError


@dataclass
class PyTool:
    """A Python tool: its OpenAI definition and how to call it."""

    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any] | None = None
    model: type[BaseModel] | None = None

    def definition(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def call(self, arguments: dict[str, Any]) -> Any:
        """Validates ``arguments`` against the signature and calls the tool (a pydantic model
        tool returns the validated instance). Raises ``ValueError`` for invalid arguments."""
        if self.model is not None:
            try:
                return self.model.model_validate(arguments)
            except ValidationError as e:
                raise ValueError(str(e)) from None
        assert self.func is not None
        sig = inspect.signature(self.func)
        hints = typing.get_type_hints(self.func)
        kwargs: dict[str, Any] = {}
        unknown = set(arguments) - set(sig.parameters)
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            raise ValueError(f"unknown arguments for {self.name}: {sorted(unknown)}")
        for pname, param in sig.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if pname not in arguments:
                if param.default is param.empty:
                    raise ValueError(f"missing required argument {pname!r} for {self.name}")
                continue
            hint = hints.get(pname, Any)
            try:
                kwargs[pname] = TypeAdapter(hint).validate_python(arguments[pname])
            except ValidationError as e:
                raise ValueError(f"argument {pname!r} of {self.name}: {e}") from None
        return self.func(**kwargs)


def _summary(doc: str | None) -> str:
    if not doc:
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ").strip()


def _param_docs(doc: str | None) -> dict[str, str]:
    """``name: text`` lines of an ``Args:`` / ``Parameters`` section (Google or plain style)."""
    out: dict[str, str] = {}
    if not doc:
        return out
    in_args = False
    for line in inspect.cleandoc(doc).splitlines():
        stripped = line.strip()
        if stripped.lower().rstrip(":") in ("args", "arguments", "parameters", "params"):
            in_args = True
            continue
        if in_args:
            if not stripped:
                continue
            if not line.startswith((" ", "\t")) and stripped.endswith(":"):
                break
            name, sep, text = stripped.partition(":")
            name = name.split("(")[0].strip()
            if sep and name.isidentifier():
                out[name] = text.strip()
    return out


def _schema(hint: Any) -> dict[str, Any]:
    """JSON Schema of a type hint (pydantic does the heavy lifting)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return {}
    origin = typing.get_origin(hint)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(hint, getattr(types, "UnionType", ()))):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _schema(args[0])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {
            "type": "string" if all(isinstance(m.value, str) for m in hint) else "integer",
            "enum": [m.value for m in hint],
        }
    schema = TypeAdapter(hint).json_schema()
    schema.pop("title", None)
    return schema


def tool_from_callable(func: Callable[..., Any]) -> PyTool:
    """A tool from a function: its name, the docstring's first paragraph as the description,
    and a parameters schema from the signature's type hints and defaults."""
    sig = inspect.signature(func)
    hints = typing.get_type_hints(func)
    docs = _param_docs(func.__doc__)
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        schema = _schema(hints.get(pname, Any))
        if pname in docs:
            schema["description"] = docs[pname]
        if param.default is param.empty:
            required.append(pname)
        elif param.default is not None and isinstance(param.default, (str, int, float, bool)):
            schema["default"] = param.default
        props[pname] = schema
    params: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    return PyTool(name=func.__name__, description=_summary(func.__doc__), parameters=params, func=func)


def tool_from_model(model: type[BaseModel]) -> PyTool:
    """A tool whose arguments are a pydantic model's fields; calling it yields the instance."""
    schema = model.model_json_schema()
    description = schema.pop("description", None) or _summary(model.__doc__)
    schema.pop("title", None)
    return PyTool(name=model.__name__, description=description or "", parameters=schema, model=model)


def to_tool(obj: Callable[..., Any] | type[BaseModel] | PyTool) -> PyTool:
    if isinstance(obj, PyTool):
        return obj
    if isinstance(obj, type) and issubclass(obj, BaseModel):
        return tool_from_model(obj)
    if callable(obj):
        return tool_from_callable(obj)
    raise TypeError(f"not a tool: {obj!r} (give a function with type hints or a pydantic model class)")
