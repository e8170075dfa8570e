"""How much of Whisper's 30-s window the encoder reads: all of it, or the clip plus a margin (dynamic context).

Whisper pads every clip to 30 s (3,000 log-mel frames, 1,500 encoder positions of 20 ms) and its encoder spends
most of a CPU's decoding time on that padding. A model trained for it (`dwz distill --audio-context dynamic`)
reads only the clip's own frames plus `margin` positions, rounded up to a multiple of `multiple` positions, and
records that in its `config.json` under `dwz_audio_context`, so every consumer (transformers, a CTranslate2 export,
speculative decoding) runs it that way without flags. A model without the field reads the full window, as Whisper.

`models.encoder.encode` runs Whisper's encoder over such a shorter input. This module imports no torch: the
command line reads its defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .config_fields import read_record, write_field
from .errors import DwzError

CONFIG_KEY = "dwz_audio_context"  # in config.json (transformers) and the CTranslate2 export's config.json
MODES = ("full", "dynamic")
SAMPLES_PER_POSITION = 320  # 160-sample hop, then the encoder's stride-2 convolution: 20 ms an encoder position
FRAMES_PER_POSITION = 2
FULL_POSITIONS = 1500  # one 30-s window
DEFAULT_MARGIN = 64  # 1.28 s after the clip: FUTO's whisper-acft found 32-64 extra positions matter on hard audio
DEFAULT_MULTIPLE = 32  # lengths in steps of 0.64 s: few distinct shapes, at most 0.64 s of extra work


@dataclass(frozen=True)
class AudioContext:
    """The encoder's input length policy (see the module docstring); `full` ignores margin and multiple."""

    mode: str = "full"  # full (the 30-s window) or dynamic (the clip + margin)
    margin: int = DEFAULT_MARGIN  # encoder positions (20 ms each) read past the end of the clip
    multiple: int = DEFAULT_MULTIPLE  # lengths are rounded up to a multiple of this many positions

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DwzError(f"--audio-context {self.mode!r}: choose one of {', '.join(MODES)}")
        if not 0 <= self.margin < FULL_POSITIONS:
            raise DwzError(
                f"--context-margin {self.margin}: give 0..{FULL_POSITIONS - 1} encoder positions of 20 ms "
                f"past the clip (default {DEFAULT_MARGIN}, 1.28 s)"
            )
        if not 1 <= self.multiple <= FULL_POSITIONS:
            raise DwzError(
                f"--context-multiple {self.multiple}: give 1..{FULL_POSITIONS} encoder positions "
                f"(default {DEFAULT_MULTIPLE}, 0.64 s)"
            )

    @property
    def dynamic(self) -> bool:
        return self.mode == "dynamic"

    def positions(self, samples: int) -> int:
        """Encoder positions for a clip of `samples` 16-kHz samples (1,500 for the full window or a long clip)."""
        if not self.dynamic:
            return FULL_POSITIONS
        needed = math.ceil(samples / SAMPLES_PER_POSITION) + self.margin
        return min(FULL_POSITIONS, math.ceil(needed / self.multiple) * self.multiple)

    def frames(self, lengths: Sequence[int]) -> int:
        """Log-mel frames for a batch of clips of these sample counts: the longest clip's context."""
        return FRAMES_PER_POSITION * max(self.positions(n) for n in lengths)

    def to_json(self) -> dict | None:
        """What the model's config records (None: the full window, no field)."""
        return asdict(self) if self.dynamic else None

    @classmethod
    def of(cls, config) -> AudioContext:
        """The context a model was trained for, from its config object or config.json dict."""
        return read_record(config, CONFIG_KEY, cls)


def record(config, context: AudioContext) -> None:
    """Write `context` into a transformers config (removing the field for the full window)."""
    write_field(config, CONFIG_KEY, context.to_json())


def cut_features(features, frames: int):
    """The first `frames` log-mel frames of 30-s features (batch, mels, 3000): the clip and its margin.

    Features are always computed over the padded 30-s window and then cut, in training and decoding alike, so a
    frame means the same thing in both (Whisper's log-mel floor depends on the whole input)."""
    return features[..., :frames]
