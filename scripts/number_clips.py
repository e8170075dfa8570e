"""Where each model's errors are: on clips whose reference says a number, or on the rest, scored with today's rules.

    python scripts/number_clips.py results/cpu-base-zh-10ep/report            # every model on every dataset
    python scripts/number_clips.py results/cpu-base-zh-10ep/report --dataset dev

Reads a `dwz evaluate` report folder (report.json and the hypotheses JSON lines, beside it or under hypotheses/)
and prints, per dataset, one markdown row per model: its edits after writing numbers one way on both sides (the
`cer_numerals` normalisation of this version, which a report made by an earlier one may not have used), in all
and split into clips whose reference reads a phone or ID number digit by digit (7 or more digits in a row,
`DIGITS`), clips that spell another number and the others, each with its multiple of the first model's errors.
"Spells a number" is approximate: two or more numeral characters in a row (三十, 一三三零) or 百分之 (`NUMBER`), so
三个 counts as another clip and 万一 as a number.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from distil_whisper_zh.metrics import EditCounts, utterance_counts
from distil_whisper_zh.text import DIGIT_BY_DIGIT_MIN_LENGTH, normalize_numerals

NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿幺]{2,}|百分之")
DIGITS = re.compile(rf"[零〇一二三四五六七八九幺]{{{DIGIT_BY_DIGIT_MIN_LENGTH},}}")
GROUPS = ("clips with a phone or ID number", "clips with another number", "other clips")


def hypotheses_of(folder: Path, result: dict) -> list[dict]:
    name = result["hypotheses_file"]
    path = folder / name if (folder / name).is_file() else folder / "hypotheses" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def group_of(reference: str) -> int:
    """The index in `GROUPS` of a clip with this reference."""
    if DIGITS.search(reference):
        return 0
    return 1 if NUMBER.search(reference) else 2


def split_counts(rows: list[dict]) -> list[EditCounts]:
    """Edits (numerals normalised) on the clips of each of `GROUPS`."""
    groups = [EditCounts() for _ in GROUPS]
    for row in rows:
        group = group_of(row["reference"])
        groups[group] = groups[group] + utterance_counts(row["reference"], row["hypothesis"], normalize_numerals)
    return groups


def edits(counts: EditCounts, first: EditCounts) -> str:
    ratio = f"{counts.errors / first.errors:.2f}x" if first.errors else "-"
    shown = f"{counts.substitutions} / {counts.deletions} / {counts.insertions}"
    return f"{counts.errors} ({ratio}; S/D/I {shown})"


def print_dataset(folder: Path, dataset: str, results: list[dict]) -> None:
    hypotheses = [hypotheses_of(folder, result) for result in results]
    counts = [split_counts(rows) for rows in hypotheses]
    clips = [group_of(row["reference"]) for row in hypotheses[0]]
    firsts = counts[0]
    all_chars = sum(group.reference_chars for group in firsts)
    print(
        f"\n{dataset}: {clips.count(0) + clips.count(1)} of {len(clips)} clips spell a number, {clips.count(0)} of "
        f"them digit by digit ({firsts[0].reference_chars + firsts[1].reference_chars} of {all_chars} reference "
        "characters)\n"
    )
    print(f"| model | cer_numerals | errors, all clips | {' | '.join(f'errors, {group}' for group in GROUPS)} |")
    print("|---|---|" + "---|" * (1 + len(GROUPS)))
    first_total = sum(firsts, EditCounts())
    for result, groups in zip(results, counts, strict=True):
        total = sum(groups, EditCounts())
        split = " | ".join(edits(group, first) for group, first in zip(groups, firsts, strict=True))
        print(f"| {result['model']} | {100 * total.cer:.2f}% | {edits(total, first_total)} | {split} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a dwz evaluate report folder")
    parser.add_argument("--dataset", help="only this dataset (default: every one)")
    args = parser.parse_args()
    results = json.loads((args.report / "report.json").read_text(encoding="utf-8"))["results"]
    datasets = list(dict.fromkeys(result["dataset"] for result in results))
    if args.dataset and args.dataset not in datasets:
        sys.exit(f"{args.report / 'report.json'} has no dataset {args.dataset!r}; it has {', '.join(datasets)}")
    for dataset in [args.dataset] if args.dataset else datasets:
        print_dataset(args.report, dataset, [result for result in results if result["dataset"] == dataset])


if __name__ == "__main__":
    main()
