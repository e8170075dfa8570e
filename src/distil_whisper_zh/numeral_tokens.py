"""Teacher distributions moved from digits onto spelled numbers, so the KL term agrees with labels that spell them.

AISHELL writes numbers in characters (三十年, 两千元, 一三八...) and so do labels made with `dwz pseudo-label
--numerals spell`; whisper-base writes most of them in digits (30年, 2000元, 138...). Where the label writes 三, the
teacher's distribution puts its mass on `30`: a KL term against it teaches the student digits while the
cross-entropy teaches 三, and the student learns both at once (观察30十年, 00零零后, 赔2000千元 in
results/cpu-base-zh-10ep). With `dwz distill --fold-teacher-numerals`, where the label's token begins a numeral
character, the teacher's digit tokens are folded onto that token (distill/losses.py's label folds, as
script_tokens.py does for Traditional pieces): the teacher's "a number here" counts as the label's way of writing
it, and what the student learns from the KL is the teacher's certainty, not its notation.

The fold applies wherever a label's token begins a numeral character, 一起 and 十分 included (the teacher puts
next to no mass on digits there), and nowhere else: a label that writes a number in digits (30万) is folded at
its characters only (万).
"""

from __future__ import annotations

import torch

from .script_tokens import character_starts, text_runs, token_bytes, utf8_length

# what AISHELL's transcripts write numbers with (幺: 1 in phone numbers; 两: 2 before a measure word)
NUMERAL_CHARACTERS = frozenset("零〇一二两三四五六七八九十百千万亿幺")
DIGITS = frozenset("0123456789０１２３４５６７８９")


def digit_token_ids(tokenizer) -> list[int]:
    """Text tokens that begin with a digit, a leading space aside (`3`, ` 20`, `000`, `1.`)."""
    found = []
    for token_id in range(tokenizer.eos_token_id):
        text = tokenizer.decode([token_id]).lstrip()
        if text[:1] in DIGITS:
            found.append(token_id)
    return found


class NumeralSpellings:
    """Where, along a label, a position's token begins a numeral character, and the teacher's digit tokens that
    fold onto it there (`in_batch`, in the (row, position, token) form of `TraditionalSpellings.in_batch`)."""

    def __init__(self, tokenizer):
        self.pieces = token_bytes(tokenizer)
        self.digit_ids = torch.tensor(digit_token_ids(tokenizer), dtype=torch.long)

    def positions(self, label_ids: list[int]) -> list[int]:
        """Positions in `label_ids` whose token begins a numeral character (the first byte piece of 零 counts;
        special tokens and IGNORE_INDEX entries are not text)."""
        return [p for run in text_runs(label_ids, len(self.pieces)) for p in self._numeral_starts(run)]

    def in_batch(self, labels: torch.Tensor) -> torch.Tensor:
        """(N, 3) long tensor of (row, position, digit token) for a (batch, positions) label tensor: every digit
        token at every position that begins a numeral character."""
        at = [(row, position) for row, ids in enumerate(labels.tolist()) for position in self.positions(ids)]
        places = torch.tensor(at, dtype=torch.long).reshape(-1, 2)
        digits = self.digit_ids
        triples = torch.cat([places.repeat_interleave(len(digits), dim=0), digits.repeat(len(places))[:, None]], dim=1)
        return triples.to(labels.device)

    def _numeral_starts(self, run: list[tuple[int, int]]) -> list[int]:
        data = b"".join(self.pieces[token] for _, token in run)
        starts = set(character_starts(data))
        found, offset = [], 0
        for position, token in run:
            if offset in starts and _character_at(data, offset) in NUMERAL_CHARACTERS:
                found.append(position)
            offset += len(self.pieces[token])
        return found


def _character_at(data: bytes, offset: int) -> str:
    """The character whose UTF-8 bytes start at `offset`."""
    return data[offset : offset + utf8_length(data[offset])].decode("utf-8", errors="replace")
