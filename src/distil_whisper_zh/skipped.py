"""Bad input, kept out and written down: which clips a command could not use, and why.

Real corpora are messy (empty or broken clips, transcripts without audio). Every data-reading command screens its
clips with `screen` (file header, duration, reference), catches the rest when decoding (`load_checked`), records
each one as a `Skipped` row in a `SkipLog`, writes them to `skipped.jsonl` next to its output, and goes on with the
good clips. It fails only when nothing usable is left, or at the first bad clip under `--strict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .audio import SAMPLE_RATE, AudioError, duration_seconds
from .errors import DwzError
from .jsonl import write_jsonl_atomic
from .text import normalize_for_cer

if TYPE_CHECKING:
    from .data import Utterance

SKIPPED_FILE = "skipped.jsonl"
MIN_SECONDS = 0.1  # shorter clips hold no speech Whisper can transcribe
MAX_SECONDS = 30 * 60.0  # longer recordings are not utterances: split them (long-form decoding holds them in memory)
SILENCE_PEAK = 1e-4  # peak amplitude (full scale 1.0) below which a clip is digital silence (-80 dBFS)
SHOWN_IN_ERRORS = 3  # bad clips named in an error message; the rest are in skipped.jsonl


@dataclass(frozen=True)
class Skipped:
    """One clip (or manifest row) a command left out."""

    id: str  # utterance id, or "LINE n" for a manifest row that gave no utterance
    path: str | None  # the audio file (or the manifest) concerned
    kind: str  # short tag to count by: missing, unreadable, empty, not_audio, unsupported_format, undecodable,
    # truncated, too_short, too_long, silent, no_reference, empty_reference, no_transcript, bad_row
    reason: str  # what is wrong and what to do, for a person
    dataset: str | None = None

    def line(self) -> str:
        return f"{self.path or self.id}: {self.reason}"


@dataclass(frozen=True)
class ScreenRules:
    """What a command can use."""

    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS  # training: one 30-s window
    need_reference: bool = False  # a clip without reference text is of no use (scoring, training)
    nonempty_reference: bool = False  # a reference must keep characters after CER normalisation (scoring, filters)
    decode: bool = False  # decode every clip now, so none fails later (training: batches must not change mid-run)


class SkipLog:
    """The skipped clips of one command run, in the order found."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.items: list[Skipped] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Skipped) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[Skipped]) -> None:
        self.items.extend(items)

    def add_strictly(self, item: Skipped) -> None:
        """Record `item`; under --strict stop right away (a clip that failed while decoding)."""
        self.add(item)
        self.check_strict()

    def check_strict(self) -> None:
        """Under --strict, any bad input is an error that names the first few."""
        if self.strict and self.items:
            raise DwzError(
                f"--strict: {len(self.items)} bad input(s): {self.examples()} "
                "(fix or remove them, or drop --strict to skip them and list them in skipped.jsonl)"
            )

    def examples(self, items: list[Skipped] | None = None) -> str:
        """The first few of `items` (default: all recorded), one clause each, for an error message."""
        items = self.items if items is None else items
        shown = "; ".join(item.line() for item in items[:SHOWN_IN_ERRORS])
        more = len(items) - SHOWN_IN_ERRORS
        return shown + (f"; and {more} more" if more > 0 else "")

    def counts(self) -> dict[str, int]:
        return dict(Counter(item.kind for item in self.items))

    def for_dataset(self, dataset: str) -> list[Skipped]:
        return [item for item in self.items if item.dataset == dataset]

    def write(self, path: Path) -> Path:
        """Write every row to `path` (replacing it, atomically; an empty file says nothing was skipped)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(path, [asdict(item) for item in self.items])
        return path

    def summary(self) -> str:
        """One line for the terminal: how many, of which kinds."""
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts().items()))
        return f"skipped {len(self.items)} bad input(s) ({kinds})" if self.items else "skipped nothing"

    def nothing_usable(self, what: str) -> DwzError:
        """The error for a run where every clip was bad."""
        return DwzError(f"{what}: nothing usable, every clip was skipped: {self.examples()}")


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
