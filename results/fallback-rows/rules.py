"""Errors of each choice of pass on the clips whose chunks loop at every temperature (passes.jsonl).

    python results/fallback-rows/rules.py results/fallback-rows/passes.jsonl

For each rule, every such chunk's kept pass in the clip's text is replaced by the pass the rule picks, and the clip
is scored as `dwz evaluate` scores it (`cer_numerals` edits).
"""

import json
import sys

from distil_whisper_zh.decoding import TEXT_COMPRESSION_RATIO_THRESHOLD, repeated_characters
from distil_whisper_zh.metrics import utterance_counts
from distil_whisper_zh.text import normalize_numerals, to_simplified


def under_threshold(passes: list[dict]) -> list[dict]:
    return [p for p in passes if p["ratio"] <= TEXT_COMPRESSION_RATIO_THRESHOLD] or passes


RULES = {
    "fewest repeated characters, the earliest of a tie (kept_try)": lambda ps: min(
        ps, key=lambda p: repeated_characters(p["text"])
    ),
    "the last pass (OpenAI's Whisper)": lambda ps: ps[-1],
    "the most likely under the compression threshold (faster-whisper)": lambda ps: max(
        under_threshold(ps), key=lambda p: p["logprob"]
    ),
    "the greedy pass": lambda ps: ps[0],
}


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        clips = [json.loads(line) for line in handle]
    models = sorted({clip["model"] for clip in clips})
    print(f"{len(clips)} clips, {sum(len(c['chunks']) for c in clips)} chunks looping at every temperature\n")
    print("| pass kept | errors | " + " | ".join(models) + " |")
    print("|---|---|" + "---|" * len(models))
    for name, rule in RULES.items():
        errors = dict.fromkeys(models, 0)
        for clip in clips:
            raw = clip["raw"]
            for chunk in clip["chunks"]:
                raw = raw.replace(chunk["kept"], rule(chunk["passes"])["text"], 1)
            errors[clip["model"]] += utterance_counts(clip["reference"], to_simplified(raw), normalize_numerals).errors
        print(f"| {name} | {sum(errors.values())} | " + " | ".join(str(errors[m]) for m in models) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
