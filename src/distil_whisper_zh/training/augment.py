"""SpecAugment-style views of a clip for a frozen, cached encoder.

The encoder is frozen and its states are cached, so the usual on-the-fly masking of the input features would
cost an encoder pass every step. Instead `--augment-views N` caches N extra views of every clip, each computed
from log-mel features with frequency and time bands masked (Park et al. 2019, "SpecAugment"; the band sizes
below are their LibriSpeech "LD" policy). Epoch e reads a clip from view (e + offset of the clip) mod (N + 1),
view 0 being the clean one: every epoch mixes clean and masked clips, and each clip cycles through all views.
With `--teacher-top-k` the teacher's targets are cached once from the clean view, so the student learns to read
masked states the way the teacher reads clean ones; a live teacher reads the same masked states as the student.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
MASKING_VERSION = 1  # part of a cached view's key: raise it when spec_augment masks differently


@dataclass(frozen=True)
class SpecAugmentPolicy:
    freq_masks: int = 2
    freq_width: int = 27  # mel bins (of 80) a frequency mask covers at most
    time_masks: int = 2
    time_width: int = 100  # frames (10 ms each) a time mask covers at most ...
    max_time_share: float = 0.2  # ... and at most this share of the clip's speech frames

    def describe(self) -> str:
        return (
            f"{self.freq_masks} frequency masks of <= {self.freq_width} mel bins, {self.time_masks} time masks of "
            f"<= {self.time_width} frames and <= {self.max_time_share:.0%} of the clip"
        )


DEFAULT_POLICY = SpecAugmentPolicy()


def view_seed(key: str, view: int) -> int:
    """The same clip and view are always masked the same way (a cache rebuilt is the same cache)."""
    return int.from_bytes(hashlib.sha256(f"{key}\0{view}".encode()).digest()[:8], "big")


def _band(size: int, max_width: int, generator: torch.Generator) -> tuple[int, int]:
    width = int(torch.randint(0, max(1, min(max_width, size)) + 1, (1,), generator=generator))
    start = int(torch.randint(0, size - width + 1, (1,), generator=generator))
    return start, start + width


def spec_augment(
    features: torch.Tensor, speech_frames: int, seed: int, policy: SpecAugmentPolicy = DEFAULT_POLICY
) -> torch.Tensor:
    """A copy of (mels, frames) log-mel `features` with bands set to the speech's mean value; frames after the
    first `speech_frames` (Whisper's padding to 30 s) are left as they are."""
    generator = torch.Generator().manual_seed(seed)
    masked = features.clone()
    speech_frames = max(1, min(speech_frames, features.shape[-1]))
    fill = features[:, :speech_frames].mean()
    for _ in range(policy.freq_masks):
        low, high = _band(features.shape[0], policy.freq_width, generator)
        masked[low:high, :speech_frames] = fill
    time_width = min(policy.time_width, int(policy.max_time_share * speech_frames))
    for _ in range(policy.time_masks):
        start, end = _band(speech_frames, time_width, generator)
        masked[:, start:end] = fill
    return masked


def clip_view(key: str, read: int | None, views: int) -> int:
    """Which cached view (0 = clean) the `read`-th training read of clip `key` uses; `None` means the clean one.

    Consecutive reads of a clip cycle through its views from a per-clip offset, so one epoch mixes clean and
    masked clips and a clip read twice (an epoch, or a weighted dataset's repeats) sees two different views.
    """
    if read is None or views == 0:
        return 0
    offset = view_seed(key, -1) % (views + 1)
    return (read + offset) % (views + 1)
