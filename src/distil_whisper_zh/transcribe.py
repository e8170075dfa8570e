"""`dwz transcribe`: audio files and folders in, text out (txt or JSON lines)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .audio import AUDIO_EXTENSIONS
from .data import Utterance
from .decoding import DecodingOptions, WhisperDecoder, transcribe_utterances
from .errors import DwzError
from .models import load_whisper
from .runtime import configure_threads, resolve_device, resolve_dtype


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

    def __post_init__(self) -> None:
        if self.format not in ("txt", "json"):
            raise DwzError(f"--format {self.format!r}: choose txt or json")
        if not self.inputs:
            raise DwzError("dwz transcribe: give at least one audio file or folder")


def collect_audio_files(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded to their audio files (sorted); a missing path is an error."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise DwzError(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise DwzError(f"{path}: no such file or folder")
    return files


def transcribe(options: TranscribeOptions) -> list[dict]:
    """Transcribe every input; returns rows in input order and writes them in the chosen format."""
    configure_threads(options.threads)
    files = collect_audio_files(options.inputs)
    utterances = [Utterance(id=str(path), audio=path) for path in files]
    device = resolve_device(options.device)
    decoder = WhisperDecoder(
        load_whisper(options.model, device, resolve_dtype(options.dtype, device)), options.decoding
    )
    results: dict[str, dict] = {}
    with tqdm(total=len(utterances), desc="transcribe", unit="file") as bar:
        for utterance, transcript, seconds in transcribe_utterances(decoder, utterances, options.batch_size, bar):
            row = {"path": utterance.id, "text": transcript.text, "audio_seconds": round(seconds, 3)}
            row.update(looped=transcript.looped, hit_token_cap=transcript.hit_token_cap)
            results[utterance.id] = row
    rows = [results[str(path)] for path in files]
    write_transcripts(rows, options)
    return rows


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
