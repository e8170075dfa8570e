"""Every fallback pass of the clips where a one-voice student loops at every temperature, to compare which pass to keep.

    python results/fallback-rows/passes.py > results/fallback-rows/passes.jsonl   # after commands.sh step 1
    python results/fallback-rows/rules.py results/fallback-rows/passes.jsonl > results/fallback-rows/rules.txt

Each clip (those with looped and 5 retries in report-repeats) is decoded alone as `dwz evaluate` decodes it (the
student's chunks, seed 0), its fallback wrapped to record, for each chunk that loops at every temperature, the pass
kept and every pass: text, compression ratio, and mean log-probability under the model (the sum over its tokens,
end-of-text included, over the number before it, as CTranslate2 scores; one teacher-forced pass).
"""

import json
import sys

import torch
from transformers.modeling_outputs import BaseModelOutput

from distil_whisper_zh import decoding
from distil_whisper_zh.audio import load_audio
from distil_whisper_zh.backends import make_decoder
from distil_whisper_zh.chunking import base_decoder
from distil_whisper_zh.decoding import PROMPT_TOKENS, DecodingOptions, text_compression_ratio

ROWS = "runs/cpu-base-zh/one-voice-rows"
MODELS = ("base", "folds", "numbers")


def mean_logprob(model, states: torch.Tensor, ids: list[int], eos: int) -> float:
    generated = ids[PROMPT_TOKENS:]
    scored = generated[: generated.index(eos) + 1] if eos in generated else generated
    decoder_ids = torch.tensor([ids[: PROMPT_TOKENS + len(scored) - 1]])
    with torch.inference_mode():
        logits = model(encoder_outputs=BaseModelOutput(last_hidden_state=states), decoder_input_ids=decoder_ids).logits
    logits = logits[0, PROMPT_TOKENS - 1 :].float()
    logits[:, list(model.generation_config.suppress_tokens or [])] = -torch.inf  # what generation never picks
    logits[0, list(model.generation_config.begin_suppress_tokens or [])] = -torch.inf
    steps = torch.log_softmax(logits, -1)
    total = float(steps.gather(1, torch.tensor(scored)[:, None]).sum())
    return total / max(1, len(scored) - 1 if scored[-1:] == [eos] else len(scored))


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


class Recorder:
    """Wraps a student's decoder: keeps each batch's encoder states and records the passes of the chunks that loop
    at every temperature (`chunks`)."""

    def __init__(self, decoder, fallback):
        self.inner = base_decoder(decoder)  # the student's chunked reading wraps its WhisperDecoder
        self.eos = self.inner.loaded.processor.tokenizer.eos_token_id
        self.fallback, self.model_inputs = fallback, self.inner._model_inputs
        self.states, self.chunks = None, []
        self.inner._model_inputs = self.keep_states

    def keep_states(self, prepared):
        inputs = self.model_inputs(prepared)
        self.states = inputs["encoder_states"]
        return inputs

    def __call__(self, generate, count, text_of, options):
        passes = [[] for _ in range(count)]

        def recorded(rows, temperature):
            attempts = generate(rows, temperature)
            for row, attempt in zip(rows, attempts, strict=True):
                passes[row].append(attempt)
            return attempts

        kept, retries = self.fallback(recorded, count, text_of, options)
        for row in range(count):
            if retries[row] == 5 and all(decoding.is_loop(text_of(a.tokens)) for a in passes[row]):
                self.chunks.append(
                    {"kept": text_of(kept[row].tokens), "passes": self.described(passes[row], row, text_of)}
                )
        return kept, retries

    def described(self, attempts, row: int, text_of) -> list[dict]:
        model, states = self.inner.loaded.model, self.states[row : row + 1]
        return [
            {
                "text": text_of(a.tokens),
                "ratio": text_compression_ratio(text_of(a.tokens)),
                "logprob": mean_logprob(model, states, a.tokens, self.eos),
            }
            for a in attempts
        ]


def main() -> None:
    torch.set_num_threads(2)
    manifest = {row["id"]: row for row in read_jsonl(f"{ROWS}/s0150-nontest.jsonl")}
    fallback = decoding.decode_with_fallback
    for name in MODELS:
        report = read_jsonl(f"{ROWS}/report-repeats/runs-cpu-base-zh-one-voice-rows-{name}__s0150-nontest.jsonl")
        decoder = make_decoder(f"{ROWS}/{name}", DecodingOptions())
        recorder = Recorder(decoder, fallback)
        decoding.decode_with_fallback = recorder
        for clip in [r["id"] for r in report if r["looped"] and r["retries"] == 5]:
            recorder.chunks = []
            torch.manual_seed(0)
            (transcript,) = decoder.decode([load_audio(manifest[clip]["audio"])])
            row = {"model": name, "id": clip, "reference": manifest[clip]["text"], "raw": transcript.raw_text}
            print(json.dumps({**row, "chunks": recorder.chunks}, ensure_ascii=False), flush=True)
            print(name, clip, len(recorder.chunks), file=sys.stderr)


if __name__ == "__main__":
    main()
