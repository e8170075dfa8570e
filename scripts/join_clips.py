"""Consecutive clips of a dataset joined into single-window recordings (longer utterances than the clips, at most
30 s), written as 16-kHz WAV files with a manifest, to measure a model on inputs of 10-30 s:

    python scripts/join_clips.py manifest:runs/x/s0150/dev.jsonl --seconds 20 --out runs/x/s0150-joined20

Each recording is the clips joined until it reaches `--seconds` (`dwz evaluate --concat` joins the same way, for
recordings over one window); one that would pass 30 s is left out.
"""

import argparse
import json
from pathlib import Path

import soundfile

from distil_whisper_zh.audio import SAMPLE_RATE
from distil_whisper_zh.data import load_dataset_spec
from distil_whisper_zh.long_form_mode import WINDOW_SECONDS
from distil_whisper_zh.longform import JOINS_FIELD, join_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="a dwz --data spec")
    parser.add_argument("--seconds", type=float, default=20.0, help="join clips until a recording is this long")
    parser.add_argument("--out", required=True, help="folder for the WAV files and manifest.jsonl")
    args = parser.parse_args()
    if not 0 < args.seconds < WINDOW_SECONDS:
        parser.error(f"--seconds {args.seconds:g}: give less than one {WINDOW_SECONDS:g}-s window")
    out = Path(args.out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for recording in join_clips(load_dataset_spec(args.data).utterances, args.seconds):
        if recording.duration > WINDOW_SECONDS:
            continue
        path = out / "audio" / f"{recording.id}.wav"
        soundfile.write(path, recording.load(), SAMPLE_RATE)
        row = {"id": recording.id, "audio": f"audio/{path.name}", "text": recording.text}
        # not under `joins`: dwz evaluate would check these one-window recordings as long-form ones
        rows.append({**row, "duration": round(recording.duration, 3), "clip_ends": recording.fields[JOINS_FIELD]})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{len(rows)} recordings of {args.seconds:g}-{WINDOW_SECONDS:g} s -> {out}/manifest.jsonl")


if __name__ == "__main__":
    main()
