"""Punctuation without a punctuation model: carry the teacher's marks onto an unpunctuated reference, and score
punctuation by the same alignment.

AISHELL-style references have no punctuation; Whisper's output has it. Both are split into characters and the
marks that follow each character; the characters are aligned by edit distance (jiwer); every teacher mark is
placed after the reference character its preceding teacher character aligned to. The training target keeps the
reference's characters and gains the teacher's punctuation.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import jiwer

from .text import to_simplified

# Whisper writes ASCII marks now and then; in Chinese text the full-width forms are the norm.
FULL_WIDTH_MARKS = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"})


def is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


@dataclass
class Punctuated:
    """Text as characters (no marks) and, for each character, the marks right after it."""

    chars: list[str]
    marks_after: list[str]
    leading: str = ""  # marks before the first character (dropped on transfer)


def split_marks(text: str) -> Punctuated:
    chars: list[str] = []
    marks: list[str] = []
    leading = ""
    for char in text:
        if is_mark(char):
            if chars:
                marks[-1] += char
            else:
                leading += char
        elif not char.isspace():
            chars.append(char)
            marks.append("")
    return Punctuated(chars, marks, leading)


def _comparable(chars: list[str]) -> str:
    return "".join(to_simplified(unicodedata.normalize("NFKC", c)).lower()[:1] or c for c in chars)


def align_to_reference(reference: list[str], hypothesis: list[str]) -> list[int | None]:
    """For each hypothesis character, the index of the reference character it aligns with (matched or
    substituted), or for an inserted character the reference character before it; None before the first."""
    ref, hyp = _comparable(reference), _comparable(hypothesis)
    if not ref or not hyp:
        return [None if not ref else len(ref) - 1] * len(hyp)
    mapping: list[int | None] = [None] * len(hyp)
    for chunk in jiwer.process_characters(ref, hyp).alignments[0]:
        for offset in range(chunk.hyp_end_idx - chunk.hyp_start_idx):
            j = chunk.hyp_start_idx + offset
            if chunk.type in ("equal", "substitute"):
                mapping[j] = chunk.ref_start_idx + offset
            elif chunk.type == "insert":
                mapping[j] = chunk.ref_start_idx - 1 if chunk.ref_start_idx > 0 else None
    return mapping


def transfer_punctuation(reference: str, teacher: str) -> str:
    """The reference's characters with the teacher's punctuation marks inserted at the aligned positions.

    A reference that already has punctuation is returned unchanged.
    """
    if any(is_mark(c) for c in reference):
        return reference
    ref = split_marks(reference)
    hyp = split_marks(teacher.translate(FULL_WIDTH_MARKS))
    marks_after = [""] * len(ref.chars)
    for j, target in enumerate(align_to_reference(ref.chars, hyp.chars)):
        if target is not None and target >= 0 and hyp.marks_after[j]:
            marks_after[target] = hyp.marks_after[j]  # several teacher characters on one: the last one's marks
    if ref.chars and hyp.chars and hyp.marks_after[-1] and not marks_after[-1]:
        marks_after[-1] = hyp.marks_after[-1]  # the teacher's final mark ends the sentence
    return "".join(char + marks for char, marks in zip(ref.chars, marks_after, strict=True))


@dataclass(frozen=True)
class MarkCounts:
    matched: int = 0
    hypothesis: int = 0
    reference: int = 0

    def __add__(self, other: MarkCounts) -> MarkCounts:
        return MarkCounts(
            self.matched + other.matched, self.hypothesis + other.hypothesis, self.reference + other.reference
        )

    @property
    def f1(self) -> float:
        if self.hypothesis + self.reference == 0:
            return 1.0
        return 2 * self.matched / (self.hypothesis + self.reference)


def punctuation_counts(reference: str, hypothesis: str) -> MarkCounts:
    """Marks of the hypothesis that sit, after alignment, where the reference has the same mark."""
    ref = split_marks(reference.translate(FULL_WIDTH_MARKS))
    hyp = split_marks(hypothesis.translate(FULL_WIDTH_MARKS))
    expected = {(i, m) for i, marks in enumerate(ref.marks_after) for m in marks}
    placed = set()
    for j, target in enumerate(align_to_reference(ref.chars, hyp.chars)):
        if target is not None and target >= 0:
            placed |= {(target, m) for m in hyp.marks_after[j]}
    hypothesis_marks = sum(len(m) for m in hyp.marks_after)
    return MarkCounts(len(expected & placed), hypothesis_marks, sum(len(m) for m in ref.marks_after))
