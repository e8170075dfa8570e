"""Audio in: any file soundfile can read (WAV, FLAC, OGG/Opus, MP3), any rate, any channels ->
16 kHz mono float32, the only thing Whisper's feature extractor accepts."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DwzError

SAMPLE_RATE = 16_000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
CONVERT_HINT = "convert it to 16 kHz WAV or FLAC, e.g. ffmpeg -i IN -ar 16000 -ac 1 OUT.wav"
# Decoding fewer frames than the header declares by more than this share means the file was cut short
# (an MP3's declared length is an estimate, hence the slack).
TRUNCATION_TOLERANCE = 0.05
# A WAV written to a pipe declares an unknown length (0 or all ones): libsndfile's "(should be N)" is then no sign
# of truncation.
_UNKNOWN_WAV_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)
_WAV_DATA_SIZE = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)


class AudioError(DwzError):
    """An audio file that cannot be used; `kind` is a short tag (missing, unreadable, not_audio, unsupported_format,
    undecodable, truncated, empty) that skipped.jsonl and summaries count by."""

    def __init__(self, name: str, kind: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.kind = kind
        self.reason = reason


def load_audio(source: str | Path | bytes) -> np.ndarray:
    """Decode `source` (a path, or the encoded bytes of a file) to a 1-D float32 array at 16 kHz.

    Channels are averaged; resampling uses soxr's high-quality filter. Raises `AudioError` naming the file.
    """
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        check_readable(Path(source))
    try:
        with sf.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as handle:
            declared, rate = handle.frames, handle.samplerate
            samples = handle.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise _open_error(name, error) from None
    if declared > 0 and len(samples) < declared * (1 - TRUNCATION_TOLERANCE):
        raise AudioError(
            name,
            "truncated",
            f"truncated: the header declares {declared / rate:.2f} s, only {len(samples) / rate:.2f} s could be "
            "decoded (re-copy or re-download the file)",
        )
    return to_whisper_input(samples, rate)


def check_readable(path: Path) -> None:
    """A file that exists, that we may read, and that is not empty; else `AudioError` saying which."""
    if not path.is_file():
        raise AudioError(str(path), "missing", "audio file not found (check the path)")
    if not os.access(path, os.R_OK):
        raise AudioError(str(path), "unreadable", "permission denied (make it readable: chmod a+r FILE)")
    if path.stat().st_size == 0:
        raise AudioError(str(path), "empty", "empty file (0 bytes)")


def _open_error(name: str, error: Exception) -> AudioError:
    suffix = Path(name).suffix.lower()
    if "Format not recognised" in str(error):
        if suffix and suffix not in AUDIO_EXTENSIONS:
            return AudioError(name, "unsupported_format", f"unsupported audio format {suffix!r}: {CONVERT_HINT}")
        return AudioError(name, "not_audio", f"not an audio file soundfile can read: {CONVERT_HINT}")
    return AudioError(name, "undecodable", f"cannot decode audio ({error}); the file is damaged: {CONVERT_HINT}")


def to_whisper_input(samples: np.ndarray, rate: int) -> np.ndarray:
    """(frames,) or (frames, channels) at `rate` Hz -> mono float32 at SAMPLE_RATE."""
    samples = np.asarray(samples, dtype=np.float32)
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if rate != SAMPLE_RATE and mono.size:
        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def duration_seconds(path: str | Path) -> float:
    """Duration from the file header, without decoding (used to sort and batch by length).

    Raises `AudioError` for a missing, unreadable, empty, unknown or visibly truncated (WAV) file.
    """
    check_readable(Path(path))
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise _open_error(str(path), error) from None
    if _wav_truncated(info.extra_info):
        raise AudioError(
            str(path), "truncated", "truncated: the WAV header declares more data than the file holds (re-copy it)"
        )
    if info.frames == 0 or info.samplerate <= 0:
        raise AudioError(str(path), "empty", "no audio samples in the file (0 frames)")
    return info.frames / info.samplerate


def _wav_truncated(extra_info: str) -> bool:
    match = _WAV_DATA_SIZE.search(extra_info or "")
    if match is None:
        return False
    declared, actual = int(match.group(1)), int(match.group(2))
    return declared not in _UNKNOWN_WAV_SIZES and declared > actual
