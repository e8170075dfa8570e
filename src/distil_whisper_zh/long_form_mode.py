"""How a model reads long recordings: window after window (over 30 s), or in chunks cut at pauses.

Whisper reads a long recording window after window, each starting at the last timestamp it predicted
(`sequential`). A distilled student trained on single utterances cannot: it stops after the first sentence of a
long input (RESULTS.md, Long recordings cut at pauses: 58% CER in 15-s chunks, 24% in 6-s chunks against 23% clip
by clip). What it reads well is a chunk about as long as the clips it learned from. `dwz distill` therefore records
in the student's `config.json`, under `dwz_long_form`, that it reads long recordings `chunked`, in chunks no
longer than most of its training clips (`for_training_clips`), and every consumer (`dwz transcribe`, `evaluate`,
`pseudo-label`, a CTranslate2 export) uses that unless told otherwise (`--long-form`, `--chunk-seconds`). Chunked
reading cuts any input longer than a chunk, 30-s windows included (`CHUNKED_INPUTS`): a student stops after the
first sentence of any input much longer than its clips. A model without the field reads long recordings as Whisper
does.

This module imports no torch: the command line reads its defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from .config_fields import read_record, write_field
from .errors import DwzError

CONFIG_KEY = "dwz_long_form"  # in config.json (transformers) and the CTranslate2 export's config.json
LongForm = Literal["sequential", "chunked"]
MODES = ("sequential", "chunked")
WINDOW_SECONDS = 30.0
MIN_CHUNK_SECONDS = 2.0  # a chunk shorter than this could cut through words at every pause
DEFAULT_CHUNK_SECONDS = 15.0  # Whisper itself (the teacher: 20.42% in 15-s chunks, 23.00% in 6-s ones)
TRAINING_QUANTILE = 0.9  # a student's chunks: no longer than 90% of the clips it was trained on
CHUNK_STEP = 0.5  # seconds: recorded chunk lengths are rounded up to this step
# Which inputs chunked reading cuts, in the identity of resumable results (evaluate's partial rows, pseudo-label's
# run.json): results of the earlier rule (recordings over 30 s only) are not mixed with these.
CHUNKED_INPUTS = "longer than a chunk"


def reading_identity(long_form: str | None) -> dict:
    """What a resumable result made with this long-form reading must match beyond the options themselves."""
    return {"chunked_inputs": CHUNKED_INPUTS} if long_form == "chunked" else {}


def check_chunk_seconds(seconds: float) -> None:
    """A chunk is decoded as one window: between `MIN_CHUNK_SECONDS` and 30 s."""
    if not MIN_CHUNK_SECONDS <= seconds <= WINDOW_SECONDS:
        raise DwzError(
            f"--chunk-seconds {seconds:g}: give {MIN_CHUNK_SECONDS:g} to {WINDOW_SECONDS:g} seconds "
            "(a chunk is decoded as one window)"
        )


@dataclass(frozen=True)
class LongFormMode:
    """How long recordings are read (see the module docstring): `sequential` over 30 s, or `chunked`: anything
    longer than `chunk_seconds`."""

    mode: LongForm = "sequential"
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DwzError(f"--long-form {self.mode!r}: choose one of {', '.join(MODES)}")
        check_chunk_seconds(self.chunk_seconds)

    @classmethod
    def for_training_clips(cls, seconds: Sequence[float]) -> LongFormMode:
        """Chunked, in chunks as long as 90% of these training clips (rounded up to 0.5 s, at least 2 s)."""
        if not seconds:
            raise DwzError("no training clips to choose a chunk length from")
        ordered = sorted(seconds)
        at_quantile = ordered[min(len(ordered) - 1, math.ceil(TRAINING_QUANTILE * len(ordered)) - 1)]
        rounded = math.ceil(at_quantile / CHUNK_STEP) * CHUNK_STEP
        return cls("chunked", min(WINDOW_SECONDS, max(MIN_CHUNK_SECONDS, rounded)))

    def to_json(self) -> dict | None:
        """What the model's config records (None: Whisper's own sequential reading, no field)."""
        return None if self == LongFormMode() else asdict(self)

    @classmethod
    def of(cls, config) -> LongFormMode:
        """How a model reads long recordings, from its config object or config.json dict."""
        return read_record(config, CONFIG_KEY, cls)


def record(config, mode: LongFormMode) -> None:
    """Write `mode` into a transformers config (removing the field for Whisper's own reading)."""
    write_field(config, CONFIG_KEY, mode.to_json())
