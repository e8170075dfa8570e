#!/bin/bash
# After commands-chunked.sh: #19's measure on the same models: the 155 S0150 test clips joined into ~90-s
# recordings (dwz evaluate --concat 90), each model reading them its own way (the teacher window by window, the
# students in their 3.5-s chunks), against the same clips one by one (report-s0150-chunked).
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
dwz=.venv/bin/dwz
D=runs/encoder-layers
$dwz evaluate --model pypi:whisper-base --model $D/student --model $D/student-fast --model $D/student-fast-top2 \
  --data manifest:$D/s0150/dev.jsonl --concat 90 --report $D/report-concat90
