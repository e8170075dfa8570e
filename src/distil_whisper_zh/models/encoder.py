"""Whisper's encoder over log-mel inputs shorter than 30 s (see `audio_context` for when and why).

transformers' `WhisperEncoder.forward` accepts only 3,000 frames (a PR to relax it, huggingface/transformers#31991,
was closed), so `encode` runs the same modules over any shorter input, with positions 0..n-1 of the same position
table; for 3,000 frames it is the encoder's own forward.
"""

from __future__ import annotations

import torch
from torch import nn

from ..audio_context import FRAMES_PER_POSITION
from ..errors import DwzError


def encode(encoder: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Encoder states (batch, frames / 2, d_model) for log-mel `features` (batch, mels, frames) of any even
    length up to 3,000: the same layers as `WhisperEncoder.forward`, positions 0..frames/2-1 of its table."""
    frames = features.shape[-1]
    if frames == FRAMES_PER_POSITION * encoder.config.max_source_positions:
        return encoder(features).last_hidden_state
    if frames % FRAMES_PER_POSITION or frames > FRAMES_PER_POSITION * encoder.config.max_source_positions:
        raise DwzError(f"encoder input of {frames} log-mel frames: give an even number up to 3000")
    hidden = nn.functional.gelu(encoder.conv1(features))
    hidden = nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
    hidden = nn.functional.dropout(hidden, p=encoder.dropout, training=encoder.training)
    for layer in encoder.layers:
        hidden = layer(hidden, None)
    return encoder.layer_norm(hidden)
