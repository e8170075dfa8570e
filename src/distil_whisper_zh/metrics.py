"""Character error rate, via jiwer, on normalised text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jiwer

from .text import normalize_for_cer, normalize_numerals


@dataclass(frozen=True)
class EditCounts:
    """Character edits of hypotheses against references (after normalisation)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_chars: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def cer(self) -> float:
        """Errors per reference character; 0.0 when there is nothing to compare, inf for insertions only."""
        if self.reference_chars == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_chars

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_chars + other.reference_chars,
        )


def edit_counts(reference: str, hypothesis: str) -> EditCounts:
    """Edits between two already-normalised strings, counted per character."""
    if not reference:
        return EditCounts(insertions=len(hypothesis))
    if not hypothesis:
        return EditCounts(deletions=len(reference), reference_chars=len(reference))
    out = jiwer.process_characters(reference, hypothesis)
    return EditCounts(out.substitutions, out.deletions, out.insertions, len(reference))


def utterance_counts(reference: str, hypothesis: str, normalize: Callable[[str], str] = normalize_for_cer):
    return edit_counts(normalize(reference), normalize(hypothesis))


def corpus_cer(
    references: Sequence[str], hypotheses: Sequence[str], normalize: Callable[[str], str] = normalize_for_cer
) -> float:
    """Corpus CER: all edits over all reference characters (not a mean of per-utterance CERs)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = EditCounts()
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        total = total + utterance_counts(reference, hypothesis, normalize)
    return total.cer


def corpus_cer_numerals(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER after writing numbers the same way on both sides (see `text.normalize_numerals`)."""
    return corpus_cer(references, hypotheses, normalize_numerals)
