"""Speech datasets in: one `Utterance` list from any `--data` spec.

Specs (see product.md): `manifest:PATH` (or a bare PATH; .jsonl, .tsv or .csv with `audio` and `text`),
`aishell:DIR[:SPLIT]`, `commonvoice:DIR[:SPLIT]`, `fleurs:DIR[:SPLIT]`, `hf:REPO[:CONFIG][:SPLIT]`.
Audio is decoded lazily by our own reader (soundfile + soxr), never by torchcodec.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import SAMPLE_RATE, AudioError, duration_seconds, load_audio, to_whisper_input
from .errors import DwzError
from .skipped import SHOWN_IN_ERRORS, Skipped

DEFAULT_SPLIT = "test"
LOCAL_KINDS = ("manifest", "aishell", "commonvoice", "fleurs", "hf")
HF_SPLIT_NAMES = ("train", "test", "validation", "dev", "valid", "other", "invalidated")
HF_TEXT_COLUMNS = ("text", "sentence", "raw_transcription", "transcription", "normalized_text")
AISHELL_TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"


@dataclass
class Utterance:
    """One clip: where its audio is, its reference text (None for unlabelled audio), other fields kept."""

    id: str
    audio: Path | bytes | np.ndarray
    text: str | None = None
    duration: float | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def load(self) -> np.ndarray:
        """16 kHz mono float32 samples."""
        if isinstance(self.audio, np.ndarray):
            return self.audio
        return load_audio(self.audio)

    def seconds(self) -> float:
        """Duration in seconds (from the manifest, else the file header), cached."""
        if self.duration is None:
            if isinstance(self.audio, np.ndarray):
                self.duration = len(self.audio) / SAMPLE_RATE
            elif isinstance(self.audio, bytes):
                try:
                    info = sf.info(io.BytesIO(self.audio))
                except (sf.LibsndfileError, RuntimeError) as error:
                    raise AudioError(self.id, "not_audio", f"cannot read the audio bytes ({error})") from None
                self.duration = info.frames / info.samplerate
            else:
                self.duration = duration_seconds(self.audio)
        return self.duration

    @property
    def audio_path(self) -> str | None:
        return str(self.audio) if isinstance(self.audio, Path) else self.fields.get("path")


@dataclass
class SpeechDataset:
    """The utterances of one `--data` spec, the short name reports use for it, and the rows it had to leave out."""

    name: str
    spec: str
    utterances: list[Utterance]
    skipped: list[Skipped] = field(default_factory=list)  # manifest rows with no usable utterance

    def __len__(self) -> int:
        return len(self.utterances)


def load_dataset_spec(spec: str) -> SpeechDataset:
    """Parse a `--data` spec and read its utterance list (audio is not decoded here)."""
    kind, _, rest = spec.partition(":")
    if kind not in LOCAL_KINDS or not rest:
        # a word before a colon is a prefix (mistyped?) unless the whole spec names a file; "C:\\x" stays a path
        if rest and re.fullmatch(r"[A-Za-z][\w-]+", kind) and not Path(spec).expanduser().exists():
            valid = ", ".join(f"{k}:" for k in LOCAL_KINDS)
            raise DwzError(f"--data {spec}: unknown prefix {kind + ':'!r}; use one of {valid} or a manifest path")
        kind, rest = "manifest", spec
    readers = {
        "manifest": read_manifest,
        "aishell": read_aishell,
        "commonvoice": read_commonvoice,
        "fleurs": read_fleurs,
        "hf": read_hf,
    }
    name, items = readers[kind](rest)
    utterances = [item for item in items if isinstance(item, Utterance)]
    skipped = [replace(item, dataset=name) for item in items if isinstance(item, Skipped)]
    if not utterances:
        shown = "; ".join(item.line() for item in skipped[:SHOWN_IN_ERRORS])
        raise DwzError(
            f"--data {spec}: no utterances found"
            + (f" ({len(skipped)} bad row{'s' if len(skipped) != 1 else ''}: {shown})" if shown else "")
        )
    return SpeechDataset(name=name, spec=spec, utterances=utterances, skipped=skipped)


def _split_dir_spec(rest: str, kind: str) -> tuple[Path, str]:
    directory, _, split = rest.partition(":")
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DwzError(f"{kind}:{rest}: {directory} is not a directory")
    return directory, split or DEFAULT_SPLIT


# ---------------------------------------------------------------------------------------------- manifests


ManifestItem = Utterance | Skipped


def read_manifest(path_text: str) -> tuple[str, list[ManifestItem]]:
    """JSON lines, TSV or CSV with `audio` (relative to the manifest's folder, or absolute) and `text`.

    A row that gives no utterance (not UTF-8, not JSON, a field missing, no audio file) becomes a `Skipped`
    naming its line; the caller decides whether that is fatal (`--strict`, or no good row at all).
    """
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DwzError(f"{path}: manifest not found")
    items = [
        row if isinstance(row, Skipped) else _manifest_utterance(path, line, row) for line, row in _manifest_rows(path)
    ]
    name = path.parent.name if path.stem == "manifest" else path.stem
    return name, items


def _bad_row(path: Path, line: int, kind: str, reason: str) -> Skipped:
    return Skipped(id=f"{path.name}:{line}", path=str(path), kind=kind, reason=f"{path.name}:{line}: {reason}")


def _decoded_lines(path: Path) -> Iterator[tuple[int, str | Skipped]]:
    """(line number, text) of each line; a line that is not UTF-8 comes as a `Skipped` instead."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            hint = "save the manifest as UTF-8, e.g. iconv -f GBK -t UTF-8 IN > OUT"
            yield number, _bad_row(path, number, "bad_row", f"line is not UTF-8 text ({hint})")


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict | Skipped]]:
    lines = list(_decoded_lines(path))
    yield from ((n, line) for n, line in lines if isinstance(line, Skipped))
    good = [(n, line) for n, line in lines if not isinstance(line, Skipped)]
    if path.suffix in (".tsv", ".csv"):
        reader = csv.DictReader((line for _, line in good), delimiter="\t" if path.suffix == ".tsv" else ",")
        for row in reader:
            yield good[reader.line_num - 1][0], row
        return
    for number, line in good:
        if line.strip():
            yield number, _json_row(path, number, line)


