#!/bin/bash
# After commands.sh and commands-long.sh, with students cutting any input longer than their recorded chunk length
# (dwz_long_form: 3.5 s for these students, 90% of their training clips) at pauses, not only recordings over 30 s:
# the same models on the S0150 test clips one by one and joined into 20-27 s recordings.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
dwz=.venv/bin/dwz
D=runs/encoder-layers
M="--model pypi:whisper-base --model $D/student --model $D/student-fast --model $D/student-fast-top4 --model $D/student-fast-top2"
$dwz evaluate $M --data manifest:$D/s0150-joined20/manifest.jsonl --report $D/report-joined20-chunked
$dwz evaluate $M --data manifest:$D/s0150/dev.jsonl --report $D/report-s0150-chunked
