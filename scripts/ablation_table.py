"""The ablation table of recipes/cpu-base-zh-ablation.yaml, from the report.json of each run.

    python scripts/ablation_table.py results/ablation            # a folder of NAME/report.json (+ teacher/)

Prints one markdown row per run: CER and CER (numerals) on the S0150 clips and on the held-out Kokoro voices,
each with its ratio to the teacher's on the same clips, and the student's loops and fallback retries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

S0150, HELDOUT = "s0150-nontest", "kokoro-heldout"  # dataset names (a manifest.jsonl is named by its folder)
ORDER = [
    "base",
    "aug",
    "aug-speed",
    "aug-noise",
    "aug-room",
    "aug-channel",
    "one-voice",
    "known-text",
    "layers-2",
    "layers-4",
    "epochs-6",
]


def results_by_dataset(report: Path) -> dict[str, dict]:
    return {r["dataset"]: r for r in json.loads(report.read_text(encoding="utf-8"))["results"]}


def cell(result: dict, teacher: dict, key: str) -> str:
    return f"{100 * result[key]:.2f}% ({result[key] / teacher[key]:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of NAME/report.json, teacher/report.json among them")
    args = parser.parse_args()
    teacher = results_by_dataset(args.folder / "teacher" / "report.json")
    runs = sorted((p.parent.name for p in args.folder.glob("*/report.json")), key=lambda n: (n not in ORDER, n))
    print("| run | S0150 CER | S0150 CER (numerals) | held-out voices CER | loops | retries |")
    print("|---|---|---|---|---|---|")
    for name in runs:
        results = results_by_dataset(args.folder / name / "report.json")
        s0150, heldout = results[S0150], results[HELDOUT]
        print(
            f"| {name} | {cell(s0150, teacher[S0150], 'cer')} | {cell(s0150, teacher[S0150], 'cer_numerals')} | "
            f"{cell(heldout, teacher[HELDOUT], 'cer')} | {s0150['looped'] + heldout['looped']} | "
            f"{s0150['retries'] + heldout['retries']} |"
        )


if __name__ == "__main__":
    main()
