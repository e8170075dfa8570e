"""`dwz evaluate`: several models x several datasets in one run -> CER, RTF, params and speed-up.

Every model decodes every dataset with the same `DecodingOptions`, batch size, device and threads, and speed-ups
are taken against the first `--model` on the same data in the same run, so the numbers compare fairly.
Each model runs on the backend its argument calls for (transformers or CTranslate2, see backends.py), so one report
can compare runtimes. With `--assistant S` the first model is run a second time with S drafting (speculative
decoding), and `same_text_as_baseline` shows that its text is the first model's own.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Annotated

import torch
import transformers
from tqdm.auto import tqdm
from tyro.conf import UseAppendAction

from .backends import BackendOptions, Runtime, choose_backend, ct2_model_dir, make_decoder
from .chunking import base_decoder, with_long_form
from .data import SpeechDataset, load_dataset_spec
from .decoding import (
    FALLBACK_RULE,
    WINDOW_SECONDS,
    Decoded,
    Decoder,
    DecodingOptions,
    WhisperDecoder,
    batches_by_length,
    transcribe_utterances,
)
from .errors import DwzError
from .fingerprint import audio_stamp, digest, model_files_fingerprint
from .jsonl import append_jsonl, read_jsonl, write_jsonl_atomic
from .long_form_mode import reading_identity
from .longform import JOINS_FIELD, SEGMENTS_FIELD, LongFormTiming, join_clips, timing_checks
from .metrics import EditCounts, utterance_counts
from .models import resolve_model
from .options import neutral
from .punctuation import MarkCounts, punctuation_counts
from .report import write_report_files
from .runtime import RuntimeOptions, configure_threads, resolve_device, resolve_dtype
from .screening import ScreenRules, screen, skip_record
from .skipped import SKIPPED_FILE, SkipLog
from .speculative import make_assistant
from .text import CER_NORMALIZATION, CER_NUMERALS_NORMALIZATION, has_traditional, normalize_numerals

SCORABLE = ScreenRules(need_reference=True, nonempty_reference=True)  # a sound clip with characters to score
SCORABLE_JOINED = replace(SCORABLE, decode=True)  # clips to join are decoded now: one bad clip spoils no recording


@dataclass
class EvaluateOptions:
    """Options of `dwz evaluate`."""

    model: Annotated[list[str], UseAppendAction]
    """a model to measure (repeatable); the first is the baseline of the speed-ups"""
    data: Annotated[list[str], UseAppendAction]
    """a dataset spec (repeatable): manifest:clips.jsonl, aishell:DIR:test, hf:google/fleurs:cmn_hans_cn:test, ..."""
    report: str = "report"
    """output folder: report.json, report.md, per-clip JSON lines, plots"""
    limit: int | None = None
    """only the first N clips of each dataset"""
    concat: float | None = None
    """join consecutive clips of each dataset into recordings of about this many seconds (long-form)"""
    strict: bool = neutral(False)
    """stop with an error at any bad clip (otherwise: skip it, list it in REPORT/skipped.jsonl)"""
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)

    def __post_init__(self) -> None:
        if self.backend.assistant and self.runtime.batch_size != 1:
            raise DwzError(
                "--assistant: assisted generation decodes one clip at a time; add --batch-size 1 so that the "
                "model with and without the assistant are timed the same way"
            )
        if not self.model:
            raise DwzError("give at least one --model")
        if not self.data:
            raise DwzError("give at least one --data")
        if self.limit is not None and self.limit < 1:
            raise DwzError(f"--limit must be at least 1, got {self.limit}")
        if self.concat is not None and self.concat <= WINDOW_SECONDS:
            raise DwzError(f"--concat {self.concat:g}: recordings must be longer than one {WINDOW_SECONDS:g}-s window")


@dataclass
class EvalResult:
    """One model on one dataset; the fields of product.md's report.json, plus a few diagnostics."""

    model: str
    dataset: str
    cer: float  # fraction: 0.0811 = 8.11%
    cer_numerals: float  # the same after writing numbers one way on both sides
    utterances: int
    audio_seconds: float
    wall_seconds: float
    rtf: float  # wall / audio
    params: int
    speedup: float  # baseline wall / this wall, same data, same run
    traditional_share: float  # hypotheses containing Traditional-only characters before normalisation
    punctuation_f1: float | None  # marks placed as in the reference (after alignment); None if refs have none
    looped: int  # hypotheses the fallback's loop test flags (Transcript.looped): kept when every pass looped
    hit_token_cap: int  # hypotheses cut by the token cap (no end-of-text)
    hypotheses_file: str
    data_spec: str = ""  # the --data spec the dataset came from (`dataset` is its short name)
    retries: int = 0  # temperature-fallback re-decodes of single-window clips (long-form windows not counted)
    feature_seconds: float = 0.0  # log-mel features, timed apart: wall_seconds is the model's time alone
    skipped: int = 0  # clips of the dataset left out as unusable (listed in skipped.jsonl)
    backend: str = "transformers"  # runtime: transformers or ctranslate2
    same_text_as_baseline: float | None = None  # share of raw hypotheses equal to the first model's; None for it
    long_form: LongFormTiming | None = None  # segment checks on recordings joined by --concat
    audio_context: dict | None = None  # how much of each 30-s window the encoder read (None: all of it)
    # the edits behind cer_numerals: substitutions, deletions, insertions (stutter shows here), reference chars
    edits_numerals: dict[str, int] | None = None


