"""Chinese text normalisation, the one used everywhere a text is compared or trained on.

Scoring form (`normalize_for_cer`): Unicode NFKC (full-width -> half-width), OpenCC Traditional -> Simplified,
lower case, then punctuation and whitespace removed. `normalize_numerals` additionally writes every number in
spoken Chinese characters, on both sides, so "设定29度" and "设定二十九度" score the same.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import cn2an
import opencc

CER_NORMALIZATION = (
    "NFKC; OpenCC t2s (Traditional->Simplified); lower case; punctuation (Unicode P*), whitespace and "
    "control characters removed; CER = character edit distance / reference characters over the corpus"
)
CER_NUMERALS_NORMALIZATION = (
    "as cer, and on both sides numbers written in Chinese characters: amounts as numbers (29 -> 二十九, "
    "3.5 -> 三点五, 50% -> 百分之五十), years before 年, numbers with a leading 0 and numbers of 7+ digits (also "
    "in groups: 138 1234 5678, 138-1234-5678) read digit by digit (2019年 -> 二零一九年, 13812345678 -> 一三八...); "
    "幺 -> 一, 两 -> 二, 〇 -> 零"
)

DIGIT_NAMES = dict(zip("0123456789", "零一二三四五六七八九", strict=True))
# Spoken variants of the same digit: 幺 is "one" when reading numbers out (phone numbers, room numbers).
DIGIT_VARIANTS = str.maketrans({"幺": "一", "两": "二", "〇": "零"})
DIGIT_BY_DIGIT_MIN_LENGTH = 7  # phone and ID numbers; amounts that long are written with 万/亿 in speech
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)(%?)")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d)[,，](?=\d{3}(?!\d))")
# digit groups split by spaces or hyphens ("133 0780 7050", "010-12345678", "400-820-6666"), and their separators
_GROUP_SEPARATOR = re.compile(r"[ \u3000\-－]")
_DIGIT_GROUPS = re.compile(rf"\d+(?:{_GROUP_SEPARATOR.pattern}\d+)+")
MOBILE_DIGITS = 11  # a Chinese mobile number: 11 digits, the first a 1
_LEADING_TWO = re.compile(r"^二(?=[千万亿])")  # 2000 is read 两千, as AISHELL writes it
# a lone 2 counting things is read 两 (2个 -> 两个, 2年 -> 两年); not an ordinal (第2) or a date (2月, 2日, 2号)
_COUNTED = re.compile(r"[个岁年天周间本位次件台家种条只张名人倍辆部套层所项场份把块片]")
_HALF_WIDTH_NUMBERS = str.maketrans({**{chr(0xFF10 + d): str(d) for d in range(10)}, "．": ".", "％": "%"})


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


MAX_T2S_PASSES = 4  # a chain of t2s mappings is at most two long in OpenCC's tables; more is a safety margin


def to_simplified(text: str) -> str:
    """Traditional -> Simplified Chinese (OpenCC t2s); other characters unchanged. Repeated until nothing changes:
    t2s is not idempotent for a few characters (薴 -> 苧 -> 苎), and text converted once must compare equal to text
    converted twice (CER normalises both sides)."""
    converter = _converter("t2s")
    for _ in range(MAX_T2S_PASSES):
        converted = converter.convert(text)
        if converted == text:
            break
        text = converted
    return text


def has_traditional(text: str) -> bool:
    """True when `text` holds a character that t2s would change (a Traditional-only form)."""
    return to_simplified(text) != text


def _is_dropped(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "PZC" or char.isspace()


def normalize_for_cer(text: str) -> str:
    """The scoring form: NFKC, Simplified, lower case, no punctuation, no whitespace."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    return "".join(char for char in text if not _is_dropped(char))


def _read_digits(digits: str) -> str:
    return "".join(DIGIT_NAMES[d] for d in digits)


def _spell_number(match: re.Match[str], before: str, following: str) -> str:
    number, percent = match.group(1), match.group(2)
    if number == "2" and not percent and not before.endswith("第") and _COUNTED.match(following):
        return "两"
    integer, _, fraction = number.partition(".")
    digit_by_digit = (
        (len(integer) > 1 and integer.startswith("0"))
        or len(integer) >= DIGIT_BY_DIGIT_MIN_LENGTH
        or (len(integer) == 4 and not fraction and not percent and following.startswith("年"))
    )
    if digit_by_digit:
        spoken = _read_digits(integer) + ("点" + _read_digits(fraction) if fraction else "")
    else:
        spoken = _LEADING_TWO.sub("两", cn2an.an2cn(number))
    return f"百分之{spoken}" if percent else spoken


def _is_phone_number(written: str) -> bool:
    """Whether digit groups written apart are one phone number: a mobile number (11 digits from a 1, its first
    group at most 4 long), a number after an area code (a first group from a 0), or three or more groups joined by
    hyphens (400-820-6666); not a range (5000-8000) or a list (100 200 300)."""
    groups = _GROUP_SEPARATOR.split(written)
    digits = "".join(groups)
    if len(digits) < DIGIT_BY_DIGIT_MIN_LENGTH:
        return False
    mobile = len(digits) == MOBILE_DIGITS and digits.startswith("1") and len(groups[0]) <= 4
    hyphenated = len(groups) >= 3 and not any(space in written for space in " \u3000")
    return mobile or groups[0].startswith("0") or hyphenated


def _join_digit_groups(match: re.Match[str]) -> str:
    """A phone number written in groups as one number (read digit by digit); other groups as they were."""
    written = match.group()
    return _GROUP_SEPARATOR.sub("", written) if _is_phone_number(written) else written


def spell_numbers(text: str, keep_punctuation: bool = False) -> str:
    """Write Arabic numerals in Chinese characters the way they are read aloud (see module docstring). The text is
    NFKC-normalised first, full-width punctuation included; with `keep_punctuation` only full-width digits,
    decimal points and percent signs become ASCII, and the rest stays as written, except the spaces and hyphens
    inside a phone number written in groups (read as one number)."""
    text = text.translate(_HALF_WIDTH_NUMBERS) if keep_punctuation else unicodedata.normalize("NFKC", text)
    text = _DIGIT_GROUPS.sub(_join_digit_groups, _THOUSANDS_SEPARATOR.sub("", text))
    pieces, last = [], 0
    for match in _NUMBER.finditer(text):
        pieces.append(text[last : match.start()])
        pieces.append(_spell_number(match, text[: match.start()], text[match.end() :]))
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


def normalize_numerals(text: str) -> str:
    """The scoring form of `cer_numerals`: numbers spelled out, digit variants unified, then `normalize_for_cer`."""
    return normalize_for_cer(spell_numbers(text)).translate(DIGIT_VARIANTS)
