#!/bin/bash
# The cpu-base recipe as of 2026-12-06, session 14: the same as results/cpu-base-zh-10ep (6+4 student, 10 epochs of
# distillation, the fast stage, the short-loop fallback) except one thing: in the KL, where a label spells a number
# (三十), the teacher's digit tokens (30) count as the label's token (numeral_tokens.py, the default of `dwz distill`
# since this session; `--keep-teacher-numerals` is the run in results/cpu-base-zh-10ep). Same clips, same seed,
# same batches. The stages before distill and the teacher's caches are those of results/cpu-base-zh-6x4 (same
# options, so `dwz run` skipped them); the previous students were moved aside first so nothing is mixed.
# Nothing of S0150 is trained on: its test split (155 clips, runs/cpu-base-zh/s0150/dev.jsonl) is what the numbers
# are on; the held-out voices are kumo70_gongitsune30 and nezumi60_tebukuro40 (150 clips).
# What the commands printed: commands-output.txt.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
K=results/cpu-base-zh-numerals
mv $R/student $R/student-10ep-digits && mv $R/student-fast $R/student-fast-10ep-digits
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
