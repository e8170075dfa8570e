"""Teacher distributions moved from Traditional to Simplified tokens, so the KL term teaches Simplified output.

Multilingual Whisper answers Mandarin in Traditional characters about half the time. Its distribution at a position
whose (Simplified) label is 这 puts much of its mass on 這; a KL term against that distribution pulls the student
back towards Traditional output while the cross-entropy term pulls it towards the label. Folding each Traditional
token's probability onto the token that starts its Simplified spelling (這 -> 这, 什麼 -> 什么) removes the conflict:
the student learns the teacher's uncertainty between *words*, not between scripts (distill/losses.py applies it).

Tokens that are not whole characters (byte pieces of a rarer character) cannot be converted on their own and are
left as they are; so are tokens without a Traditional form, and the few characters that OpenCC converts one by one
but Simplified Chinese also writes (乾 in 乾隆 and 乾坤, the surname 於).

The same tokens are what `dwz create-student` suppresses in a student's generation config (`traditional_token_ids`):
a student taught Simplified never needs them, and transformers' `generate`, its pipeline and a CTranslate2 export
all honour `suppress_tokens`.
"""

from __future__ import annotations

import torch

from .text import to_simplified

REPLACEMENT_CHARACTER = "\ufffd"  # what a byte piece of a multi-byte character decodes to
# Standard Simplified characters (通用规范汉字表) that t2s still maps on their own, as it does not know the word.
ALSO_SIMPLIFIED = frozenset("乾於")


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
