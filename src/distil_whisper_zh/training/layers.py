"""Which layers of a Whisper model train: encoder freezing (whole, or all but the top layers) and dropout."""

from __future__ import annotations

from transformers.models.whisper import modeling_whisper as hf_whisper

from ..errors import DwzError

WHISPER_STACKS = (
    hf_whisper.WhisperEncoder,
    hf_whisper.WhisperEncoderLayer,
    hf_whisper.WhisperDecoder,
    hf_whisper.WhisperDecoderLayer,
)


def set_dropout(model, probability: float) -> None:
    """Residual and embedding dropout of every Whisper layer (attention dropout is left as configured); the
    saved config records it. Frozen parts run in eval mode, so only trained layers drop anything."""
    model.config.dropout = probability
    for module in model.modules():
        if isinstance(module, WHISPER_STACKS):
            module.dropout = probability


def check_encoder_layers(encoder_layers: int, top_layers: int | None) -> None:
    """`--train-encoder-layers` must fit an encoder of `encoder_layers` layers (checked from the config alone,
    before any data is read)."""
    if top_layers is not None and top_layers > encoder_layers:
        raise DwzError(f"--train-encoder-layers {top_layers}: the encoder has only {encoder_layers} layers")


def freeze_encoder_layers(encoder, frozen: bool, top_layers: int | None) -> None:
    """Freeze the whole encoder, or all but its top `top_layers` layers and final layer norm (None: train all).
    Frozen parts run in eval mode (no dropout: their states must be reproducible). Position tables stay frozen."""
    check_encoder_layers(len(encoder.layers), top_layers)
    trained = [] if frozen else [encoder] if top_layers is None else [*encoder.layers[-top_layers:], encoder.layer_norm]
    encoder.requires_grad_(False)
    encoder.eval()
    for module in trained:
        module.requires_grad_(True)
        module.train()
    encoder.embed_positions.requires_grad_(False)
