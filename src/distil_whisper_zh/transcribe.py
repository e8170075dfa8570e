"""`dwz transcribe`: audio files and folders in, text out (txt or JSON lines)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .audio import AUDIO_EXTENSIONS
from .data import Utterance
from .decoding import DecodingOptions, WhisperDecoder, transcribe_utterances
from .errors import DwzError
from .models import load_whisper
from .runtime import configure_threads, resolve_device, resolve_dtype
from .skipped import SKIPPED_FILE, ScreenRules, SkipLog, Skipped, screen, skip_record


@dataclass
class TranscribeOptions:
    """Options of `dwz transcribe`."""

    model: str  # hub id, transformers dir, CTranslate2 dir or pypi:whisper-base
    inputs: list[str]  # audio files, or folders searched recursively for audio
    format: str = "txt"  # txt: one line per file; json: JSON lines with id, path, text, timings
    output: str | None = None  # write here instead of standard output
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"  # auto = float16 on CUDA, float32 on CPU
    threads: int | None = None  # CPU threads for torch (default: half the cores)
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    strict: bool = False  # any bad file is an error (default: skip it, list it in skipped.jsonl beside --output)

    def __post_init__(self) -> None:
        if self.format not in ("txt", "json"):
            raise DwzError(f"--format {self.format!r}: choose txt or json")
        if not self.inputs:
            raise DwzError("dwz transcribe: give at least one audio file or folder")


def collect_audio_files(inputs: list[str], log: SkipLog | None = None) -> list[Path]:
    """Files as given, folders expanded to their audio files (sorted). A missing path or a folder without audio is
    recorded in `log` (an error without one)."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_file():
            files.append(path)
            continue
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if path.is_dir() else []
        files.extend(found)
        if found:
            continue
        if path.is_dir():
            kind, reason = "empty", f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder"
        else:
            kind, reason = "missing", "no such file or folder"
        if log is None:
            raise DwzError(f"{path}: {reason}")
        log.add(Skipped(id=str(path), path=str(path), kind=kind, reason=reason))
    return files


def transcribe(options: TranscribeOptions) -> list[dict]:
    """Transcribe every input; returns rows in input order and writes them in the chosen format.

    Files that cannot be used (missing, unreadable, not audio, damaged, silent, too short or long) are left out
    and listed in `skipped.jsonl` beside `--output` (on standard error when writing to standard output).
    """
    configure_threads(options.threads)
    log = SkipLog(options.strict)
    files = collect_audio_files(options.inputs, log)
    utterances = screen([Utterance(id=str(path), audio=path) for path in files], ScreenRules(), log)
    try:
        log.check_strict()
        if not utterances:
            raise log.nothing_usable("dwz transcribe")
        results = _transcribe_usable(options, utterances, log)
        if not results:
            raise log.nothing_usable("dwz transcribe")
    finally:
        report_skipped(log, options.output)
    rows = [results[str(path)] for path in files if str(path) in results]
    write_transcripts(rows, options)
    return rows


def _transcribe_usable(options: TranscribeOptions, utterances: list[Utterance], log: SkipLog) -> dict[str, dict]:
    device = resolve_device(options.device)
    decoder = WhisperDecoder(
        load_whisper(options.model, device, resolve_dtype(options.dtype, device)), options.decoding
    )

    def on_skip(utterance: Utterance, error) -> None:
        log.add_strictly(skip_record(utterance, error.kind, error.reason))

    results: dict[str, dict] = {}
    with tqdm(total=len(utterances), desc="transcribe", unit="file") as bar:
        decoded = transcribe_utterances(decoder, utterances, options.batch_size, bar, on_skip)
        for utterance, transcript, seconds in decoded:
            row = {"path": utterance.id, "text": transcript.text, "audio_seconds": round(seconds, 3)}
            row.update(looped=transcript.looped, hit_token_cap=transcript.hit_token_cap)
            results[utterance.id] = row
    return results


def report_skipped(log: SkipLog, output: str | None) -> None:
    """skipped.jsonl beside the output file; with output to the terminal, one line per skipped file on stderr."""
    if not log.items:
        return
    if output:
        path = log.write(Path(output).expanduser().parent / SKIPPED_FILE)
        print(f"dwz transcribe: {log.summary()}, listed in {path}", file=sys.stderr)
        return
    for item in log.items:
        print(f"dwz transcribe: skipped {item.line()}", file=sys.stderr)


def write_transcripts(rows: list[dict], options: TranscribeOptions) -> None:
    if options.format == "txt":
        lines = [row["text"] if len(rows) == 1 else f"{row['path']}\t{row['text']}" for row in rows]
    else:
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    text = "\n".join(lines) + "\n"
    if options.output:
        Path(options.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")
