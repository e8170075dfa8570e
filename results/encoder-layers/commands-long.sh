#!/bin/bash
# After commands.sh: the same models on longer single-window inputs, the 155 S0150 test clips joined into 32
# recordings of 20-27 s (scripts/join_clips.py): does a fast encoder trained on short clips read long inputs?
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
dwz=.venv/bin/dwz
D=runs/encoder-layers
.venv/bin/python scripts/join_clips.py manifest:$D/s0150/dev.jsonl --seconds 20 --out $D/s0150-joined20
$dwz evaluate --model pypi:whisper-base --model $D/student --model $D/student-fast --model $D/student-fast-top4 \
  --model $D/student-fast-top2 --data manifest:$D/s0150-joined20/manifest.jsonl --report $D/report-joined20
