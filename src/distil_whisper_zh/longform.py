"""Long recordings made from short clips, and the checks of the segments a model decodes on them.

`dwz evaluate --concat SECONDS` joins consecutive clips of a dataset into recordings of about that length, with
the references joined and the join times known: the model decodes them window by window, as it would a meeting,
and its segments can be checked against the joins (in order, inside the audio, a boundary near each join, no
window left without text).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .audio import SAMPLE_RATE
from .data import Utterance

JOIN_TOLERANCE = 1.0  # seconds: a segment boundary this close to a true join counts as finding it
END_TOLERANCE = 0.5  # seconds: a segment may end this far past the audio (timestamps are 20-ms steps, rounded)
JOINS_FIELD = "joins"  # the seconds at which one clip ends and the next begins
SEGMENTS_FIELD = "segments"  # [[start, end], ...] of a decoded recording


def join_clips(utterances: Sequence[Utterance], seconds: float) -> list[Utterance]:
    """Consecutive clips joined into recordings of at least `seconds` (the last one may be shorter), in order;
    each recording's text is its clips' texts joined, its fields hold the join times and the clip ids."""
    recordings, group, length = [], [], 0.0
    for utterance in utterances:
        group.append(utterance)
        length += utterance.seconds()
        if length >= seconds:
            recordings.append(_joined(group, len(recordings)))
            group, length = [], 0.0
    if group:
        recordings.append(_joined(group, len(recordings)))
    return recordings


def _joined(clips: list[Utterance], number: int) -> Utterance:
    audios = [clip.load() for clip in clips]
    ends = np.cumsum([len(audio) for audio in audios]) / SAMPLE_RATE
    audio = np.concatenate(audios).astype(np.float32)
    return Utterance(
        id=f"joined-{number:04d}",
        audio=audio,
        text="".join(clip.text or "" for clip in clips),
        duration=len(audio) / SAMPLE_RATE,
        fields={JOINS_FIELD: [round(float(t), 3) for t in ends[:-1]], "parts": [clip.id for clip in clips]},
    )


@dataclass
class LongFormTiming:
    """Segment checks over the recordings of one model on one dataset."""

    recordings: int
    out_of_order: int  # recordings whose segments go back in time or end before they start
    past_end: int  # recordings with a segment ending after the audio does
    joins: int  # true joins between clips
    joins_found: int  # joins with a segment boundary within JOIN_TOLERANCE seconds
    # the same count at the middle of each clip, where no join is: what boundaries placed anyhow would score
    decoys_found: int
    longest_silence: float  # seconds: the longest stretch of a recording no segment covers (a lost window shows)
    # where the segments come from: the model's timestamps (sequential long-form), or the chunks the VAD cut
    # (--long-form chunked, one segment a chunk, "chunks of <= 6.5 s"): then the checks above describe the VAD
    segments_from: str = "timestamps"

    @property
    def joins_found_share(self) -> float | None:
        return self.joins_found / self.joins if self.joins else None


def timing_checks(rows: Sequence[dict]) -> LongFormTiming:
    """Checks of decoded rows that carry `segments`, `joins` and `audio_seconds`."""
    out_of_order = past_end = joins = found = decoys = 0
    longest = 0.0
    for row in rows:
        segments, duration = row[SEGMENTS_FIELD], row["audio_seconds"]
        out_of_order += not in_order(segments)
        past_end += any(end > duration + END_TOLERANCE for _, end in segments)
        boundaries = [t for segment in segments for t in segment]
        joins += len(row[JOINS_FIELD])
        found += boundaries_near(row[JOINS_FIELD], boundaries)
        decoys += boundaries_near(midpoints([0.0, *row[JOINS_FIELD], duration])[: len(row[JOINS_FIELD])], boundaries)
        longest = max(longest, longest_uncovered(segments, duration))
    return LongFormTiming(len(rows), out_of_order, past_end, joins, found, decoys, round(longest, 2))


def boundaries_near(times: Sequence[float], boundaries: Sequence[float]) -> int:
    """How many of `times` have a segment boundary within JOIN_TOLERANCE seconds."""
    return sum(any(abs(b - t) <= JOIN_TOLERANCE for b in boundaries) for t in times)


def midpoints(edges: Sequence[float]) -> list[float]:
    return [(a + b) / 2 for a, b in itertools.pairwise(edges)]


def in_order(segments: Sequence[Sequence[float]]) -> bool:
    """Each segment ends no earlier than it starts and starts no earlier than the one before it."""
    previous = 0.0
    for start, end in segments:
        if end < start or start < previous:
            return False
        previous = start
    return True


def longest_uncovered(segments: Sequence[Sequence[float]], duration: float) -> float:
    """The longest stretch of [0, duration] that no segment covers."""
    longest, covered = 0.0, 0.0
    for start, end in sorted(segments):
        longest = max(longest, start - covered)
        covered = max(covered, end)
    return max(longest, duration - covered)
