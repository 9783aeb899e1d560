"""Subcommands of `ics-discovery`, one module each, plus the JSON output they share."""

from __future__ import annotations

import json
import sys
from typing import Any


def json_text(document: Any) -> str:
    """Stable bytes for machine output: sorted keys, ASCII only, two-space indent, newline."""
    return json.dumps(document, sort_keys=True, ensure_ascii=True, indent=2) + "\n"


def print_json(document: Any) -> None:
    """Write `json_text(document)` to standard output."""
    sys.stdout.write(json_text(document))
