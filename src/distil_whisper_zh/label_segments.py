"""The teacher's segment times carried onto a label's text (`dwz pseudo-label --timestamps`).

A label's text is not always the teacher's (`--punctuation transfer` keeps the reference's characters, `--numerals
spell` rewrites digits), so the teacher's segments are not cut from it directly: the label's characters are aligned
with the teacher's (the alignment punctuation transfer uses) and the label is cut after the character each teacher
segment's last character aligns with. The pieces, joined, are the label text exactly; their times are the
teacher's, made monotonic and kept inside the clip. A teacher segment no label character falls in (a hallucinated
phrase) gives no piece; label text after the teacher's last segment (words the teacher missed at the end) joins
the last piece, which then ends with the clip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .decoding import TIME_PRECISION, Segment
from .punctuation import align_to_reference, is_mark, split_marks


def label_segments(text: str, segments: Sequence[Segment], seconds: float) -> list[list]:
    """`[[start, end, text], ...]` for a label `text` whose audio lasts `seconds`, cut where the teacher's
    `segments` end; [] when the teacher wrote no segment or the label has no characters (the clip then counts as
    one segment in training)."""
    label = split_marks(text)
    if not segments or not label.chars:
        return []
    owner: list[int] = []  # the teacher segment of each teacher character
    teacher_chars: list[str] = []
    for index, segment in enumerate(segments):
        chars = split_marks(segment.text).chars
        teacher_chars += chars
        owner += [index] * len(chars)
    cuts = _cuts(align_to_reference(label.chars, teacher_chars), owner, len(segments))
    missed_end = cuts[-1] < len(label.chars)  # label characters after all the teacher wrote
    cuts[-1] = len(label.chars)
    where = [i for i, c in enumerate(text) if not is_mark(c) and not c.isspace()]  # each label character in text
    where.append(len(text))
    pieces: list[list] = []
    begin = 0  # the label character the next piece starts at
    for index, end in enumerate(cuts):
        if end > begin:  # marks and spaces after a piece's last character stay with it
            pieces.append(
                [segments[index].start, segments[index].end, text[where[begin] if pieces else 0 : where[end]]]
            )
            begin = end
    if missed_end:
        pieces[-1][1] = seconds
    return _timed(pieces, seconds)


def _cuts(mapping: list[int | None], owner: list[int], count: int) -> list[int]:
    """For each teacher segment, the label position its text ends at (non-decreasing)."""
    cuts = [0] * count
    for char, target in enumerate(mapping):
        if target is not None:
            cuts[owner[char]] = max(cuts[owner[char]], target + 1)
    for index in range(1, count):
        cuts[index] = max(cuts[index], cuts[index - 1])
    return cuts


def _timed(pieces: list[list], seconds: float) -> list[list]:
    """Times on Whisper's 20-ms steps, inside [0, seconds], each piece starting where the one before ended or later."""
    last = round(math.floor(seconds / TIME_PRECISION + 1e-9) * TIME_PRECISION, 2)  # the last step inside the clip
    previous_end = 0.0
    for piece in pieces:
        start = min(max(_step(piece[0]), previous_end), last)
        piece[0], piece[1] = start, min(max(_step(piece[1]), start), last)
        previous_end = piece[1]
    return pieces


def _step(seconds: float) -> float:
    return round(round(seconds / TIME_PRECISION) * TIME_PRECISION, 2)
