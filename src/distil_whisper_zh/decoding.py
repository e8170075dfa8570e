"""Batched Whisper decoding with the same guards for every model, teacher or student.

Guards: a cap on new tokens from the audio duration (a weak student that never emits end-of-text stops early),
and Whisper's compression-ratio check with temperature fallback against runaway repetition ("补博补博补博...").
Audio longer than 30 s is decoded whole by transformers' sequential long-form decoding.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .data import Utterance
from .errors import DwzError
from .models import LoadedWhisper
from .skipped import load_batch
from .text import to_simplified

WINDOW_SECONDS = 30.0
WINDOW_FRAMES = 3000  # log-mel frames in one 30-s window
PROMPT_TOKENS = 4  # <|startoftranscript|><|zh|><|transcribe|><|notimestamps|>
MAX_NEW_TOKENS = 448 - PROMPT_TOKENS
# Fast Mandarin is ~6 characters a second and a character is 1-2 BPE tokens; 15 tokens/s leaves room for punctuation.
TOKENS_PER_SECOND = 15.0
TOKEN_CAP_MARGIN = 10
# transformers measures compression on token ids (not text); 1.35 is its documented equivalent of Whisper's 2.4.
TOKEN_COMPRESSION_RATIO_THRESHOLD = 1.35
# Whisper's own threshold on UTF-8 text: above it a transcript is mostly repetition.
TEXT_COMPRESSION_RATIO_THRESHOLD = 2.4
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class DecodingOptions:
    """How every model decodes; one set of options per run so that speed and CER comparisons are fair."""

    language: str = "zh"  # Whisper language code
    task: str = "transcribe"  # or "translate"
    num_beams: int = 1  # 1 = greedy
    temperature_fallback: bool = True  # re-decode repetitive outputs at rising temperature
    seed: int = 0  # for the sampled fallback passes
    simplified: bool = True  # convert output to Simplified Chinese (OpenCC t2s)

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise DwzError(f"--num-beams must be at least 1, got {self.num_beams}")
        if self.task not in ("transcribe", "translate"):
            raise DwzError(f"--task must be transcribe or translate, got {self.task!r}")


@dataclass
class Transcript:
    """One decoded utterance."""

    text: str  # as shown to the user (Simplified if asked)
    raw_text: str  # exactly what the model wrote
    num_tokens: int
    hit_token_cap: bool  # stopped by the token cap, not by end-of-text: likely truncated or looping
    compression_ratio: float = field(default=0.0)

    @property
    def looped(self) -> bool:
        return self.compression_ratio > TEXT_COMPRESSION_RATIO_THRESHOLD


def text_compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes; Whisper's repetition measure."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def token_cap(seconds: float) -> int:
    """Maximum new tokens for audio of `seconds` (per 30-s window for long audio)."""
    window = min(seconds, WINDOW_SECONDS)
    return min(MAX_NEW_TOKENS, math.ceil(window * TOKENS_PER_SECOND) + TOKEN_CAP_MARGIN)


class WhisperDecoder:
    """Turns batches of 16 kHz audio into `Transcript`s with one model and one set of `DecodingOptions`."""

    def __init__(self, loaded: LoadedWhisper, options: DecodingOptions):
        self.loaded = loaded
        self.options = options
        self.language = _check_language(loaded, options.language)

    def features(self, audios: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Log-mel features; padded to 30 s, or to the longest clip when one is longer (long-form)."""
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        extractor = self.loaded.processor.feature_extractor
        kwargs = {"truncation": False, "padding": "longest"} if longest > WINDOW_SECONDS else {}
        batch = extractor(
            list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True, **kwargs
        )
        return {
            "input_features": batch.input_features.to(self.loaded.device, self.loaded.dtype),
            "attention_mask": batch.attention_mask.to(self.loaded.device),
        }

    @torch.inference_mode()
    def decode(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        """Decode one batch; returns one `Transcript` per input, in input order."""
        cap = token_cap(max(len(a) for a in audios) / SAMPLE_RATE)
        fallback = self.options.temperature_fallback
        features = self.features(audios)
        long_form = features["input_features"].shape[-1] > WINDOW_FRAMES
        sequences = self.loaded.model.generate(
            **features,
            return_timestamps=long_form,  # sequential long-form decoding needs timestamps to advance
            language=self.language,
            task=self.options.task,
            num_beams=self.options.num_beams,
            max_new_tokens=cap,
            temperature=FALLBACK_TEMPERATURES if fallback else 0.0,
            compression_ratio_threshold=TOKEN_COMPRESSION_RATIO_THRESHOLD if fallback else None,
        )
        return [self._transcript(row, cap) for row in sequences]

    def _transcript(self, tokens: torch.Tensor, cap: int) -> Transcript:
        tokenizer = self.loaded.processor.tokenizer
        eos = tokenizer.eos_token_id
        ids = tokens.tolist()
        content = [t for t in ids if t < eos]  # text tokens come before <|endoftext|>; specials and timestamps after
        # transformers' fallback passes can overrun max_new_tokens by the prompt length: enforce the cap here too.
        content = content[:cap]
        raw = tokenizer.decode(content, skip_special_tokens=True).strip()
        text = to_simplified(raw) if self.options.simplified else raw
        hit_cap = len(content) >= cap and eos not in ids[-1:]
        return Transcript(text, raw, len(content), hit_cap, text_compression_ratio(raw))


def _check_language(loaded: LoadedWhisper, language: str) -> str:
    known = loaded.model.generation_config.lang_to_id or {}
    if f"<|{language}|>" not in known:
        raise DwzError(f"--language {language!r}: {loaded.name} has no such language token")
    return language


def batches_by_length(utterances: Sequence[Utterance], batch_size: int) -> list[list[Utterance]]:
    """Longest first, so padding is small and an out-of-memory error shows on the first batch."""
    if batch_size < 1:
        raise DwzError(f"--batch-size must be at least 1, got {batch_size}")
    ordered = sorted(utterances, key=lambda u: u.seconds(), reverse=True)
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def transcribe_utterances(
    decoder: WhisperDecoder, utterances: Sequence[Utterance], batch_size: int, progress=None, on_skip=None
) -> Iterator[tuple[Utterance, Transcript, float]]:
    """Yield (utterance, transcript, audio seconds) batch by batch; `progress` is a tqdm bar to advance.

    `on_skip(utterance, AudioError)`, if given, receives each clip that cannot be decoded or is silent (see
    `skipped.load_checked`), which is then left out; without it such a clip raises.
    """
    torch.manual_seed(decoder.options.seed)
    for batch in batches_by_length(utterances, batch_size):
        loaded, audios = load_batch(batch, on_skip)
        if loaded:
            for utterance, audio, transcript in zip(loaded, audios, decoder.decode(audios), strict=True):
                yield utterance, transcript, len(audio) / SAMPLE_RATE
        if progress is not None:
            progress.update(len(batch))