def _json_row(path: Path, number: int, line: str) -> dict | Skipped:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return _bad_row(path, number, "bad_row", f"not valid JSON ({error.msg})")
    if not isinstance(row, dict):
        return _bad_row(path, number, "bad_row", f"expected a JSON object, got {type(row).__name__}")
    return row


def _manifest_utterance(path: Path, line: int, row: dict) -> Utterance | Skipped:
    for required in ("audio", "text"):
        if row.get(required) in (None, ""):
            reason = f"missing field {required!r} (each line needs 'audio' and 'text')"
            return _bad_row(path, line, "bad_row", reason)
    audio = Path(str(row["audio"])).expanduser()
    audio = audio if audio.is_absolute() else path.parent / audio
    if not audio.is_file():
        reason = f"{path.name}:{line}: audio file {audio} not found (paths are relative to the manifest's folder)"
        return Skipped(id=str(row.get("id") or audio.stem), path=str(audio), kind="missing", reason=reason)
    duration = row.get("duration")
    fields = {key: value for key, value in row.items() if key not in ("audio", "text", "id", "duration")}
    return Utterance(
        id=str(row.get("id") or audio.stem),
        audio=audio,
        text=str(row["text"]),
        duration=float(duration) if duration not in (None, "") else None,
        fields=fields,
    )


# ---------------------------------------------------------------------------------------- corpus layouts


