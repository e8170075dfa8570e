"""The `dwz` command line: a thin layer that turns arguments into each command's options dataclass."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence

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
    group.add_argument("--task", default="transcribe", choices=("transcribe", "translate"))
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


def _runtime_kwargs(args: argparse.Namespace) -> dict:
    return dict(batch_size=args.batch_size, device=args.device, dtype=args.dtype, threads=args.threads)


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
            decoding=_decoding_options(args),
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
        decoding=_decoding_options(args),
        **_runtime_kwargs(args),
    )
    results = run_evaluation(options)
    for r in results:
        print(
            f"{r.model}\t{r.dataset}\tCER {100 * r.cer:.2f}%\tCER(numerals) {100 * r.cer_numerals:.2f}%\t"
            f"RTF {r.rtf:.3f}\tspeed-up {r.speedup:.2f}x"
        )
    print(f"report: {options.report}/report.md")


def cmd_count_params(args: argparse.Namespace) -> None:
    from .models.params import count_model_parameters

    counts = {model: count_model_parameters(model) for model in args.models}
    if args.json:
        print(json.dumps(counts, indent=2))
        return
    for model, count in counts.items():
        print(f"{model}\t{count}")


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dwz", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    sub = command(
        "import-teacher",
        cmd_import_teacher,
        "import a CTranslate2 Whisper (or pypi:whisper-base) as a transformers model dir",
    )
    sub.add_argument("source", help="pypi:whisper-base or a CTranslate2/faster-whisper directory")
    sub.add_argument("--out", required=True, help="transformers model directory to write")

    sub = command("transcribe", cmd_transcribe, "transcribe audio files or folders")
    sub.add_argument("--model", required=True, help="hub id, model dir, CTranslate2 dir or pypi:whisper-base")
    sub.add_argument("inputs", nargs="+", help="audio files or folders")
    sub.add_argument("--format", default="txt", choices=("txt", "json"))
    sub.add_argument("--output", "-o", default=None, help="write to this file instead of standard output")
    _add_runtime_arguments(sub, batch_size=8)
    _add_decoding_arguments(sub)

    sub = command("evaluate", cmd_evaluate, "CER, RTF, params and speed-up of models on datasets, in one run")
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
    _add_runtime_arguments(sub, batch_size=16)
    _add_decoding_arguments(sub)

    sub = command("count-params", cmd_count_params, "exact parameter count of each model")
    sub.add_argument("models", nargs="+")
    sub.add_argument("--json", action="store_true", help="print a JSON object {model: count}")
    return parser


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
