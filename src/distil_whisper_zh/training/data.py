"""The clips a run trains and is measured on: loaded from --data / --eval-data specs, screened once up front, and
the dev CER that picks the best checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..chunking import with_long_form
from ..data import SpeechDataset, Utterance, load_dataset_spec
from ..decoding import WINDOW_SECONDS, DecodingOptions, WhisperDecoder, transcribe_utterances
from ..errors import DwzError
from ..fingerprint import clips_fingerprint, digest
from ..metrics import EditCounts, utterance_counts
from ..models import LoadedWhisper
from ..pseudo_label import LABELS_FILE, load_labels
from ..screening import ScreenRules, screen
from ..skipped import SkipLog


@dataclass
class Example:
    utterance: Utterance
    label_ids: list[int]


# Training clips are decoded every epoch (unless cached) and batches are a function of the clip list: so every clip
# is decoded once up front, and one that fails is left out before the first step, never in the middle of a run.
TRAINING_SCREEN = ScreenRules(max_seconds=WINDOW_SECONDS, need_reference=True, nonempty_reference=True, decode=True)


def load_training_data(specs: list[str], log: SkipLog | None = None) -> list[Utterance]:
    """Pseudo-label folders give the teacher's labels; any other spec gives its references. Unusable clips (bad
    audio, empty label, longer than one 30-s window: Whisper would see it cut while its label is not) go to `log`."""
    if not specs:
        raise DwzError("give at least one --data to train on")
    log = log if log is not None else SkipLog()
    utterances: list[Utterance] = []
    for spec in specs:
        dataset: SpeechDataset = load_labels(spec) if (Path(spec) / LABELS_FILE).is_file() else load_dataset_spec(spec)
        log.extend(dataset.skipped)
        for utterance in dataset.utterances:
            utterance.fields.setdefault("dataset", dataset.name)  # for --dataset-weights
        utterances += screen(dataset.utterances, TRAINING_SCREEN, log, dataset.name)
    seen: set[str] = set()
    duplicates = [u.id for u in utterances if u.id in seen or seen.add(u.id)]
    if duplicates:
        raise DwzError(
            f"training clips must have unique ids; {len(duplicates)} repeat, e.g. {duplicates[0]!r} "
            "(give them an `id` field, or do not pass the same data twice)"
        )
    log.check_strict()
    if not utterances:
        raise log.nothing_usable("training data")
    return utterances


def load_eval_data(specs: list[str], limit: int, log: SkipLog) -> list[Utterance]:
    """The first `limit` usable dev clips of `specs` (screened like training clips, but long ones are kept)."""
    rules = ScreenRules(need_reference=True, nonempty_reference=True, decode=True)
    utterances: list[Utterance] = []
    for spec in specs:
        dataset = load_dataset_spec(spec)
        log.extend(dataset.skipped)
        remaining = dataset.utterances
        while remaining and len(utterances) < limit:  # screen a slice at a time: bad clips do not shrink the set
            wanted = limit - len(utterances)
            utterances += screen(remaining[:wanted], rules, log, dataset.name)
            remaining = remaining[wanted:]
    log.check_strict()
    return utterances


def training_data_fingerprint(utterances: list[Utterance]) -> str:
    """A hash of the training clips in order: ids, audio files (path, size, modification time) and labels, with
    their segment times when they have them (pseudo-label --timestamps)."""
    clips = clips_fingerprint(utterances)
    segments = [u.fields.get("label_segments") for u in utterances]
    return digest([clips, segments]) if any(segments) else clips


def dev_cer(model, processor, utterances: list[Utterance], batch_size: int, fallback: bool = True) -> float:
    """Greedy CER of `model` on `utterances`, by default with the temperature fallback `dwz evaluate` uses: a few
    looping outputs of a young student would otherwise decide which checkpoint is kept."""
    was_training = model.training
    model.eval()
    with torch.random.fork_rng():  # decoding seeds torch; training's random stream must not notice
        cer = _decode_cer(model, processor, utterances, batch_size, fallback)
    model.train(was_training)
    return cer


def _decode_cer(model, processor, utterances: list[Utterance], batch_size: int, fallback: bool) -> float:
    plain = WhisperDecoder(LoadedWhisper("model", "", model, processor), DecodingOptions(fallback=fallback))
    decoder = with_long_form(plain, batch_size)  # as evaluate reads the model: a student cuts inputs over its chunk
    total = EditCounts()
    for item in transcribe_utterances(decoder, utterances, batch_size):
        total = total + utterance_counts(item.utterance.text or "", item.transcript.text)
    return total.cer