def read_aishell(rest: str) -> tuple[str, list[ManifestItem]]:
    """AISHELL-1: `DIR/wav/SPLIT/SPEAKER/*.wav` and `DIR/transcript/aishell_transcript_v0.8.txt`."""
    directory, split = _split_dir_spec(rest, "aishell")
    transcript_path = directory / AISHELL_TRANSCRIPT
    if not transcript_path.is_file():
        raise DwzError(f"aishell:{rest}: transcript {transcript_path} not found")
    transcripts = {}
    for line in transcript_path.read_text(encoding="utf-8").splitlines():
        key, _, words = line.strip().partition(" ")
        if key:
            transcripts[key] = words.replace(" ", "")
    wav_dir = directory / "wav" / split
    if not wav_dir.is_dir():
        raise DwzError(f"aishell:{rest}: no split folder {wav_dir}")
    # AISHELL-1 has audio without transcripts: those are recorded as skipped. Transcripts without audio are not
    # (the transcript file covers every split, so most of its lines have their audio in another split).
    items = [
        Utterance(id=wav.stem, audio=wav, text=transcripts[wav.stem], fields={"speaker": wav.parent.name})
        if wav.stem in transcripts
        else Skipped(wav.stem, str(wav), "no_transcript", f"no line for {wav.stem} in {transcript_path.name}")
        for wav in sorted(wav_dir.glob("*/*.wav"))
    ]
    return f"aishell-{split}", items


def read_commonvoice(rest: str) -> tuple[str, list[ManifestItem]]:
    """Common Voice release: `DIR/SPLIT.tsv` (`path`, `sentence`, ...) and `DIR/clips/*.mp3`."""
    directory, split = _split_dir_spec(rest, "commonvoice")
    table = directory / f"{split}.tsv"
    if not table.is_file():
        raise DwzError(f"commonvoice:{rest}: {table} not found")
    with table.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and not {"path", "sentence"} <= rows[0].keys():
        raise DwzError(f"{table}: expected columns 'path' and 'sentence', found {sorted(rows[0])}")
    items: list[ManifestItem] = []
    for row in rows:
        audio = directory / "clips" / row["path"]
        if not audio.is_file():
            items.append(
                Skipped(Path(row["path"]).stem, str(audio), "missing", f"clip listed in {table.name} not found")
            )
            continue
        fields = {k: v for k, v in row.items() if k not in ("path", "sentence")}
        items.append(Utterance(id=Path(row["path"]).stem, audio=audio, text=row["sentence"], fields=fields))
    return f"commonvoice-{split}", items


FLEURS_COLUMNS = (
    "id",
    "file_name",
    "raw_transcription",
    "transcription",
    "phonemes",
    "num_samples",
    "gender",
)


def read_fleurs(rest: str) -> tuple[str, list[ManifestItem]]:
    """FLEURS: `DIR/SPLIT.tsv` (no header; id, file name, raw and normalised transcription, ...) and
    `DIR/audio/SPLIT/*.wav`. The raw transcription (with punctuation) is the reference."""
    directory, split = _split_dir_spec(rest, "fleurs")
    table = directory / f"{split}.tsv"
    if not table.is_file():
        raise DwzError(f"fleurs:{rest}: {table} not found")
    items: list[ManifestItem] = []
    for number, line in _decoded_lines(table):
        if isinstance(line, Skipped) or not line.strip():
            items += [line] if isinstance(line, Skipped) else []
            continue
        values = line.split("\t")
        if len(values) != len(FLEURS_COLUMNS):
            reason = f"expected {len(FLEURS_COLUMNS)} tab-separated columns, got {len(values)}"
            items.append(_bad_row(table, number, "bad_row", reason))
            continue
        row = dict(zip(FLEURS_COLUMNS, values, strict=True))
        audio = directory / "audio" / split / row["file_name"]
        if not audio.is_file():
            items.append(Skipped(audio.stem, str(audio), "missing", f"{table.name}:{number}: audio file not found"))
            continue
        samples = int(row["num_samples"]) if row["num_samples"].isdigit() else None
        items.append(
            Utterance(
                id=Path(row["file_name"]).stem,
                audio=audio,
                text=row["raw_transcription"],
                duration=samples / SAMPLE_RATE if samples else None,
                fields={"fleurs_id": row["id"], "gender": row["gender"]},
            )
        )
    return f"fleurs-{split}", items


