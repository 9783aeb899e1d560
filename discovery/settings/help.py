"""`ics-discovery run --help`: the settings reference, rendered from the fields themselves."""

from __future__ import annotations

import textwrap
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic.fields import FieldInfo

from discovery.settings.model import GROUPS, Settings
from discovery.settings.values import CONFIG_FILE_ENV, ENV_PREFIX

# --- help --------------------------------------------------------------------


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _type_text(args[0])
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _type_text(inner[0]) if len(inner) == 1 else "value"
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0])}"
    if origin is dict:
        return f"map to {_type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "|".join(str(m.value) for m in annotation)
    names = {bool: "true|false", int: "integer", float: "number", str: "text", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", "value"))


def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None or value in ([], {}):
        return "empty"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_help(width: int = 100) -> str:
    """The settings reference, rendered from the model's fields."""
    by_group: dict[str, list[tuple[str, FieldInfo]]] = {g: [] for g in GROUPS}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        group = extra.get("group") if isinstance(extra, dict) else None
        by_group[str(group)].append((name, info))
    lines = [
        f"Settings: environment variables {ENV_PREFIX}<NAME>, or NAME: value in a YAML, TOML or",
        f"JSON file given by --config or {CONFIG_FILE_ENV} (environment wins over the file).",
        "Lists: comma-separated or a JSON list. Maps: key=value,key=value or a JSON object.",
    ]
    for group in GROUPS:
        lines += ["", f"{group}:"]
        for name, info in by_group[group]:
            head = (
                f"  {ENV_PREFIX}{name.upper()}  "
                f"({_type_text(info.annotation)}; default: {_default_text(info)})"
            )
            lines.append(head)
            lines += textwrap.wrap(
                info.description or "",
                width=width,
                initial_indent="      ",
                subsequent_indent="      ",
                break_on_hyphens=False,
            )
    return "\n".join(lines) + "\n"
