"""Rebuild the embedded corpus of `dwz demo` from a zh-tts synthesis of the AISHELL-1 dev texts.

    bash ../shared/tools/zh-tts/setup.sh /tmp/tts-venv
    /tmp/tts-venv/bin/python ../shared/tools/zh-tts/synthesize.py \
        ../shared/tools/zh-tts/sentences-aishell-dev.tsv runs/tts        # (the recipe's `tts` stage makes the same)
    .venv/bin/python scripts/build_demo_corpus.py runs/tts src/distil_whisper_zh/demo_corpus

Takes the first SENTENCES synthesised sentences of 8 to 16 characters, in the synthesis manifest's order;
numbers 161-200 of them are the dev set (the same 40 since the first, 200-sentence corpus), the rest train.
Audio is 16 kHz mono Opus at about 16 kbit/s (libsndfile's compression level 0.97), replacing the folder's audio/.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import soundfile

from distil_whisper_zh.jsonl import write_jsonl_atomic

DEV = range(160, 200)
COMPRESSION = 0.97  # ~16 kbit/s: Whisper's CER on the dev set is unchanged from 30 kbit/s (see RESULTS.md)


def chosen_rows(tts: Path, sentences: int) -> list[dict]:
    rows = [json.loads(line) for line in (tts / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    short = [row for row in rows if 8 <= len(row["text"]) <= 16]
    if len(short) < sentences:
        raise SystemExit(f"{tts / 'manifest.jsonl'}: {len(short)} sentences of 8-16 characters, {sentences} asked")
    return short[:sentences]


def encode(row: dict, tts: Path, audio: Path) -> dict:
    name = Path(row["audio"]).stem
    samples, rate = soundfile.read(tts / row["audio"], dtype="float32")
    if rate != 16000:
        raise SystemExit(f"{tts / row['audio']}: {rate} Hz, expected 16000")
    soundfile.write(audio / f"{name}.opus", samples, rate, format="OGG", subtype="OPUS", compression_level=COMPRESSION)
    return {"id": name, "audio": f"audio/{name}.opus", "text": row["text"], "duration": round(len(samples) / rate, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tts", type=Path, help="zh-tts output folder (manifest.jsonl + WAV files)")
    parser.add_argument("corpus", type=Path, help="the demo corpus folder (audio/, train.jsonl, dev.jsonl)")
    parser.add_argument("--sentences", type=int, default=400)
    args = parser.parse_args()
    audio, partial = args.corpus / "audio", args.corpus / "audio.partial"
    chosen = chosen_rows(args.tts, args.sentences)  # refuses a too small TTS folder before anything is touched
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rows = [encode(row, args.tts, partial) for row in chosen]  # a bad WAV stops here, the shipped audio intact
    shutil.rmtree(audio, ignore_errors=True)
    partial.rename(audio)
    write_jsonl_atomic(args.corpus / "dev.jsonl", (row for i, row in enumerate(rows) if i in DEV))
    write_jsonl_atomic(args.corpus / "train.jsonl", (row for i, row in enumerate(rows) if i not in DEV))
    size = sum(path.stat().st_size for path in audio.iterdir())
    minutes = sum(row["duration"] for row in rows) / 60
    print(f"{len(rows)} sentences ({minutes:.1f} min of audio) in {size / 2**20:.2f} MiB under {audio}")


if __name__ == "__main__":
    main()
