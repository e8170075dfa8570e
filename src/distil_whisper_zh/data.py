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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .audio import SAMPLE_RATE, duration_seconds, load_audio, to_whisper_input
from .errors import DwzError

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
                info = sf.info(io.BytesIO(self.audio))
                self.duration = info.frames / info.samplerate
            else:
                self.duration = duration_seconds(self.audio)
        return self.duration

    @property
    def audio_path(self) -> str | None:
        return str(self.audio) if isinstance(self.audio, Path) else self.fields.get("path")


@dataclass
class SpeechDataset:
    """The utterances of one `--data` spec, and the short name reports use for it."""

    name: str
    spec: str
    utterances: list[Utterance]

    def __len__(self) -> int:
        return len(self.utterances)


def load_dataset_spec(spec: str) -> SpeechDataset:
    """Parse a `--data` spec and read its utterance list (audio is not decoded here)."""
    kind, _, rest = spec.partition(":")
    if kind not in LOCAL_KINDS or not rest:
        kind, rest = "manifest", spec
    readers = {
        "manifest": read_manifest,
        "aishell": read_aishell,
        "commonvoice": read_commonvoice,
        "fleurs": read_fleurs,
        "hf": read_hf,
    }
    name, utterances = readers[kind](rest)
    if not utterances:
        raise DwzError(f"--data {spec}: no utterances found")
    return SpeechDataset(name=name, spec=spec, utterances=utterances)


def _split_dir_spec(rest: str, kind: str) -> tuple[Path, str]:
    directory, _, split = rest.partition(":")
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DwzError(f"{kind}:{rest}: {directory} is not a directory")
    return directory, split or DEFAULT_SPLIT


# ---------------------------------------------------------------------------------------------- manifests


def read_manifest(path_text: str) -> tuple[str, list[Utterance]]:
    """JSON lines, TSV or CSV with `audio` (relative to the manifest's folder, or absolute) and `text`."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DwzError(f"{path}: manifest not found")
    rows = _manifest_rows(path)
    utterances = [_manifest_utterance(path, line, row) for line, row in rows]
    name = path.parent.name if path.stem == "manifest" else path.stem
    return name, utterances


def _manifest_rows(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DwzError(f"{path}: manifest is not UTF-8 ({error})") from None
    if path.suffix in (".tsv", ".csv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix == ".tsv" else ",")
        yield from ((number + 2, row) for number, row in enumerate(reader))  # line 1 is the header
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DwzError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise DwzError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _manifest_utterance(path: Path, line: int, row: dict) -> Utterance:
    for required in ("audio", "text"):
        if row.get(required) in (None, ""):
            raise DwzError(f"{path}:{line}: missing field {required!r} (each line needs 'audio' and 'text')")
    audio = Path(str(row["audio"])).expanduser()
    audio = audio if audio.is_absolute() else path.parent / audio
    if not audio.is_file():
        raise DwzError(f"{path}:{line}: audio file {audio} not found")
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


def read_aishell(rest: str) -> tuple[str, list[Utterance]]:
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
    utterances = [
        Utterance(id=wav.stem, audio=wav, text=transcripts[wav.stem], fields={"speaker": wav.parent.name})
        for wav in sorted(wav_dir.glob("*/*.wav"))
        if wav.stem in transcripts  # AISHELL-1 has audio without transcripts: those are not usable here
    ]
    return f"aishell-{split}", utterances


def read_commonvoice(rest: str) -> tuple[str, list[Utterance]]:
    """Common Voice release: `DIR/SPLIT.tsv` (`path`, `sentence`, ...) and `DIR/clips/*.mp3`."""
    directory, split = _split_dir_spec(rest, "commonvoice")
    table = directory / f"{split}.tsv"
    if not table.is_file():
        raise DwzError(f"commonvoice:{rest}: {table} not found")
    with table.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if rows and not {"path", "sentence"} <= rows[0].keys():
        raise DwzError(f"{table}: expected columns 'path' and 'sentence', found {sorted(rows[0])}")
    utterances = []
    for row in rows:
        audio = directory / "clips" / row["path"]
        if not audio.is_file():
            raise DwzError(f"{table}: clip {audio} not found")
        fields = {k: v for k, v in row.items() if k not in ("path", "sentence")}
        utterances.append(Utterance(id=Path(row["path"]).stem, audio=audio, text=row["sentence"], fields=fields))
    return f"commonvoice-{split}", utterances


FLEURS_COLUMNS = (
    "id",
    "file_name",
    "raw_transcription",
    "transcription",
    "phonemes",
    "num_samples",
    "gender",
)


def read_fleurs(rest: str) -> tuple[str, list[Utterance]]:
    """FLEURS: `DIR/SPLIT.tsv` (no header; id, file name, raw and normalised transcription, ...) and
    `DIR/audio/SPLIT/*.wav`. The raw transcription (with punctuation) is the reference."""
    directory, split = _split_dir_spec(rest, "fleurs")
    table = directory / f"{split}.tsv"
    if not table.is_file():
        raise DwzError(f"fleurs:{rest}: {table} not found")
    utterances = []
    for number, line in enumerate(table.read_text(encoding="utf-8").splitlines(), start=1):
        values = line.split("\t")
        if len(values) != len(FLEURS_COLUMNS):
            raise DwzError(f"{table}:{number}: expected {len(FLEURS_COLUMNS)} tab-separated columns, got {len(values)}")
        row = dict(zip(FLEURS_COLUMNS, values, strict=True))
        audio = directory / "audio" / split / row["file_name"]
        if not audio.is_file():
            raise DwzError(f"{table}:{number}: audio file {audio} not found")
        samples = int(row["num_samples"]) if row["num_samples"].isdigit() else None
        utterances.append(
            Utterance(
                id=Path(row["file_name"]).stem,
                audio=audio,
                text=row["raw_transcription"],
                duration=samples / SAMPLE_RATE if samples else None,
                fields={"fleurs_id": row["id"], "gender": row["gender"]},
            )
        )
    return f"fleurs-{split}", utterances


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


def read_hf(rest: str) -> tuple[str, list[Utterance]]:
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


def _hf_utterance(row: dict, index: int, audio_column: str, text_column: str | None, rest: str) -> Utterance:
    value = row[audio_column]
    if isinstance(value, dict) and value.get("bytes"):
        audio: Path | bytes | np.ndarray = value["bytes"]
    elif isinstance(value, dict) and value.get("array") is not None:
        audio = to_whisper_input(np.asarray(value["array"]), int(value["sampling_rate"]))
    elif (isinstance(value, dict) and value.get("path")) or isinstance(value, str):
        audio = Path(value["path"] if isinstance(value, dict) else value)
    else:
        raise DwzError(f"hf:{rest}: row {index} has no audio bytes, array or path in column {audio_column!r}")
    fields = {k: v for k, v in row.items() if k not in (audio_column, text_column) and _is_plain(v)}
    path = value.get("path") if isinstance(value, dict) else None
    if path:
        fields["path"] = path
    utterance_id = str(row.get("id") or (Path(path).stem if path else index))
    text = str(row[text_column]) if text_column else None
    return Utterance(id=utterance_id, audio=audio, text=text, fields=fields)


def _is_plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
