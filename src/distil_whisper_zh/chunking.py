"""Long recordings decoded in chunks cut at pauses (`--long-form chunked`), each chunk decoded as a short clip.

Sequential long-form decoding (OpenAI's, transformers' and faster-whisper's default) reads a 30-s window, then
starts the next window where the last predicted timestamp says: one wrong timestamp or one hallucinated window
and everything after it shifts. A distilled student is weakest exactly there (RESULTS.md, Long recordings).
Chunked decoding, as in faster-whisper's `BatchedInferencePipeline` and WhisperX, and as Distil-Whisper advises
for its students, first finds the speech with Silero VAD (faster-whisper's `get_speech_timestamps`), cuts the
recording at pauses into contiguous chunks of at most `chunk_seconds`, and decodes every chunk independently as
a short clip: batched, with the same guards and fallback as any clip, and with the model's dynamic audio context.
A chunk's segments (or the chunk itself, without `--timestamps`) are placed at its offset in the recording.
Clips no longer than one chunk are decoded exactly as without chunking; longer ones are cut whether or not they
fit Whisper's 30-s window, because a student reads well only what is about as long as the clips it learned from
(a 6+3 student trained on 1-4 s sentences scored 89% CER on 20-27 s recordings and 65% on their clips one by one:
RESULTS.md, results/encoder-layers/).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .audio import SAMPLE_RATE
from .decoding import WINDOW_SECONDS, Decoder, Prepared, Segment, Transcript, Word
from .errors import DwzError

# Silero VAD for cutting, not for filtering: as faster-whisper's batched pipeline cuts (a pause of 160 ms ends a
# region; regions longer than a chunk are split at their last pause), with a lower speech threshold than its 0.5,
# so quiet speech stays inside a chunk (a 3.3-s utterance of a long recording was dropped whole at 0.5), and 200 ms
# of padding instead of its 400 (chunks are contiguous stretches here, so the pause stays in the audio anyway).
CHUNK_VAD = {"threshold": 0.35, "min_silence_duration_ms": 160, "speech_pad_ms": 200}
GAP_REPORTED_SECONDS = 0.1  # stretches left out between chunks shorter than this are not reported


@dataclass(frozen=True)
class Chunk:
    """A contiguous stretch of a recording, in samples: `[start, end)`."""

    start: int
    end: int

    @property
    def offset(self) -> float:
        return self.start / SAMPLE_RATE


def speech_regions(audio: np.ndarray, max_seconds: float) -> list[Chunk]:
    """Where Silero VAD hears speech in 16-kHz `audio`, no region longer than `max_seconds`."""
    try:
        from faster_whisper.vad import VadOptions, get_speech_timestamps
    except ImportError:
        raise DwzError(
            "--long-form chunked finds pauses with faster-whisper's Silero VAD: "
            "pip install 'distil-whisper-zh[export]', or use --long-form sequential"
        ) from None
    options = VadOptions(**CHUNK_VAD, max_speech_duration_s=max_seconds)
    return [Chunk(r["start"], r["end"]) for r in get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)]


def merge_regions(regions: Sequence[Chunk], max_seconds: float) -> list[Chunk]:
    """Consecutive speech regions merged into chunks that span at most `max_seconds` (the pauses inside a chunk
    stay in its audio, so times inside it are times in the recording plus its offset)."""
    limit = max_seconds * SAMPLE_RATE
    chunks: list[Chunk] = []
    for region in regions:
        if chunks and region.end - chunks[-1].start <= limit:
            chunks[-1] = Chunk(chunks[-1].start, region.end)
        else:
            chunks.append(region)
    return chunks


def fits_one_chunk(audio: np.ndarray, chunk_seconds: float) -> bool:
    return len(audio) <= chunk_seconds * SAMPLE_RATE


def plan_chunks(audio: np.ndarray, chunk_seconds: float) -> list[Chunk]:
    """The chunks one recording is decoded in: the whole clip when it fits one chunk, else cut at pauses."""
    if fits_one_chunk(audio, chunk_seconds):
        return [Chunk(0, len(audio))]
    chunks = merge_regions(speech_regions(audio, chunk_seconds), chunk_seconds)
    if not chunks and len(audio) <= WINDOW_SECONDS * SAMPLE_RATE:
        return [Chunk(0, len(audio))]  # the VAD heard nothing to cut at: one window is decoded whole, as Whisper would
    return chunks


def join_texts(texts: Sequence[str]) -> str:
    """Chunk texts in order: Chinese joins without a space, Latin words keep one between them."""
    joined = ""
    for text in (t for t in texts if t):
        spaced = joined and joined[-1].isascii() and joined[-1].isalnum() and text[0].isascii() and text[0].isalnum()
        joined += (" " if spaced else "") + text
    return joined


def shifted(segment: Segment, offset: float, end: float) -> Segment:
    """A chunk's segment (and its words) moved to recording time, ending no later than the chunk."""

    def at(t: float) -> float:
        return round(min(t + offset, end), 2)

    words = tuple(Word(at(w.start), at(w.end), w.text) for w in segment.words)
    return Segment(at(segment.start), at(segment.end), segment.text, words)


