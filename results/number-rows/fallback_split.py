"""Inserted characters (numerals normalised) of one model's hypotheses, split by what the temperature fallback did:
greedy text kept, re-decoded and no longer a loop, re-decoded and still a loop at every temperature.

    python results/number-rows/fallback_split.py results/number-rows/base-chunk-own/hypotheses/*.jsonl
"""

import json
import sys
from pathlib import Path

from distil_whisper_zh.metrics import utterance_counts
from distil_whisper_zh.text import normalize_numerals

groups: dict[str, list[int]] = {}
for line in Path(sys.argv[1]).read_text(encoding="utf-8").splitlines():
    row = json.loads(line)
    group = "greedy kept" if not row["retries"] else ("re-decoded, still a loop" if row["looped"] else "re-decoded")
    counts = utterance_counts(row["reference"], row["hypothesis"], normalize_numerals)
    clips, insertions, errors = groups.setdefault(group, [0, 0, 0])
    groups[group] = [clips + 1, insertions + counts.insertions, errors + counts.errors]
print("| fallback | clips | inserted characters | errors |\n|---|---|---|---|")
for group, (clips, insertions, errors) in groups.items():
    print(f"| {group} | {clips} | {insertions} | {errors} |")
