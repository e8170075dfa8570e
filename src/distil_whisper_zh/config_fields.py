"""dwz's own fields in a model's config.json (`dwz_audio_context`, `dwz_long_form`): how the model reads audio.

transformers keeps unknown config keys as attributes and writes them back on save; CTranslate2 ignores them, and
`dwz export` copies them into the export's config.json, where dwz's CTranslate2 runtime reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from .errors import DwzError

PREFIX = "dwz_"
T = TypeVar("T")


def read_config(folder: str | Path) -> dict:
    """A model folder's config.json (transformers or a CTranslate2 export), or a DwzError naming the file."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DwzError(f"{path}: missing; a model folder needs its config.json") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DwzError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise DwzError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def read_field(config, key: str):
    """The field's value in a transformers config object or a config.json dict (None if absent)."""
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def read_record(config, key: str, kind: type[T]) -> T:
    """The dataclass `kind` a config field holds (its defaults when absent), or a DwzError naming the field."""
    value = read_field(config, key)
    if not value:
        return kind()
    try:
        return kind(**value)
    except (TypeError, DwzError) as error:
        raise DwzError(f"the model's config has an unusable {key} ({value!r}): {error}") from None


def write_field(config, key: str, value: dict | None) -> None:
    """Set the field on a transformers config object, or remove it for None (the model reads audio as Whisper)."""
    if value is not None:
        setattr(config, key, value)
    elif hasattr(config, key):
        delattr(config, key)


def dwz_fields(config: dict) -> dict:
    """Every dwz field of a config.json dict."""
    return {key: value for key, value in config.items() if key.startswith(PREFIX)}
