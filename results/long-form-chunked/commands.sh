#!/bin/bash
# #19: long recordings of the S0150 test clips, chunked vs sequential, and the same clips one by one
set -e
cd /work/main
export DWZ_NUM_THREADS=2
A=runs/cpu-base-zh/ablation
D=manifest:runs/cpu-base-zh/s0150/dev.jsonl
M="--model pypi:whisper-base --model $A/base --model $A/layers-4"
.venv/bin/dwz evaluate $M --data $D --report runs/lf/clips
.venv/bin/dwz evaluate $M --data $D --concat 90 --long-form chunked --report runs/lf/chunked
.venv/bin/dwz evaluate --model pypi:whisper-base --data $D --concat 90 --report runs/lf/sequential-teacher
.venv/bin/dwz evaluate --model pypi:whisper-base --model $A/base --data $D --concat 90 --long-form chunked --chunk-seconds 6 --report runs/lf/chunked-6
