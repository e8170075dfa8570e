"""Teacher distributions moved from Traditional to Simplified tokens, so the KL term teaches Simplified output.

Multilingual Whisper answers Mandarin in Traditional characters about half the time. Its distribution at a position
whose (Simplified) label is 这 puts much of its mass on 這; a KL term against that distribution pulls the student
back towards Traditional output while the cross-entropy term pulls it towards the label. Folding each Traditional
token's probability onto the token that starts its Simplified spelling (這 -> 这, 什麼 -> 什么) removes the conflict:
the student learns the teacher's uncertainty between *words*, not between scripts (distill/losses.py applies it).

Tokens that are not whole characters (byte pieces of a rarer character) cannot be converted on their own and are
left as they are; so are tokens without a Traditional form, and 乾, which OpenCC converts on its own (to 干) but
Simplified Chinese also writes (乾隆, 乾坤). 於 is folded onto 于: Simplified keeps it only for a rare surname, while
whisper-base writes 由於 and 於是 for 由于 and 于是 all the time (a demo student learned 由於 from it).

The same tokens are what `dwz create-student` suppresses in a student's generation config (`traditional_token_ids`):
a student taught Simplified never needs them, and transformers' `generate`, its pipeline and a CTranslate2 export
all honour `suppress_tokens`.
"""

from __future__ import annotations

import bisect

import torch
from transformers.convert_slow_tokenizer import bytes_to_unicode

from .text import to_simplified

REPLACEMENT_CHARACTER = "\ufffd"  # what a byte piece of a multi-byte character decodes to
# A standard Simplified character (通用规范汉字表, 乾 = qián) that t2s still maps on its own, not knowing the word.
ALSO_SIMPLIFIED = frozenset("乾")


def simplified_token_map(tokenizer) -> torch.Tensor:
    """(vocab,) long tensor: token id -> the id that starts its Simplified spelling (itself when unchanged).

    Only text tokens (ids below <|endoftext|>) are looked at; special and timestamp tokens map to themselves.
    """
    mapping = torch.arange(len(tokenizer), dtype=torch.long)
    for token_id in range(tokenizer.eos_token_id):
        text = tokenizer.decode([token_id])
        if REPLACEMENT_CHARACTER in text or ALSO_SIMPLIFIED & set(text):
            continue
        simplified = to_simplified(text)
        if simplified != text:
            mapping[token_id] = tokenizer.encode(simplified, add_special_tokens=False)[0]
    return mapping


def traditional_token_ids(tokenizer) -> list[int]:
    """Text tokens that are whole words or characters written in Traditional-only forms (這, 們, 什麼, ...)."""
    mapping = simplified_token_map(tokenizer)
    return torch.nonzero(mapping != torch.arange(len(mapping))).flatten().tolist()


# The Unified Ideographs and Extension A: every character OpenCC's t2s converts on its own lies in them.
CJK_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))


def traditional_forms() -> dict[str, tuple[str, ...]]:
    """Simplified character -> its Traditional-only forms (规 -> 規; 发 -> 發 髮), one character each."""
    chars = [chr(cp) for first, last in CJK_BLOCKS for cp in range(first, last + 1)]
    # one character a line: t2s then converts each on its own, never as part of a phrase
    simplified = to_simplified("\n".join(chars)).split("\n")
    forms: dict[str, list[str]] = {}
    for char, simple in zip(chars, simplified, strict=True):
        if simple != char and len(simple) == 1 and char not in ALSO_SIMPLIFIED:
            forms.setdefault(simple, []).append(char)
    return {simple: tuple(chars) for simple, chars in forms.items()}


def token_bytes(tokenizer) -> list[bytes]:
    """The bytes each text token stands for: Whisper's byte-level BPE spells rarer characters in 2-3 pieces."""
    byte_of = {char: byte for byte, char in bytes_to_unicode().items()}
    pieces = tokenizer.convert_ids_to_tokens(list(range(tokenizer.eos_token_id)))
    return [bytes(byte_of[char] for char in piece) for piece in pieces]


def utf8_length(lead: int) -> int:
    """Bytes in the UTF-8 character that starts with `lead` (1 for a stray continuation byte)."""
    if lead >= 0xF0:
        return 4
    if lead >= 0xE0:
        return 3
    return 2 if lead >= 0xC0 else 1