def gaps(chunks: Sequence[Chunk], samples: int) -> list[tuple[float, float]]:
    """(start, end) seconds of a recording that no chunk covers (what the VAD heard as no speech)."""
    edges = [0, *(x for chunk in chunks for x in (chunk.start, chunk.end)), samples]
    pairs = [(edges[i] / SAMPLE_RATE, edges[i + 1] / SAMPLE_RATE) for i in range(0, len(edges), 2)]
    return [(round(a, 2), round(b, 2)) for a, b in pairs if b - a >= GAP_REPORTED_SECONDS]


def assemble(pieces: Sequence[Transcript], chunks: Sequence[Chunk], samples: int) -> Transcript:
    """One recording's transcript from its chunks' transcripts (in order)."""
    if len(chunks) == 1 and chunks[0] == Chunk(0, samples):
        return pieces[0]  # a clip of one chunk: decoded as without chunking
    segments = []
    for piece, chunk in zip(pieces, chunks, strict=True):
        end = chunk.end / SAMPLE_RATE
        own = piece.segments or ([Segment(0.0, end - chunk.offset, piece.text)] if piece.text else [])
        segments.extend(shifted(segment, chunk.offset, end) for segment in own)
    return Transcript(
        text=join_texts([p.text for p in pieces]),
        raw_text=join_texts([p.raw_text for p in pieces]),
        num_tokens=sum(p.num_tokens for p in pieces),
        hit_token_cap=any(p.hit_token_cap for p in pieces),
        compression_ratio=max((p.compression_ratio for p in pieces), default=0.0),  # the most repetitive chunk
        segments=segments,
        retries=sum(p.retries for p in pieces),
        vad_removed=gaps(chunks, samples),
    )


class ChunkedDecoder:
    """Any `Decoder`, with batches that hold a recording longer than one chunk decoded chunk by chunk (see the
    module docstring); batches of clips of one chunk go to the model as they are.

    `batch_size` chunks are decoded together (the chunks of a batch's recordings, longest first, and its short
    clips as chunks of their own). The VAD and the chunks' features are timed as the model's work: a batch's
    features are made as its chunks are decoded, so memory does not grow with the length of the recordings."""

    def __init__(self, inner: Decoder, batch_size: int):
        if inner.options.long_form != "chunked":
            raise DwzError("ChunkedDecoder decodes --long-form chunked only")
        self.inner = inner
        self.batch_size = batch_size
        self.name, self.backend, self.options, self.context = inner.name, inner.backend, inner.options, inner.context

    @property
    def params(self) -> int:
        return self.inner.params

    def needs_chunks(self, audios: Sequence[np.ndarray]) -> bool:
        return not all(fits_one_chunk(audio, self.options.chunk_seconds) for audio in audios)

    def prepare(self, audios: Sequence[np.ndarray]) -> Prepared:
        """Clips of one chunk: the model's features; a batch with a longer recording: nothing yet."""
        return Prepared(audios) if self.needs_chunks(audios) else self.inner.prepare(audios)

    def decode(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        return self.decode_prepared(self.prepare(audios))

    def decode_prepared(self, prepared: Prepared) -> list[Transcript]:
        audios = prepared.audios
        if not self.needs_chunks(audios):
            return self.inner.decode_prepared(prepared)
        chunks = [plan_chunks(audio, self.options.chunk_seconds) for audio in audios]
        pieces = [(r, c) for r, own in enumerate(chunks) for c in range(len(own))]
        pieces.sort(key=lambda rc: chunks[rc[0]][rc[1]].end - chunks[rc[0]][rc[1]].start, reverse=True)
        decoded: dict[tuple[int, int], Transcript] = {}
        for i in range(0, len(pieces), self.batch_size):
            group = pieces[i : i + self.batch_size]
            clips = [audios[r][chunks[r][c].start : chunks[r][c].end] for r, c in group]
            decoded.update(zip(group, self.inner.decode(clips), strict=True))
        return [
            assemble([decoded[(r, c)] for c in range(len(own))], own, len(audio))
            if own
            else replace(_empty(), vad_removed=gaps([], len(audio)))
            for r, (own, audio) in enumerate(zip(chunks, audios, strict=True))
        ]


def _empty() -> Transcript:
    return Transcript(text="", raw_text="", num_tokens=0, hit_token_cap=False)


def with_long_form(decoder: Decoder, batch_size: int) -> Decoder:
    """`decoder` as its options' `long_form` asks: chunked recordings, or as it is (sequential)."""
    return ChunkedDecoder(decoder, batch_size) if decoder.options.long_form == "chunked" else decoder


def base_decoder(decoder: Decoder) -> Decoder:
    """The runtime's own decoder under a `ChunkedDecoder`."""
    return decoder.inner if isinstance(decoder, ChunkedDecoder) else decoder