def slug(text: str) -> str:
    """A file-name-safe short form of a model argument or dataset name."""
    text = re.sub(r"^\W+", "", text.replace("pypi:", "pypi-"))
    return re.sub(r"[^\w.-]+", "-", text).strip("-.") or "model"


def run_evaluation(options: EvaluateOptions) -> list[EvalResult]:
    """Evaluate every model on every dataset; writes the report as results come in.

    Hypotheses are appended to `<model>__<dataset>.partial.jsonl` as they are decoded, so a killed run started
    again with the same command decodes only what is missing; the partial files are removed when the run is done.
    """
    threads = configure_threads(options.runtime.threads)
    report_dir = Path(options.report)
    log = SkipLog(options.strict)
    datasets = usable_datasets(options, log, report_dir)
    backends = [choose_backend(model, options.backend.backend) for model in options.model]
    for model, backend in zip(options.model, backends, strict=True):  # bad model arguments fail before heavy work
        if backend == "transformers":
            resolve_model(model)
        else:
            ct2_model_dir(model)
    if options.backend.compute_type != "default" and "ctranslate2" not in backends:
        raise DwzError("--compute-type is a CTranslate2 option and no --model runs on CTranslate2; use --dtype")
    if options.backend.assistant and choose_backend(options.model[0], options.backend.backend) != "transformers":
        raise DwzError(f"--assistant needs the first --model on the transformers backend, not {options.model[0]}")
    device = resolve_device(options.runtime.device)
    dtype = resolve_dtype(options.runtime.dtype, device)
    meta = _run_metadata(options, device, dtype, threads)
    runtime = Runtime(device, dtype, threads, options.runtime.batch_size)
    results: list[EvalResult] = []
    for index, model_argument in enumerate(options.model):
        for decoder in _decoders(model_argument, options, runtime, with_assistant=index == 0):
            for dataset in datasets:
                _warm_up(decoder, dataset, options.runtime.batch_size)
                earlier = [r for r in results if r.dataset == dataset.name]
                results.append(evaluate_one(decoder, dataset, options.runtime.batch_size, report_dir, earlier, log))
                log.write(report_dir / SKIPPED_FILE)
                write_report_files(report_dir, [asdict(r) for r in results], meta)
            del decoder
    for partial in report_dir.glob("*.partial.jsonl"):
        partial.unlink()
    return results


def usable_datasets(options: EvaluateOptions, log: SkipLog, report_dir: Path) -> list[SpeechDataset]:
    """Each dataset's clips that can be scored (file sound, long enough, a reference with characters); the others
    go to `log` and REPORT/skipped.jsonl. Latin-only references are scored (letters are characters too)."""
    datasets = []
    names: set[str] = set()
    for spec in options.data:
        dataset = _limited(_unique_name(load_dataset_spec(spec), names), options.limit)
        names.add(dataset.name)
        if options.concat:  # named first: its skipped clips are listed under the name its result has
            dataset = _renamed(dataset, f"{dataset.name}-concat{options.concat:g}", dataset.utterances)
        log.extend(dataset.skipped)
        usable = screen(dataset.utterances, SCORABLE_JOINED if options.concat else SCORABLE, log, dataset.name)
        if usable:
            utterances = join_clips(usable, options.concat) if options.concat else usable
            datasets.append(SpeechDataset(dataset.name, dataset.spec, utterances, dataset.skipped))
    report_dir.mkdir(parents=True, exist_ok=True)
    log.write(report_dir / SKIPPED_FILE)
    log.check_strict()
    if not datasets:
        raise log.nothing_usable("dwz evaluate")
    return datasets


