"""Exact parameter counts, without loading weights (the model is built on the meta device)."""

from __future__ import annotations

import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

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
