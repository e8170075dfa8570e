"""Audio in: any file soundfile can read (WAV, FLAC, OGG/Opus, MP3), any rate, any channels ->
16 kHz mono float32, the only thing Whisper's feature extractor accepts."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DwzError

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")


def load_audio(source: str | Path | bytes) -> np.ndarray:
    """Decode `source` (a path, or the encoded bytes of a file) to a 1-D float32 array at 16 kHz.

    Channels are averaged; resampling uses soxr's high-quality filter. Errors name the file.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise DwzError(f"{name}: audio file not found")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        samples, rate = sf.read(handle, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise DwzError(f"{name}: cannot decode audio ({error})") from None
    return to_whisper_input(samples, rate)


def to_whisper_input(samples: np.ndarray, rate: int) -> np.ndarray:
    """(frames,) or (frames, channels) at `rate` Hz -> mono float32 at SAMPLE_RATE."""
    samples = np.asarray(samples, dtype=np.float32)
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if rate != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def duration_seconds(path: str | Path) -> float:
    """Duration from the file header, without decoding (used to sort and batch by length)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise DwzError(f"{path}: cannot read audio header ({error})") from None
    return info.frames / info.samplerate
