"""Which clips a command can use: screened before any heavy work (file header, duration, reference), decoded
with a check when a batch is read (`load_checked`); each one left out goes to a `SkipLog` with the reason.

The data path runs one way: `data` (specs -> utterances) -> `screening` (usable clips, decoded batches) ->
`skipped` (the record).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, AudioError, duration_seconds
from .data import Utterance
from .skipped import SkipLog, Skipped
from .text import normalize_for_cer

MIN_SECONDS = 0.1  # shorter clips hold no speech Whisper can transcribe
MAX_SECONDS = 30 * 60.0  # longer recordings are not utterances: split them (long-form decoding holds them in memory)
SILENCE_PEAK = 1e-4  # peak amplitude (full scale 1.0) below which a clip is digital silence (-80 dBFS)


@dataclass(frozen=True)
class ScreenRules:
    """What a command can use."""

    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS  # training: one 30-s window
    need_reference: bool = False  # a clip without reference text is of no use (scoring, training)
    nonempty_reference: bool = False  # a reference must keep characters after CER normalisation (scoring, filters)
    decode: bool = False  # decode every clip now, so none fails later (training: batches must not change mid-run)


def skip_record(utterance: Utterance, kind: str, reason: str, dataset: str | None = None) -> Skipped:
    return Skipped(id=utterance.id, path=utterance.audio_path, kind=kind, reason=reason, dataset=dataset)


def header_problem(utterance: Utterance, rules: ScreenRules) -> tuple[str, str] | None:
    """(kind, reason) if the clip's file header, duration or reference makes it unusable, else None (cheap: no
    decoding)."""
    if rules.need_reference and utterance.text is None:
        return "no_reference", "no reference text for this clip"
    if rules.nonempty_reference and utterance.text is not None and not normalize_for_cer(utterance.text):
        reason = "the reference text is empty after normalisation (only punctuation or spaces?): nothing to score"
        return "empty_reference", reason
    try:  # a file's own header, even when a manifest states a duration: it also says whether the file is sound
        seconds = duration_seconds(utterance.audio) if isinstance(utterance.audio, Path) else utterance.seconds()
    except AudioError as error:
        return error.kind, error.reason
    if seconds < rules.min_seconds:
        return "too_short", f"too short ({seconds:.3f} s < {rules.min_seconds} s): no speech to transcribe"
    if seconds > rules.max_seconds:
        return "too_long", f"too long ({seconds:.0f} s > {rules.max_seconds:.0f} s): split it into utterances first"
    return None


def load_checked(utterance: Utterance) -> np.ndarray:
    """The clip's 16 kHz samples; `AudioError` if they cannot be decoded, are cut short, empty or silent."""
    samples = utterance.load()
    name = utterance.audio_path or utterance.id
    if samples.size < MIN_SECONDS * SAMPLE_RATE:
        raise AudioError(name, "too_short", f"too short ({samples.size / SAMPLE_RATE:.3f} s decoded)")
    peak = float(np.max(np.abs(samples)))
    if not np.isfinite(peak):
        raise AudioError(name, "undecodable", "samples are not finite numbers (NaN or infinity): the file is damaged")
    if peak < SILENCE_PEAK:
        raise AudioError(name, "silent", f"silent (peak amplitude {peak:.1e} < {SILENCE_PEAK:.0e}): nothing to hear")
    return samples


def screen(
    utterances: Sequence[Utterance], rules: ScreenRules, log: SkipLog, dataset: str | None = None
) -> list[Utterance]:
    """The usable clips of `utterances`; the others go to `log`."""
    usable = []
    for utterance in utterances:
        problem = header_problem(utterance, rules)
        if problem is None and rules.decode:
            try:
                load_checked(utterance)
            except AudioError as error:
                problem = error.kind, error.reason
        if problem is None:
            usable.append(utterance)
        else:
            log.add(skip_record(utterance, *problem, dataset=dataset))
    return usable


def load_batch(
    batch: Sequence[Utterance], on_skip: Callable[[Utterance, AudioError], None] | None
) -> tuple[list[Utterance], list[np.ndarray]]:
    """Decode a batch. With `on_skip`, a clip that fails `load_checked` goes to it and is left out; without, every
    clip is loaded as it is (and an undecodable one raises)."""
    if on_skip is None:
        return list(batch), [utterance.load() for utterance in batch]
    kept, audios = [], []
    for utterance in batch:
        try:
            audios.append(load_checked(utterance))
        except AudioError as error:
            on_skip(utterance, error)
            continue
        kept.append(utterance)
    return kept, audios
