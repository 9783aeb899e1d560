"""Structured logs: one JSON object per line, fields as keys, hostile text escaped."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from discovery.logs import configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield None
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.usefixtures("restore_root")
def test_json_lines_carry_extra_fields() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    log = logging.getLogger("discovery.test")
    log.debug("hidden")
    log.info("peers published", extra={"chain_id": 'c\n{"level": "error"}', "peers": 3})
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["msg"] == "peers published"
    assert doc["level"] == "info"
    assert doc["peers"] == 3
    assert doc["chain_id"] == 'c\n{"level": "error"}'
    assert lines[0].isascii()


@pytest.mark.usefixtures("restore_root")
def test_text_lines_escape_values() -> None:
    out = io.StringIO()
    configure_logging("debug", "text", out)
    logging.getLogger("d").warning("left out", extra={"moniker": "x\x1b[2J y"})
    [line] = out.getvalue().splitlines()
    assert line.startswith("WARNING d: ")
    assert "\x1b" not in line
    assert 'moniker="x\\u001b[2J y"' in line
