"""Structured logs: one JSON object per line (or readable text), with each record's fields.

Log collectors in a validator's cluster parse lines, and the service logs text
that comes from the chain (monikers, chain IDs, rejection details). A JSON
line keeps such text inside one escaped string, so a hostile value can neither
break a line nor forge a record; the text format escapes it too. Fields are
passed with `logger.info("msg", extra={...})` and come out as keys.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, TextIO

# Attributes every LogRecord has; anything else came in through `extra`.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra` fields of a record, JSON-ready (other values as their `str`)."""
    out: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        out[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
    return out


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...fields}`, keys sorted, ASCII only."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, sort_keys=True, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: msg key=value ...`, every value escaped onto one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_one_line(v)}" for k, v in sorted(record_fields(record).items()))
        line = f"{record.levelname} {record.name}: {_one_line(record.getMessage())}"
        if record.exc_info:
            line += " error=" + _one_line(self.formatException(record.exc_info))
        return f"{line} {fields}".rstrip()


def _one_line(value: Any) -> str:
    text = str(value)
    if text.isprintable() and " " not in text:
        return text
    return json.dumps(text, ensure_ascii=True)


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send every log record at `level` and above to `stream` (stderr) in `fmt`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
