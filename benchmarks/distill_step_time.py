"""Distillation step time with and without the encoder cache, measured in one run on the same clips.

    python benchmarks/distill_step_time.py --teacher pypi:whisper-base \
        --data manifest:../shared/data/aishell-s0150/manifest.jsonl

Creates a 6+2 student from the teacher in a temporary folder, then times `--steps` optimizer steps of batch
`--batch-size` three times: encoders run every step; encoder states read from the cache (built first, its time
reported as setup); encoder states plus the teacher's top-k logits read from caches (`--teacher-top-k`); and that
again under bf16 autocast (where the CPU computes bf16 natively: AVX512-BF16 or AMX).
Results go to benchmarks/results/distill_step_time.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from distil_whisper_zh.data import load_dataset_spec
from distil_whisper_zh.distill import Distiller, DistillOptions
from distil_whisper_zh.jsonl import write_jsonl_atomic
from distil_whisper_zh.runtime import native_bf16
from distil_whisper_zh.student import CreateStudentOptions, create_student
from distil_whisper_zh.training.options import TrainingOptions

RESULTS = Path(__file__).parent / "results" / "distill_step_time.json"


def time_steps(distiller: Distiller, steps: int) -> float:
    """Seconds per optimizer step (forward of both models, backward, AdamW), after one warm-up step."""
    optimizer, scheduler = distiller.make_optimizer()
    model, optimizer = distiller.accelerator.prepare(distiller.model.model, optimizer)  # autocast, if any
    distiller.optimizer_step(model, optimizer, scheduler, 0)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        distiller.optimizer_step(model, optimizer, scheduler, step)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="pypi:whisper-base")
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top-k", type=int, default=32, help="teacher logits kept per position in the third run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        clips = load_dataset_spec(args.data).utterances[: args.batch_size * (args.steps + 1)]
        manifest = tmp_path / "clips.jsonl"
        write_jsonl_atomic(
            manifest, ({"id": u.id, "audio": str(Path(u.audio).resolve()), "text": u.text} for u in clips)
        )
        student = tmp_path / "student"
        create_student(CreateStudentOptions(teacher=args.teacher, out=str(student), decoder_layers=2))
        results = {}
        runs = [("live", False, 0, "no"), ("cached", True, 0, "no"), ("cached_top_k", True, args.top_k, "no")]
        if native_bf16(torch.device("cpu")):
            runs.append(("cached_top_k_bf16", True, args.top_k, "bf16"))
        for name, cached, top_k, precision in runs:
            options = DistillOptions(
                student=str(student),
                teacher=args.teacher,
                data=[str(manifest)],
                out=str(tmp_path / f"run-{name}"),
                teacher_top_k=top_k,
                training=TrainingOptions(
                    batch_size=args.batch_size,
                    cache_encoder_states=cached,
                    threads=args.threads,
                    device="cpu",
                    max_steps=args.steps + 1,
                    mixed_precision=precision,
                ),
            )
            built = time.perf_counter()
            distiller = Distiller(options)
            setup = time.perf_counter() - built
            results[name] = {
                "seconds_per_step": time_steps(distiller, args.steps),
                "setup_seconds": setup,
            }
    report = {
        "what": "distillation optimizer step, whisper-base teacher (6+6) -> 6+2 student, frozen shared encoder",
        "batch_size": args.batch_size,
        "steps_timed": args.steps,
        "threads": args.threads,
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        **results,
        "teacher_top_k": args.top_k,
        "speedup_from_cache": results["live"]["seconds_per_step"] / results["cached"]["seconds_per_step"],
        "speedup_from_cache_and_top_k": results["live"]["seconds_per_step"]
        / results["cached_top_k"]["seconds_per_step"],
    }
    if "cached_top_k_bf16" in results:
        report["speedup_from_bf16"] = (
            results["cached_top_k"]["seconds_per_step"] / results["cached_top_k_bf16"]["seconds_per_step"]
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
