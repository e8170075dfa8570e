"""Where each model's errors are: on clips whose reference says a number, or on the rest.

    python scripts/number_clips.py results/cpu-base-zh-10ep/report            # every model on every dataset
    python scripts/number_clips.py results/cpu-base-zh-10ep/report --dataset dev

Reads a `dwz evaluate` report folder (report.json and the hypotheses JSON lines, beside it or under hypotheses/)
and prints, per dataset, one markdown row per model: its edits after writing numbers one way on both sides (the
`cer_numerals` normalisation), split into clips whose reference spells a number (two or more numeral characters in
a row, 三十 or 一三三零, or 百分之: `NUMBER`) and the others, each with its multiple of the first model's errors.
"""

from __future__ import annotations

import argparse
import json
import re
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a dwz evaluate report folder")
    parser.add_argument("--dataset", help="only this dataset (default: every one)")
    args = parser.parse_args()
    results = json.loads((args.report / "report.json").read_text(encoding="utf-8"))["results"]
    datasets = [args.dataset] if args.dataset else list(dict.fromkeys(r["dataset"] for r in results))
    for dataset in datasets:
        rows = [r for r in results if r["dataset"] == dataset]
        split = [split_counts(hypotheses_of(args.report, r)) for r in rows]
        clips = sum(bool(NUMBER.search(h["reference"])) for h in hypotheses_of(args.report, rows[0]))
        numbers, others = split[0]
        print(
            f"\n{dataset}: {clips} clips with a number ({numbers.reference_chars} characters), "
            f"{len(hypotheses_of(args.report, rows[0])) - clips} without ({others.reference_chars} characters)\n"
        )
        print("| model | errors, clips with a number | errors, other clips |")
        print("|---|---|---|")
        for result, (with_number, without) in zip(rows, split, strict=True):
            print(f"| {result['model']} | {edits(with_number, numbers)} | {edits(without, others)} |")


if __name__ == "__main__":
    main()
