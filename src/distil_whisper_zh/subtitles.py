"""SubRip (.srt) and WebVTT (.vtt) text from timed segments."""

from __future__ import annotations

from collections.abc import Sequence

from .decoding import Segment

MILLISECONDS_PER_HOUR = 3_600_000


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """`HH:MM:SS,mmm` (SRT, marker ",") or `HH:MM:SS.mmm` (WebVTT, marker "."), rounded to the millisecond."""
    milliseconds = max(0, round(seconds * 1000))
    hours, milliseconds = divmod(milliseconds, MILLISECONDS_PER_HOUR)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole_seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole_seconds:02d}{decimal_marker}{milliseconds:03d}"


def to_srt(segments: Sequence[Segment]) -> str:
    """Numbered cues from 1, `start --> end` with comma decimals, a blank line after each cue."""
    cues = [
        f"{number}\n{format_timestamp(s.start, ',')} --> {format_timestamp(s.end, ',')}\n{s.text}\n"
        for number, s in enumerate(segments, start=1)
    ]
    return "\n".join(cues)


def to_vtt(segments: Sequence[Segment]) -> str:
    """`WEBVTT` header, then `start --> end` cues with dot decimals, each followed by a blank line."""
    cues = [f"{format_timestamp(s.start, '.')} --> {format_timestamp(s.end, '.')}\n{s.text}\n" for s in segments]
    return "\n".join(["WEBVTT\n", *cues])
