"""Exact parameter counts, without loading weights (the model is built on the meta device)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration
from tyro.conf import Positional

from ..errors import DwzError
from .ct2 import read_ct2_model, whisper_config_kwargs
from .loading import resolve_model


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())


def count_model_parameters(argument: str) -> int:
    """Parameter count of a model argument, from its config alone."""
    config = WhisperConfig.from_pretrained(resolve_model(argument))
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    return count_parameters(model)


def count_ct2_parameters(model_dir: str | Path) -> int:
    """Parameter count of a CTranslate2 Whisper dir, as the same model in transformers would have (quantisation
    scales are not parameters; the tied output projection counts once)."""
    config = WhisperConfig(**whisper_config_kwargs(read_ct2_model(Path(model_dir) / "model.bin")))
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    return count_parameters(model)


@dataclass
class CountParamsOptions:
    """Options of `dwz count-params`."""

    models: Positional[list[str]]
    """model arguments (dirs, hub ids, pypi:whisper-base)"""
    json: bool = False
    """print a JSON object {model: count}"""

    def __post_init__(self) -> None:
        if not self.models:
            raise DwzError("give at least one model")