def _decoders(model: str, options: EvaluateOptions, runtime: Runtime, with_assistant: bool) -> Iterator[Decoder]:
    """The model's decoder; for the first model with `--assistant`, then the same model with the assistant."""
    backend = replace(options.backend, assistant=None)
    if choose_backend(model, backend.backend) == "transformers":  # --compute-type is for the CTranslate2 models
        backend = replace(backend, compute_type="default")
    decoder = make_decoder(model, options.decoding, backend, runtime)
    yield decoder
    if with_assistant and options.backend.assistant:
        loaded = base_decoder(decoder).loaded
        assistant = make_assistant(loaded, options.backend.assistant)
        yield with_long_form(WhisperDecoder(loaded, options.decoding, assistant=assistant), runtime.batch_size)


def _unique_name(dataset: SpeechDataset, taken: set[str]) -> SpeechDataset:
    """Two --data with one name (a/dev.jsonl, b/dev.jsonl) must not share a row, a baseline or a file: the later
    one becomes dev-2 (its skipped clips are renamed with it)."""
    if dataset.name not in taken:
        return dataset
    number = 2
    while f"{dataset.name}-{number}" in taken:
        number += 1
    return _renamed(dataset, f"{dataset.name}-{number}", dataset.utterances)


def _renamed(dataset: SpeechDataset, name: str, utterances: list) -> SpeechDataset:
    skipped = [replace(item, dataset=name) for item in dataset.skipped]
    return SpeechDataset(name, dataset.spec, utterances, skipped)


def _limited(dataset: SpeechDataset, limit: int | None) -> SpeechDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return _renamed(dataset, f"{dataset.name}-first{limit}", dataset.utterances[:limit])


def _warm_up(decoder: Decoder, dataset: SpeechDataset, batch_size: int) -> None:
    """The dataset's first batch (its longest clips), decoded once untimed before the timed run: lazy
    initialisation, memory allocation and the shapes of this data are not billed to any model."""
    first = batches_by_length(dataset.utterances, batch_size)[0]
    if first[0].seconds() > WINDOW_SECONDS:  # long recordings: one warms every window shape up
        first = first[:1]
    for _ in transcribe_utterances(decoder, first, batch_size, on_skip=lambda utterance, error: None):
        pass


def evaluate_one(
    decoder: Decoder,
    dataset: SpeechDataset,
    batch_size: int,
    report_dir: Path,
    earlier: list[EvalResult],
    log: SkipLog | None = None,
) -> EvalResult:
    """Decode `dataset` (resuming from its partial file), score it, write `<model>__<dataset>.jsonl`, return the
    result; `earlier` are this dataset's results so far (the first is the speed-up baseline). Clips that fail to
    decode go to `log` (without a log they raise)."""
    name = decoder.name
    stem = f"{slug(name)}__{slug(dataset.name)}"
    if any(r.hypotheses_file == f"{stem}.jsonl" for r in earlier):  # the same model on another backend
        stem = f"{slug(name)}-{decoder.backend}__{slug(dataset.name)}"
    rows = decode_rows(decoder, dataset, batch_size, report_dir / f"{stem}.partial.jsonl", log)
    if not rows:
        if log is not None:
            log.write(report_dir / SKIPPED_FILE)
        raise DwzError(
            f"{name} on {dataset.name}: nothing usable, every clip was skipped (see {SKIPPED_FILE}): "
            + (log.examples(log.for_dataset(dataset.name)) if log else "")
        )
    baseline = earlier[0] if earlier else None
    result, scored = score_rows(rows, name, dataset.name, decoder.params, baseline)
    result.hypotheses_file = f"{stem}.jsonl"
    result.data_spec = dataset.spec
    result.skipped = len(log.for_dataset(dataset.name)) if log else 0
    result.backend = decoder.backend
    result.audio_context = base_decoder(decoder).context.to_json()
    if result.long_form is not None and decoder.options.long_form == "chunked":
        # evaluate decodes chunks without timestamps; each model reads its own chunk length (long_form_mode)
        result.long_form.segments_from = f"chunks of <= {decoder.options.chunk_seconds:g} s"
    result.same_text_as_baseline = _same_text_share(scored, report_dir, baseline)
    write_jsonl_atomic(report_dir / result.hypotheses_file, sorted(scored, key=lambda row: row["id"]))
    return result


