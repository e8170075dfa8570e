"""Where each model's errors are: on clips whose reference says a number, or on the rest, scored with today's rules.

    python scripts/number_clips.py results/cpu-base-zh-10ep/report            # every model on every dataset
    python scripts/number_clips.py results/cpu-base-zh-10ep/report --dataset dev

Reads a `dwz evaluate` report folder (report.json and the hypotheses JSON lines, beside it or under hypotheses/)
and prints, per dataset, one markdown row per model: its edits after writing numbers one way on both sides (the
`cer_numerals` normalisation of this version, which a report made by an earlier one may not have used), in all
and split into clips whose reference spells a number and the others, each with its multiple of the first model's
errors. "Spells a number" is approximate: two or more numeral characters in a row (三十, 一三三零) or 百分之
(`NUMBER`), so 三个 counts as another clip and 万一 as a number.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from distil_whisper_zh.metrics import EditCounts, utterance_counts
from distil_whisper_zh.text import normalize_numerals

NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿幺]{2,}|百分之")


def hypotheses_of(folder: Path, result: dict) -> list[dict]:
    name = result["hypotheses_file"]
    path = folder / name if (folder / name).is_file() else folder / "hypotheses" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def split_counts(rows: list[dict]) -> tuple[EditCounts, EditCounts]:
    """Edits (numerals normalised) on the clips with a number in the reference, and on the others."""
    numbers, others = EditCounts(), EditCounts()
    for row in rows:
        counts = utterance_counts(row["reference"], row["hypothesis"], normalize_numerals)
        if NUMBER.search(row["reference"]):
            numbers = numbers + counts
        else:
            others = others + counts
    return numbers, others


def edits(counts: EditCounts, first: EditCounts) -> str:
    ratio = f"{counts.errors / first.errors:.2f}x" if first.errors else "-"
    shown = f"{counts.substitutions} / {counts.deletions} / {counts.insertions}"
    return f"{counts.errors} ({ratio}; S/D/I {shown})"


def print_dataset(folder: Path, dataset: str, results: list[dict]) -> None:
    hypotheses = [hypotheses_of(folder, result) for result in results]
    counts = [split_counts(rows) for rows in hypotheses]
    first_rows = hypotheses[0]
    with_number = sum(bool(NUMBER.search(row["reference"])) for row in first_rows)
    numbers, others = counts[0]
    print(
        f"\n{dataset}: {with_number} of {len(first_rows)} clips spell a number ({numbers.reference_chars} of "
        f"{numbers.reference_chars + others.reference_chars} reference characters)\n"
    )
    print("| model | cer_numerals | errors, all clips | errors, clips with a number | errors, other clips |")
    print("|---|---|---|---|---|")
    for result, (number_clips, other_clips) in zip(results, counts, strict=True):
        total = number_clips + other_clips
        print(
            f"| {result['model']} | {100 * total.cer:.2f}% | {edits(total, numbers + others)} | "
            f"{edits(number_clips, numbers)} | {edits(other_clips, others)} |"
        )


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
