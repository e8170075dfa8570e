"""Label token ids and the collator that pads them into decoder inputs and loss targets."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import WhisperTokenizerFast

from ..decoding import MAX_NEW_TOKENS
from ..errors import DwzError

IGNORE_INDEX = -100  # label value of positions that carry no loss (padding, forced prompt)
# <|startoftranscript|> <|zh|> <|transcribe|> <|notimestamps|>: forced at inference, so never a training target.
PROMPT_LENGTH = 4


def label_token_ids(tokenizer: WhisperTokenizerFast, text: str, language: str = "zh") -> list[int]:
    """[SOT, <|lang|>, <|transcribe|>, <|notimestamps|>, text..., EOT]."""
    tokenizer.set_prefix_tokens(language=language, task="transcribe", predict_timestamps=False)
    ids = tokenizer(text).input_ids
    if len(ids) - PROMPT_LENGTH > MAX_NEW_TOKENS:
        raise DwzError(f"label of {len(ids)} tokens is longer than Whisper's 448: {text[:40]}...")
    return ids


@dataclass
class DecoderBatch:
    decoder_input_ids: torch.Tensor  # (batch, positions): the label ids shifted right, EOT-padded
    labels: torch.Tensor  # (batch, positions): next token, IGNORE_INDEX on prompt and padding


def collate_labels(sequences: list[list[int]], pad_token_id: int, no_timestamps_id: int | None = None) -> DecoderBatch:
    """Teacher forcing pairs: input token i predicts token i+1; forced prompt targets and padding are ignored.

    The prompt <|zh|> <|transcribe|> <|notimestamps|> is forced at inference; a timestamped label (no
    <|notimestamps|>, see windows.py) forces only <|zh|> <|transcribe|>: its first timestamp is learned."""
    length = max(len(s) for s in sequences) - 1
    inputs = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(sequences), length), IGNORE_INDEX, dtype=torch.long)
    for row, ids in enumerate(sequences):
        ids_tensor = torch.tensor(ids, dtype=torch.long)
        inputs[row, : len(ids) - 1] = ids_tensor[:-1]
        labels[row, : len(ids) - 1] = ids_tensor[1:]
        timestamped = no_timestamps_id is not None and ids[PROMPT_LENGTH - 1] != no_timestamps_id
        labels[row, : PROMPT_LENGTH - (2 if timestamped else 1)] = IGNORE_INDEX
    return DecoderBatch(inputs, labels)