def decode_rows(
    decoder: Decoder, dataset: SpeechDataset, batch_size: int, partial: Path, log: SkipLog | None
) -> list[dict]:
    """One row per decoded clip: those already in `partial` from an interrupted run of the same model, options
    and data, then the rest, appended to `partial` as they come (a torn last line is dropped on reading)."""
    run = run_key(decoder, dataset)
    wanted = {_clip_key(u) for u in dataset.utterances}
    done = {row["key"]: row for row in read_jsonl(partial) if row.get("run") == run and row.get("key") in wanted}
    write_jsonl_atomic(partial, done.values())  # rows of another model state, options or data are dropped
    todo = [u for u in dataset.utterances if _clip_key(u) not in done]
    on_skip = None if log is None else lambda utterance, error: _record_skip(log, dataset.name, utterance, error)
    description = f"{slug(decoder.name)} on {dataset.name}"
    with (
        partial.open("a", encoding="utf-8") as handle,
        tqdm(total=len(dataset), initial=len(done), desc=description, unit="utt") as bar,
    ):
        for item in transcribe_utterances(decoder, todo, batch_size, bar, on_skip):
            row = _decoded_row(item, run)  # the first clip of a batch carries the batch's time, the others 0
            append_jsonl(handle, row)
            done[row["key"]] = row
    return [done[_clip_key(u)] for u in dataset.utterances if _clip_key(u) in done]


def _clip_key(utterance) -> str:
    """Id and audio (file, size, modification time): manifests may repeat an id (files of the same name in
    different folders), and a clip made again under the same name is decoded again."""
    return f"{utterance.id}|{utterance.audio_path}|{digest(audio_stamp(utterance))[:12]}"


def _record_skip(log: SkipLog, dataset: str, utterance, error) -> None:
    """A clip that failed to decode, recorded once (every model meets it)."""
    if not any(
        item.dataset == dataset and (item.id, item.path) == (utterance.id, utterance.audio_path) for item in log.items
    ):
        log.add_strictly(skip_record(utterance, error.kind, error.reason, dataset))


def run_key(decoder: Decoder, dataset: SpeechDataset) -> str:
    """What a partial row depends on: model (and its weight files' sizes and times), runtime, options, data."""
    identity = {
        "model": decoder.name,
        "backend": decoder.backend,
        **_runtime_identity(decoder),
        "data": dataset.spec,
        "decoding": asdict(decoder.options),
        "fallback_rule": FALLBACK_RULE,
        **reading_identity(decoder.options.long_form),
    }
    source = Path(identity["source"])
    identity["weights"] = model_files_fingerprint(source)
    return hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _runtime_identity(decoder: Decoder) -> dict:
    decoder = base_decoder(decoder)
    if isinstance(decoder, WhisperDecoder):
        loaded = decoder.loaded
        return {"source": str(loaded.source), "dtype": str(loaded.dtype), "device": loaded.device.type}
    return {"source": str(decoder.model_dir), "compute_type": decoder.compute_type}


def _decoded_row(item: Decoded, run: str) -> dict:
    transcript = item.transcript
    return {
        "key": _clip_key(item.utterance),
        "id": item.utterance.id,
        "reference": item.utterance.text or "",
        "hypothesis": transcript.text,
        "raw_hypothesis": transcript.raw_text,
        "looped": transcript.looped,
        "hit_token_cap": transcript.hit_token_cap,
        "retries": transcript.retries,
        "audio_seconds": item.audio_seconds,
        "feature_seconds": item.feature_seconds,
        "decode_seconds": item.decode_seconds,
        "run": run,
        **_long_form_fields(item),
    }


def _long_form_fields(item: Decoded) -> dict:
    """A joined recording's join times and decoded segments, for the timing checks."""
    if JOINS_FIELD not in item.utterance.fields:
        return {}
    segments = [[segment.start, segment.end] for segment in item.transcript.segments]
    return {JOINS_FIELD: item.utterance.fields[JOINS_FIELD], SEGMENTS_FIELD: segments}