# ------------------------------------------------------------------------------------------ hub datasets


def parse_hf_spec(rest: str) -> tuple[str, str | None, str]:
    """`REPO[:CONFIG][:SPLIT]`; a single extra part is the split if it looks like one, else the config."""
    parts = re.split(r":(?![^\[]*\])", rest)  # a colon inside a split slice ("train[:100]") is not a separator
    repo, extra = parts[0], parts[1:]
    if len(extra) > 2 or not repo:
        raise DwzError(f"hf:{rest}: expected hf:REPO[:CONFIG][:SPLIT]")
    if len(extra) == 2:
        return repo, extra[0] or None, extra[1] or DEFAULT_SPLIT
    if len(extra) == 1 and extra[0].split("[")[0] in HF_SPLIT_NAMES:
        return repo, None, extra[0]
    return repo, (extra[0] if extra else None), DEFAULT_SPLIT


def read_hf(rest: str) -> tuple[str, list[ManifestItem]]:
    """A Hugging Face dataset: hub id, a local dataset folder, or a `save_to_disk` folder."""
    import datasets

    repo, config, split = parse_hf_spec(rest)
    dataset = _open_hf(repo, config, split)
    audio_column = _audio_column(dataset, rest)
    text_column = next((c for c in HF_TEXT_COLUMNS if c in dataset.column_names), None)
    if isinstance(dataset.features.get(audio_column), datasets.Audio):
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))
    utterances = [_hf_utterance(row, index, audio_column, text_column, rest) for index, row in enumerate(dataset)]
    name = "-".join(p for p in (Path(repo).name, config, split.split("[")[0]) if p)
    return name, utterances


def _open_hf(repo: str, config: str | None, split: str):
    import datasets

    local = Path(repo).expanduser()
    try:
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            loaded = datasets.load_from_disk(str(local))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        return datasets.load_dataset(str(local) if local.is_dir() else repo, config, split=split)
    except (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError) as error:
        raise DwzError(
            f"hf:{repo}: cannot load split {split!r}"
            + (f" of config {config!r}" if config else "")
            + f" ({type(error).__name__}: {error})"
        ) from None


def _audio_column(dataset, rest: str) -> str:
    import datasets

    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Audio):
            return name
    if "audio" in dataset.column_names:
        return "audio"
    raise DwzError(f"hf:{rest}: no audio column (columns: {dataset.column_names})")


def _hf_utterance(row: dict, index: int, audio_column: str, text_column: str | None, rest: str) -> ManifestItem:
    value = row[audio_column]
    if isinstance(value, dict) and value.get("bytes"):
        audio: Path | bytes | np.ndarray = value["bytes"]
    elif isinstance(value, dict) and value.get("array") is not None:
        audio = to_whisper_input(np.asarray(value["array"]), int(value["sampling_rate"]))
    elif (isinstance(value, dict) and value.get("path")) or isinstance(value, str):
        audio = Path(value["path"] if isinstance(value, dict) else value)
    else:
        reason = f"hf:{rest}: row {index} has no audio bytes, array or path in column {audio_column!r}"
        return Skipped(str(row.get("id") or index), None, "missing", reason)
    fields = {k: v for k, v in row.items() if k not in (audio_column, text_column) and _is_plain(v)}
    path = value.get("path") if isinstance(value, dict) else None
    if path:
        fields["path"] = path
    utterance_id = str(row.get("id") or (Path(path).stem if path else index))
    text = str(row[text_column]) if text_column else None
    return Utterance(id=utterance_id, audio=audio, text=text, fields=fields)


def _is_plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