def character_starts(data: bytes) -> list[int]:
    """The offsets in `data` at which its UTF-8 characters start."""
    starts, offset = [], 0
    while offset < len(data):
        starts.append(offset)
        offset += utf8_length(data[offset])
    return starts


def text_runs(label_ids: list[int], text_vocab: int) -> list[list[tuple[int, int]]]:
    """(position, token) pairs of consecutive text tokens (ids below `text_vocab`, <|endoftext|>): special
    tokens and IGNORE_INDEX entries end a run."""
    runs: list[list[tuple[int, int]]] = [[]]
    for position, token in enumerate(label_ids):
        if 0 <= token < text_vocab:
            runs[-1].append((position, token))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


class TraditionalSpellings:
    """Where, along a Simplified label, a teacher token would spell the label's own character in Traditional.

    `simplified_token_map` folds whole-character tokens, but 24% of the characters in AISHELL transcripts are
    two or three byte pieces in Whisper's vocabulary, and there the script is chosen piece by piece: 规 is
    `e8a7` `84`, 規 is `e8a6` `8f`. Where the label writes 规, the teacher's probability for `e8a6` is its
    probability for 規, the same character; the KL moves it onto the label's own token instead of teaching the
    student the Traditional first piece (distill/losses.py). A piece both spellings share (the `e8` of 脈 and 脉)
    is no choice of script and is left alone; so are pieces of other characters than the label's.
    """

    def __init__(self, tokenizer):
        self.pieces = token_bytes(tokenizer)
        self.piece_ids: dict[bytes, int] = {}
        for token_id, piece in enumerate(self.pieces):
            self.piece_ids.setdefault(piece, token_id)
        self.forms = traditional_forms()
        self.tokenizer = tokenizer
        self._spellings: dict[str, list[int]] = {}
        self._memo: dict[tuple[int, ...], list[tuple[int, int]]] = {}

    def along(self, label_ids: list[int]) -> list[tuple[int, int]]:
        """(position, token) pairs: the teacher's `token` at `position` spells the label's character in
        Traditional. Positions index `label_ids`; special tokens and IGNORE_INDEX entries end a run of text."""
        key = tuple(label_ids)
        if key not in self._memo:
            self._memo[key] = [pair for run in text_runs(label_ids, len(self.pieces)) for pair in self._run_pairs(run)]
        return self._memo[key]

    def in_batch(self, labels: torch.Tensor) -> torch.Tensor:
        """(N, 3) long tensor of (row, position, token) for a (batch, positions) label tensor."""
        triples = [(row, pos, token) for row, ids in enumerate(labels.tolist()) for pos, token in self.along(ids)]
        return torch.tensor(triples, dtype=torch.long, device=labels.device).reshape(-1, 3)

    def _run_pairs(self, run: list[tuple[int, int]]) -> list[tuple[int, int]]:
        data = b"".join(self.pieces[token] for _, token in run)
        char_starts = character_starts(data)
        pairs, offset = [], 0
        for position, token in run:
            start = char_starts[bisect.bisect_right(char_starts, offset) - 1]
            end = start + utf8_length(data[start])
            pieces = self._traditional_pieces(data[start:end], offset - start, token)
            pairs += [(position, piece) for piece in pieces]
            offset += len(self.pieces[token])
        return pairs

    def _traditional_pieces(self, char_bytes: bytes, written: int, label_token: int) -> list[int]:
        """The token that goes on from the first `written` bytes of a label character to each of its Traditional
        forms as Whisper's tokenizer spells the form (the pieces the teacher learnt to write), where it is not
        the label's own token."""
        try:
            forms = self.forms.get(char_bytes.decode("utf-8"), ())
        except UnicodeDecodeError:
            return []
        head = char_bytes[:written]
        found = []
        for form in forms:
            spelled = b""
            for token in self._spelling(form):
                piece = self.pieces[token]
                if spelled == head and token != label_token and token not in found:
                    found.append(token)
                spelled += piece
                if not head.startswith(spelled):
                    break
        return found

    def _spelling(self, char: str) -> list[int]:
        if char not in self._spellings:
            self._spellings[char] = self.tokenizer.encode(char, add_special_tokens=False)
        return self._spellings[char]
