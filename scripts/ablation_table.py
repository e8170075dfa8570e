"""The ablation table of recipes/cpu-base-zh-ablation.yaml, from the report.json of each run.

    python scripts/ablation_table.py results/ablation       # NAME/report.json, teacher/ among them
    python scripts/ablation_table.py runs/cpu-base-zh/ablation     # NAME/report/report.json, as the recipe writes

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
    "numeral-folds",
]


def report_of(folder: Path, name: str) -> Path | None:
    found = [p for p in (folder / name / "report.json", folder / name / "report" / "report.json") if p.is_file()]
    return found[0] if found else None


def results_by_dataset(report: Path) -> dict[str, dict]:
    return {r["dataset"]: r for r in json.loads(report.read_text(encoding="utf-8"))["results"]}


def cell(result: dict, teacher: dict, key: str) -> str:
    return f"{100 * result[key]:.2f}% ({result[key] / teacher[key]:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of NAME/report.json, teacher/report.json among them")
    args = parser.parse_args()
    teacher = results_by_dataset(report_of(args.folder, "teacher"))
    names = [p.name for p in args.folder.iterdir() if p.name != "teacher" and report_of(args.folder, p.name)]
    runs = sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    print("| run | S0150 CER | S0150 CER (numerals) | held-out voices CER | loops | retries |")
    print("|---|---|---|---|---|---|")
    s0150, heldout = teacher[S0150], teacher[HELDOUT]
    print(
        f"| teacher | {100 * s0150['cer']:.2f}% | {100 * s0150['cer_numerals']:.2f}% | {100 * heldout['cer']:.2f}% | "
        f"{s0150['looped'] + heldout['looped']} | {s0150['retries'] + heldout['retries']} |"
    )
    for name in runs:
        results = results_by_dataset(report_of(args.folder, name))
        s0150, heldout = results[S0150], results[HELDOUT]
        print(
            f"| {name} | {cell(s0150, teacher[S0150], 'cer')} | {cell(s0150, teacher[S0150], 'cer_numerals')} | "
            f"{cell(heldout, teacher[HELDOUT], 'cer')} | {s0150['looped'] + heldout['looped']} | "
            f"{s0150['retries'] + heldout['retries']} |"
        )


if __name__ == "__main__":
    main()
