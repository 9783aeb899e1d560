"""Loading: the settings file, the environment, and the error that names each bad setting."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import (
    SettingsError,
)

from discovery.settings.checks import SettingProblem, SettingsInvalid, consistency_problems
from discovery.settings.model import FILE_DATA, Settings
from discovery.settings.values import CONFIG_FILE_ENV, ENV_PREFIX, SERVICE_LINK

# --- loading -----------------------------------------------------------------


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings in a YAML (.yaml, .yml), TOML (.toml) or JSON (.json) file."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        problem = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SettingsInvalid([SettingProblem("config_file", f"{path}: {problem}")]) from e
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise SettingsInvalid(
                [SettingProblem("config_file", f"{path}: use a .yaml, .yml, .toml or .json file")]
            )
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SettingsInvalid(
            [SettingProblem("config_file", f"{path} is not valid {suffix[1:]}: {first}")]
        ) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsInvalid(
            [SettingProblem("config_file", f"{path}: expected a mapping of setting names")]
        )
    fields = Settings.model_fields
    unknown = sorted(str(k) for k in data if str(k) not in fields)
    if unknown:
        raise SettingsInvalid(
            [SettingProblem(k, f"unknown setting in {path}") for k in unknown], source=str(path)
        )
    return {str(k): v for k, v in data.items()}


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """Variables with our prefix that are no setting (likely typos), for a warning at start."""
    env = os.environ if environ is None else environ
    out = []
    for name in env:
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper == CONFIG_FILE_ENV:
            continue
        rest = upper[len(ENV_PREFIX) :]
        if rest.lower() in Settings.model_fields or SERVICE_LINK.fullmatch(rest):
            continue
        out.append(name)
    return sorted(out)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from `overrides`, the environment, then the settings file, then defaults.

    `config_file` defaults to `$ICS_DISCOVERY_CONFIG_FILE`. Raises
    `SettingsInvalid` naming every bad setting.
    """
    if config_file is None and os.environ.get(CONFIG_FILE_ENV, "").strip():
        config_file = Path(os.environ[CONFIG_FILE_ENV].strip())
    data = read_settings_file(config_file) if config_file is not None else {}
    source = str(config_file) if config_file is not None else ""
    token = FILE_DATA.set(data)
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        raise SettingsInvalid(_problems(e), source=source) from e
    except SettingsError as e:
        raise SettingsInvalid([SettingProblem(_field_in(str(e)), str(e))], source=source) from e
    finally:
        FILE_DATA.reset(token)
    problems = consistency_problems(settings)
    if problems:
        raise SettingsInvalid(problems, source=source)
    return settings


def _field_in(message: str) -> str:
    m = re.search(r'field "(\w+)"', message)
    return m.group(1) if m else "settings"


def _problems(e: ValidationError) -> list[SettingProblem]:
    out: list[SettingProblem] = []
    for err in e.errors(include_input=False, include_url=False):
        msg = str(err.get("msg", "invalid"))
        loc = [str(x) for x in err.get("loc", ())]
        setting = loc[0] if loc else "settings"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err.get("type") == "missing":
            msg = "required, not set"
        elif len(loc) > 1:
            msg = f"item {'.'.join(loc[1:])}: {msg}"
        out.append(SettingProblem(setting, msg))
    return out
