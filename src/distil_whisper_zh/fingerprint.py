"""What a cache or a partial result was made from, as short hashes: one helper for every resumable job.

A cache keyed by clip ids alone would hand back old states when the audio is made again under the same ids (a
corpus re-synthesised, a manifest pointing elsewhere), or when two runs share a cache folder. So every cache and
resumable output is keyed by what decides its content: the clips (id, file, size and modification time, text),
the model's weights, the feature extractor's settings and the options. Files are fingerprinted by size and
modification time, not by reading them (reading 2,000 clips to check a cache would cost what the cache saves).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def digest(*parts: object) -> str:
    """A sha256 hex digest of JSON-serialisable parts (dataclasses and paths as their text)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def file_stamp(path: str | Path) -> list:
    """Size and modification time of a file (nanoseconds); a missing file stamps as None."""
    try:
        stat = Path(path).stat()
    except OSError:
        return [str(path), None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def audio_stamp(utterance) -> list:
    """What a clip's audio is: its file's stamp, or a hash of audio held in memory."""
    audio = utterance.audio
    if isinstance(audio, Path):
        return file_stamp(audio)
    if isinstance(audio, np.ndarray):
        return ["<array>", hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()]
    return ["<bytes>", hashlib.sha256(audio).hexdigest()]


def clips_fingerprint(utterances: Iterable, with_text: bool = True) -> str:
    """The clips in order: id, audio stamp and (unless `with_text` is off) the reference or label text."""
    return digest([[u.id, audio_stamp(u), u.text if with_text else None] for u in utterances])


def model_files_fingerprint(folder: str | Path) -> list:
    """The weight files of a model dir (name, size, modification time); a hub id fingerprints as itself."""
    path = Path(folder)
    if not path.is_dir():
        return [str(folder)]
    return sorted([p.name, *file_stamp(p)[1:]] for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)


def extractor_settings(processor) -> dict:
    """The feature extractor's settings that change the log-mel features."""
    extractor = processor.feature_extractor
    keys = ("feature_size", "sampling_rate", "hop_length", "n_fft", "chunk_length", "padding_value")
    return {key: getattr(extractor, key, None) for key in keys}
