"""`dwz transcribe`: audio files and folders in, text out: txt, JSON lines (with timed segments), SRT or WebVTT.

Recordings of any length: audio over 30 s is decoded window after window (sequential long-form decoding, each
window starting where the last segment ended), by transformers or by faster-whisper, whichever runs the model, or
with `--long-form chunked` (a student's default) any input longer than a chunk is cut at pauses into chunks
decoded as short clips (chunking.py).
Subtitles: one input goes to standard output (or `--output FILE`); several inputs get one `<name>.srt` / `<name>.vtt`
each, in `--output DIR` or, without it, beside each audio file (as `dwz transcribe a.wav b.mp3 --format srt` writes
a.srt and b.srt).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from tqdm.auto import tqdm
from tyro.conf import Positional, arg

from .audio import AUDIO_EXTENSIONS
from .backends import BackendOptions, Runtime, make_decoder
from .data import Utterance
from .decoding import DecodingOptions, Segment, Transcript, transcribe_utterances
from .errors import DwzError
from .options import check_choices, neutral
from .runtime import RuntimeOptions, configure_threads, resolve_device, resolve_dtype
from .screening import ScreenRules, screen, skip_record
from .skipped import SKIPPED_FILE, SkipLog, Skipped
from .subtitles import to_srt, to_vtt


@dataclass
class TranscribeOptions:
    """Options of `dwz transcribe`."""

    model: str
    """hub id, model dir, CTranslate2 dir or pypi:whisper-base"""
    inputs: Positional[list[str]]
    """audio files, or folders searched recursively for audio"""
    format: Literal["txt", "json", "srt", "vtt"] = "txt"
    """txt, json (JSON lines with timed segments), srt or vtt; the text is the same in every format"""
    output: Annotated[str | None, arg(aliases=("-o",))] = None
    """write to this file instead of standard output (srt/vtt of several files: a folder, one file each)"""
    # longer recordings are always decoded window by window, with timestamps
    timestamps: bool = False
    """segment timestamps inside each 30-s window or chunk too (otherwise one segment per recording up to 30 s, or
    per chunk of a chunked model)"""
    word_timestamps: bool = False
    """each segment's words with start and end times in json output, from the model's alignment heads (for a
    student: dwz align-heads)"""
    strict: bool = neutral(False)
    """stop with an error at any bad file (otherwise: skip it, list it in skipped.jsonl beside --output)"""
    runtime: RuntimeOptions = field(default_factory=lambda: RuntimeOptions(batch_size=8))
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    backend: BackendOptions = field(default_factory=BackendOptions)

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.inputs:
            raise DwzError("give at least one audio file or folder")


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
    threads = configure_threads(options.runtime.threads)
    log = SkipLog(options.strict)
    files = collect_audio_files(options.inputs, log)
    subtitle_paths = subtitle_outputs(files, options)  # fail on a clash before decoding anything
    utterances = screen([Utterance(id=str(path), audio=path) for path in files], ScreenRules(), log)
    try:
        log.check_strict()
        if not utterances:
            raise log.nothing_usable("dwz transcribe")
        results = _transcribe_usable(options, utterances, log, threads)
        if not results:
            raise log.nothing_usable("dwz transcribe")
    finally:
        report_skipped(log, options.output)
    kept = [index for index, path in enumerate(files) if str(path) in results]
    ordered = [results[str(files[index])] for index in kept]
    if subtitle_paths is None:
        write_transcripts([row for row, _ in ordered], options)
    else:
        write_subtitles([transcript for _, transcript in ordered], [subtitle_paths[i] for i in kept], options.format)
    return [row for row, _ in ordered]


def _transcribe_usable(
    options: TranscribeOptions, utterances: list[Utterance], log: SkipLog, threads: int
) -> dict[str, tuple[dict, Transcript]]:
    device = resolve_device(options.runtime.device)
    runtime = Runtime(device, resolve_dtype(options.runtime.dtype, device), threads, options.runtime.batch_size)
    decoder = make_decoder(
        options.model, options.decoding, options.backend, runtime, options.timestamps, options.word_timestamps
    )

    def on_skip(utterance: Utterance, error) -> None:
        log.add_strictly(skip_record(utterance, error.kind, error.reason))

    results: dict[str, tuple[dict, Transcript]] = {}
    with tqdm(total=len(utterances), desc="transcribe", unit="file") as bar:
        decoded = transcribe_utterances(decoder, utterances, options.runtime.batch_size, bar, on_skip)
        for item in decoded:
            utterance, transcript = item.utterance, item.transcript
            row = {"path": utterance.id, "text": transcript.text, "audio_seconds": round(item.audio_seconds, 3)}
            row.update(looped=transcript.looped, hit_token_cap=transcript.hit_token_cap)
            transcript.segments = transcript.segments or whole_recording(transcript, item.audio_seconds)
            row["segments"] = [segment_row(s) for s in transcript.segments]
            if options.backend.vad or decoder.options.long_form == "chunked":  # what the VAD heard as no speech
                row["vad_removed"] = [list(r) for r in transcript.vad_removed]
            if options.backend.vad:
                report_vad(utterance.id, transcript.vad_removed)
            results[utterance.id] = (row, transcript)
    return results


def report_vad(path: str, removed: list[tuple[float, float]]) -> None:
    """One stderr line per file: what --vad left out, so a dropped utterance can be found."""
    if removed:
        total = sum(end - start for start, end in removed)
        ranges = ", ".join(f"{start:.1f}-{end:.1f}" for start, end in removed)
        print(f"dwz transcribe: --vad left out {total:.1f} s of {path}: {ranges}", file=sys.stderr)


def segment_row(segment: Segment) -> dict:
    row = {"start": segment.start, "end": segment.end, "text": segment.text}
    if segment.words:
        row["words"] = [{"start": w.start, "end": w.end, "text": w.text} for w in segment.words]
    return row


def whole_recording(transcript: Transcript, seconds: float) -> list[Segment]:
    """One segment for a recording decoded without timestamps (none for no text)."""
    return [Segment(0.0, round(seconds, 3), transcript.text)] if transcript.text else []


def report_skipped(log: SkipLog, output: str | None) -> None:
    """skipped.jsonl beside the output file; with output to the terminal, one line per skipped file on stderr."""
    if not log.items:
        return
    if output:
        target = Path(output).expanduser()
        path = log.write((target if target.is_dir() else target.parent) / SKIPPED_FILE)
        print(f"dwz transcribe: {log.summary()}, listed in {path}", file=sys.stderr)
        return
    for item in log.items:
        print(f"dwz transcribe: skipped {item.line()}", file=sys.stderr)


def subtitle_outputs(files: list[Path], options: TranscribeOptions) -> list[Path | None] | None:
    """Where each file's subtitles go (None = standard output), or None when the format is not a subtitle one."""
    if options.format not in ("srt", "vtt"):
        return None
    output = options.output
    into_folder = bool(output) and (Path(output).is_dir() or output.endswith(("/", "\\")))
    if len(files) == 1 and not into_folder:
        return [Path(output) if output else None]
    if not output:
        paths = [path.with_suffix(f".{options.format}") for path in files]  # beside each recording
    else:
        folder = Path(output)
        if folder.is_file():
            raise DwzError(f"--output {folder}: a file; with several inputs it must be a folder")
        paths = [folder / f"{path.stem}.{options.format}" for path in files]
    clashes = sorted({str(p) for p in paths if paths.count(p) > 1})
    if clashes:
        raise DwzError(f"inputs with the same name would overwrite each other's subtitles: {', '.join(clashes)}")
    return paths


def write_subtitles(transcripts: list[Transcript], paths: list[Path | None], format: str) -> None:
    render = to_srt if format == "srt" else to_vtt
    for transcript, path in zip(transcripts, paths, strict=True):
        text = render(transcript.segments)
        if path is None:
            print(text, end="")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)


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
