"""Batched Whisper decoding with the same guards for every model, teacher or student.

Guards: a cap on new tokens from the audio duration (a weak student that never emits end-of-text stops early),
and Whisper's compression-ratio check with temperature fallback against runaway repetition ("补博补博补博...").
Audio longer than 30 s is decoded whole by transformers' sequential long-form decoding, with segment timestamps.
`WhisperDecoder` runs transformers; `backends.CTranslate2Decoder` runs faster-whisper; both satisfy `Decoder`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .data import Utterance
from .errors import DwzError
from .models import LoadedWhisper
from .skipped import load_batch
from .speculative import Assistant
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


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording and its text; times in seconds from the start of the audio."""

    start: float
    end: float
    text: str  # as shown to the user (Simplified if asked)


@dataclass
class Transcript:
    """One decoded utterance."""

    text: str  # as shown to the user (Simplified if asked)
    raw_text: str  # exactly what the model wrote
    num_tokens: int
    hit_token_cap: bool  # stopped by the token cap, not by end-of-text: likely truncated or looping
    compression_ratio: float = field(default=0.0)
    segments: list[Segment] = field(default_factory=list)  # filled when timestamps were decoded

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


class Decoder(Protocol):
    """What `transcribe_utterances`, `dwz evaluate` and `dwz transcribe` need from a runtime."""

    name: str  # the model argument as the user gave it (plus the assistant, if any)
    backend: str  # "transformers" or "ctranslate2"
    options: DecodingOptions

    @property
    def params(self) -> int: ...

    def decode(self, audios: Sequence[np.ndarray]) -> list[Transcript]: ...


class WhisperDecoder:
    """Turns batches of 16 kHz audio into `Transcript`s with one model and one set of `DecodingOptions`.

    `timestamps` decodes segment times (for subtitles); audio over 30 s always gets them. `assistant` (a model from
    `make_assistant`) drafts tokens for speculative decoding: the output is the model's own greedy output, and clips
    are decoded one at a time because transformers' assisted generation takes batch size 1 only.
    """

    backend = "transformers"

    def __init__(
        self,
        loaded: LoadedWhisper,
        options: DecodingOptions,
        assistant: Assistant | None = None,
        timestamps: bool = False,
    ):
        self.loaded = loaded
        self.options = options
        self.language = _check_language(loaded, options.language)
        self.assistant = assistant
        self.timestamps = timestamps
        if assistant is not None and options.num_beams > 1:
            raise DwzError("--assistant drafts for greedy decoding only; drop --num-beams")
        self.name = loaded.name if assistant is None else f"{loaded.name} + assistant {assistant.name}"

    @property
    def params(self) -> int:
        """Parameters of the model (the assistant's are not counted: it only proposes tokens)."""
        return sum(p.numel() for p in self.loaded.model.parameters())

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
        if self.assistant is not None and len(audios) > 1:
            return [transcript for audio in audios for transcript in self.decode([audio])]
        cap = token_cap(max(len(a) for a in audios) / SAMPLE_RATE)
        fallback = self.options.temperature_fallback
        features = self.features(audios)
        long_form = features["input_features"].shape[-1] > WINDOW_FRAMES
        timestamps = long_form or self.timestamps  # sequential long-form decoding needs timestamps to advance
        extra = {"assistant_model": self.assistant.model} if self.assistant is not None else {}
        output = self.loaded.model.generate(
            **features,
            return_timestamps=timestamps,
            return_segments=timestamps,
            language=self.language,
            task=self.options.task,
            num_beams=self.options.num_beams,
            max_new_tokens=cap,
            temperature=FALLBACK_TEMPERATURES if fallback else 0.0,
            compression_ratio_threshold=TOKEN_COMPRESSION_RATIO_THRESHOLD if fallback else None,
            **extra,
        )
        if not timestamps:
            return [self._transcript(row, cap) for row in output]
        # the long-form cap applies per 30-s window, inside generate; only a single window is capped here
        row_cap = None if long_form else cap
        return [
            self._transcript(row, row_cap, segments)
            for row, segments in zip(output["sequences"], output["segments"], strict=True)
        ]

    def _transcript(self, tokens: torch.Tensor, cap: int | None, segments: list[dict] | None = None) -> Transcript:
        tokenizer = self.loaded.processor.tokenizer
        eos = tokenizer.eos_token_id
        ids = tokens.tolist()
        content = [t for t in ids if t < eos]  # text tokens come before <|endoftext|>; specials and timestamps after
        # transformers' fallback passes can overrun max_new_tokens by the prompt length: enforce the cap here too.
        content = content[:cap]
        raw = tokenizer.decode(content, skip_special_tokens=True).strip()
        text = self._shown(raw)
        hit_cap = cap is not None and len(content) >= cap and eos not in ids[-1:]
        return Transcript(
            text, raw, len(content), hit_cap, text_compression_ratio(raw), self._segments(segments or [], eos)
        )

    def _segments(self, segments: list[dict], eos: int) -> list[Segment]:
        tokenizer = self.loaded.processor.tokenizer
        result = []
        for segment in segments:
            ids = [t for t in segment["tokens"].tolist() if t < eos]
            text = self._shown(tokenizer.decode(ids, skip_special_tokens=True).strip())
            if text:
                result.append(Segment(float(segment["start"]), float(segment["end"]), text))
        return result

    def _shown(self, raw: str) -> str:
        return to_simplified(raw) if self.options.simplified else raw


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
    decoder: Decoder, utterances: Sequence[Utterance], batch_size: int, progress=None, on_skip=None
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
