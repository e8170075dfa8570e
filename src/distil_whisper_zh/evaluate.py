"""`dwz evaluate`: several models x several datasets in one run -> CER, RTF, params and speed-up.

Every model decodes every dataset with the same `DecodingOptions`, batch size, device and threads, and speed-ups
are taken against the first `--model` on the same data in the same run, so the numbers compare fairly.
Each model runs on the backend its argument calls for (transformers or CTranslate2, see backends.py), so one report
can compare runtimes. With `--assistant S` the first model is run a second time with S drafting (speculative
decoding), and `same_text_as_baseline` shows that its text is the first model's own.
"""

from __future__ import annotations

import json
import platform
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm

from .audio import SAMPLE_RATE
from .backends import BackendOptions, Runtime, choose_backend, ct2_model_dir, make_decoder
from .data import SpeechDataset, load_dataset_spec
from .decoding import Decoder, DecodingOptions, Transcript, WhisperDecoder, transcribe_utterances
from .errors import DwzError
from .metrics import EditCounts, utterance_counts
from .models import resolve_model
from .punctuation import MarkCounts, punctuation_counts
from .report import write_report_files
from .runtime import configure_threads, resolve_device, resolve_dtype
from .speculative import make_assistant
from .text import CER_NORMALIZATION, CER_NUMERALS_NORMALIZATION, has_traditional, normalize_numerals

WARMUP_SECONDS = 1.0


@dataclass
class EvaluateOptions:
    """Options of `dwz evaluate`."""

    models: list[str]  # first one is the baseline for speed-ups
    data: list[str]  # dataset specs (see data.py)
    report: str = "report"  # output folder: report.json, report.md, per-utterance JSON lines, plots
    batch_size: int = 16
    limit: int | None = None  # evaluate only the first N utterances of each dataset (quick looks)
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)

    def __post_init__(self) -> None:
        if self.backend.assistant and self.batch_size != 1:
            raise DwzError(
                "--assistant: assisted generation decodes one clip at a time; add --batch-size 1 so that the "
                "model with and without the assistant are timed the same way"
            )
        if not self.models:
            raise DwzError("dwz evaluate: give at least one --model")
        if not self.data:
            raise DwzError("dwz evaluate: give at least one --data")
        if self.batch_size < 1:
            raise DwzError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise DwzError(f"--limit must be at least 1, got {self.limit}")


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
    looped: int  # hypotheses whose compression ratio says they are mostly repetition
    hit_token_cap: int  # hypotheses cut by the token cap (no end-of-text)
    hypotheses_file: str
    backend: str = "transformers"  # runtime: transformers or ctranslate2
    same_text_as_baseline: float | None = None  # share of raw hypotheses equal to the first model's; None for it


def slug(text: str) -> str:
    """A file-name-safe short form of a model argument or dataset name."""
    text = re.sub(r"^\W+", "", text.replace("pypi:", "pypi-"))
    return re.sub(r"[^\w.-]+", "-", text).strip("-.") or "model"


def run_evaluation(options: EvaluateOptions) -> list[EvalResult]:
    """Evaluate every model on every dataset; writes the report as results come in."""
    threads = configure_threads(options.threads)
    datasets = [_limited(load_dataset_spec(spec), options.limit) for spec in options.data]
    for model in options.models:  # fail on a bad model argument before any heavy work
        if choose_backend(model, options.backend.backend) == "transformers":
            resolve_model(model)
        else:
            ct2_model_dir(model)
    if options.backend.assistant and choose_backend(options.models[0], options.backend.backend) != "transformers":
        raise DwzError(f"--assistant needs the first --model on the transformers backend, not {options.models[0]}")
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device)
    report_dir = Path(options.report)
    report_dir.mkdir(parents=True, exist_ok=True)
    meta = _run_metadata(options, device, dtype, threads)
    runtime = Runtime(device, dtype, threads)
    results: list[EvalResult] = []
    for index, model_argument in enumerate(options.models):
        for decoder in _decoders(model_argument, options, runtime, with_assistant=index == 0):
            _warm_up(decoder)
            for dataset in datasets:
                baseline = next((r for r in results if r.dataset == dataset.name), None)
                results.append(evaluate_one(decoder, dataset, options.batch_size, report_dir, baseline))
                write_report_files(report_dir, [asdict(r) for r in results], meta)
            del decoder
    return results


def _decoders(model: str, options: EvaluateOptions, runtime: Runtime, with_assistant: bool) -> Iterator[Decoder]:
    """The model's decoder; for the first model with `--assistant`, then the same model with the assistant."""
    decoder = make_decoder(model, options.decoding, replace(options.backend, assistant=None), runtime)
    yield decoder
    if with_assistant and options.backend.assistant:
        loaded = decoder.loaded
        assistant = make_assistant(loaded, options.backend.assistant)
        yield WhisperDecoder(loaded, options.decoding, assistant=assistant)