def score_rows(
    rows: list[dict], model: str, dataset: str, params: int, baseline: EvalResult | None
) -> tuple[EvalResult, list[dict]]:
    """Corpus scores of decoded rows, and the per-utterance rows of the hypotheses file."""
    totals, totals_numerals, marks, scored = EditCounts(), EditCounts(), MarkCounts(), []
    for row in rows:
        counts = utterance_counts(row["reference"], row["hypothesis"])
        counts_numerals = utterance_counts(row["reference"], row["hypothesis"], normalize_numerals)
        totals, totals_numerals = totals + counts, totals_numerals + counts_numerals
        marks = marks + punctuation_counts(row["reference"], row["raw_hypothesis"])
        scored.append(_hypothesis_row(row, counts, counts_numerals))
    audio_seconds = sum(row["audio_seconds"] for row in rows)
    wall = sum(row["decode_seconds"] for row in rows)
    result = EvalResult(
        model=model,
        dataset=dataset,
        cer=totals.cer,
        cer_numerals=totals_numerals.cer,
        utterances=len(rows),
        audio_seconds=round(audio_seconds, 3),
        wall_seconds=round(wall, 3),
        rtf=wall / audio_seconds if audio_seconds else float("nan"),
        params=params,
        speedup=(baseline.wall_seconds / wall) if baseline else 1.0,
        traditional_share=sum(has_traditional(row["raw_hypothesis"]) for row in rows) / len(rows),
        punctuation_f1=marks.f1 if marks.reference else None,
        looped=sum(row["looped"] for row in rows),
        hit_token_cap=sum(row["hit_token_cap"] for row in rows),
        retries=sum(row.get("retries", 0) for row in rows),
        feature_seconds=round(sum(row.get("feature_seconds", 0.0) for row in rows), 3),
        hypotheses_file="",
        long_form=timing_checks(rows) if rows and JOINS_FIELD in rows[0] else None,
        edits_numerals=asdict(totals_numerals),
    )
    return result, scored


def _same_text_share(rows: list[dict], report_dir: Path, baseline: EvalResult | None) -> float | None:
    """Share of `rows` whose raw hypothesis is exactly the baseline's for the same utterance."""
    if baseline is None or not rows:
        return None
    with (report_dir / baseline.hypotheses_file).open(encoding="utf-8") as handle:
        theirs = {row["key"]: row["raw_hypothesis"] for row in map(json.loads, handle)}
    return sum(theirs.get(row["key"]) == row["raw_hypothesis"] for row in rows) / len(rows)


def _hypothesis_row(row: dict, counts: EditCounts, counts_numerals: EditCounts) -> dict:
    return {
        "id": row["id"],
        "key": row["key"],  # id + audio file: ids repeat across folders
        "reference": row["reference"],
        "hypothesis": row["hypothesis"],
        "cer": counts.cer,
        "cer_numerals": counts_numerals.cer,
        "raw_hypothesis": row["raw_hypothesis"],
        "looped": row["looped"],
        "hit_token_cap": row["hit_token_cap"],
        "retries": row.get("retries", 0),  # temperature-fallback passes after the greedy one
        **({k: row[k] for k in (JOINS_FIELD, SEGMENTS_FIELD, "audio_seconds")} if JOINS_FIELD in row else {}),
    }


def _run_metadata(options: EvaluateOptions, device: torch.device, dtype: torch.dtype, threads: int) -> dict:
    if device.type == "cuda":
        device_text = f"cuda ({torch.cuda.get_device_name(device)}), {str(dtype).removeprefix('torch.')}"
    else:
        device_text = (
            f"cpu ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads != 1 else ''}), "
            f"{str(dtype).removeprefix('torch.')}"
        )
    return {
        "normalization": CER_NORMALIZATION,
        "normalization_numerals": CER_NUMERALS_NORMALIZATION,
        "device": device_text,
        "batch_size": options.runtime.batch_size,
        "decoding": asdict(options.decoding),
        "backend": asdict(options.backend),
        "limit": options.limit,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": _versions(),
    }


def _versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    for package in ("ctranslate2", "faster-whisper"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