def _limited(dataset: SpeechDataset, limit: int | None) -> SpeechDataset:
    if limit is None or limit >= len(dataset):
        return dataset
    return SpeechDataset(f"{dataset.name}-first{limit}", dataset.spec, dataset.utterances[:limit])


def _warm_up(decoder: Decoder) -> None:
    """One short decode first, so lazy initialisation is not billed to the first dataset."""
    decoder.decode([np.zeros(int(WARMUP_SECONDS * SAMPLE_RATE), dtype=np.float32)])


def evaluate_one(
    decoder: Decoder,
    dataset: SpeechDataset,
    batch_size: int,
    report_dir: Path,
    baseline: EvalResult | None,
) -> EvalResult:
    """Decode `dataset`, score it, write `<model>__<dataset>.jsonl`, return the result."""
    name = decoder.name
    rows, totals, totals_numerals, marks = [], EditCounts(), EditCounts(), MarkCounts()
    audio_seconds, looped, capped, traditional = 0.0, 0, 0, 0
    start = time.perf_counter()
    with tqdm(total=len(dataset), desc=f"{slug(name)} on {dataset.name}", unit="utt") as bar:
        for utterance, transcript, seconds in transcribe_utterances(decoder, dataset.utterances, batch_size, bar):
            reference = utterance.text or ""
            counts = utterance_counts(reference, transcript.text)
            counts_numerals = utterance_counts(reference, transcript.text, normalize_numerals)
            totals, totals_numerals = totals + counts, totals_numerals + counts_numerals
            marks = marks + punctuation_counts(reference, transcript.raw_text)
            traditional += has_traditional(transcript.raw_text)
            audio_seconds += seconds
            looped += transcript.looped
            capped += transcript.hit_token_cap
            rows.append(_hypothesis_row(utterance.id, reference, transcript, counts, counts_numerals))
    wall = time.perf_counter() - start
    hypotheses_file = f"{slug(name)}__{slug(dataset.name)}.jsonl"
    if baseline is not None and hypotheses_file == baseline.hypotheses_file:  # the same model twice
        hypotheses_file = f"{slug(name)}-{decoder.backend}__{slug(dataset.name)}.jsonl"
    _write_jsonl(report_dir / hypotheses_file, sorted(rows, key=lambda row: row["id"]))
    return EvalResult(
        model=name,
        dataset=dataset.name,
        cer=totals.cer,
        cer_numerals=totals_numerals.cer,
        utterances=len(rows),
        audio_seconds=round(audio_seconds, 3),
        wall_seconds=round(wall, 3),
        rtf=wall / audio_seconds if audio_seconds else float("nan"),
        params=decoder.params,
        speedup=(baseline.wall_seconds / wall) if baseline else 1.0,
        traditional_share=traditional / len(rows) if rows else 0.0,
        punctuation_f1=marks.f1 if marks.reference else None,
        looped=looped,
        hit_token_cap=capped,
        hypotheses_file=hypotheses_file,
        backend=decoder.backend,
        same_text_as_baseline=_same_text_share(rows, report_dir, baseline),
    )


def _same_text_share(rows: list[dict], report_dir: Path, baseline: EvalResult | None) -> float | None:
    """Share of `rows` whose raw hypothesis is exactly the baseline's for the same utterance."""
    if baseline is None or not rows:
        return None
    with (report_dir / baseline.hypotheses_file).open(encoding="utf-8") as handle:
        theirs = {row["id"]: row["raw_hypothesis"] for row in map(json.loads, handle)}
    return sum(theirs.get(row["id"]) == row["raw_hypothesis"] for row in rows) / len(rows)


def _hypothesis_row(utterance_id: str, reference: str, transcript: Transcript, counts, counts_numerals) -> dict:
    return {
        "id": utterance_id,
        "reference": reference,
        "hypothesis": transcript.text,
        "cer": counts.cer,
        "cer_numerals": counts_numerals.cer,
        "raw_hypothesis": transcript.raw_text,
        "looped": transcript.looped,
        "hit_token_cap": transcript.hit_token_cap,
    }


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    temporary.replace(path)


def _run_metadata(options: EvaluateOptions, device: torch.device, dtype: torch.dtype, threads: int) -> dict:
    if device.type == "cuda":
        device_text = f"cuda ({torch.cuda.get_device_name(device)}), {str(dtype).removeprefix('torch.')}"
    else:
        device_text = (
            f"cpu ({platform.processor() or platform.machine()}, {threads} threads), "
            f"{str(dtype).removeprefix('torch.')}"
        )
    return {
        "normalization": CER_NORMALIZATION,
        "normalization_numerals": CER_NUMERALS_NORMALIZATION,
        "device": device_text,
        "batch_size": options.batch_size,
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
