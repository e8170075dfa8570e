"""Encoder states computed once and reused every epoch (the frozen-encoder shortcut).

With the encoder frozen, its output for a clip never changes, so the most expensive part of a training step
(the encoder over 30 s of audio) is done once per clip instead of once per epoch. States are stored as float16
in a memory-mapped .npy under the output folder, so a resumed run reuses them too. Building is itself resumable:
the states go into a `.partial` file whose finished clips are listed beside it after every batch, so a stop in the
middle (an hour of encoder passes for a few thousand clips on a CPU) costs at most one batch. A cache of other
clips made with the same features, weights and view (its augmentation named by `audio_key`, which says what else
a view's audio depends on) lends the rows of the clips both have (the same id and audio file), so adding clips to
a corpus encodes only the new ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import SAMPLE_RATE
from ..data import Utterance
from ..decoding import batches_by_length
from ..fingerprint import audio_stamp, clips_fingerprint, digest, extractor_settings
from .augment import (
    DEFAULT_POLICY,
    FRAMES_PER_SECOND,
    MASKING_VERSION,
    SpecAugmentPolicy,
    clip_view,
    spec_augment,
    view_seed,
)


def cache_bytes(num_clips: int, positions: int, d_model: int) -> int:
    """Disk (and page-cache) size of a float16 cache."""
    return num_clips * positions * d_model * 2


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """A hash of the encoder's weights: the cache of one model is not valid for another."""
    digest = hashlib.sha256()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).numpy().tobytes())
    return digest.hexdigest()


class EncoderCache:
    """key -> encoder states (positions, d_model) float16, backed by `folder/<name>.npy` + `<name>.keys.json`."""

    def __init__(self, path: Path, keys: list[str]):
        self.path = path
        self.index = {key: i for i, key in enumerate(keys)}
        self.states = np.load(path, mmap_mode="r")

    def row(self, key: str) -> np.ndarray:
        return self.states[self.index[key]]

    def get(self, keys: list[str], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        rows = np.stack([self.row(key) for key in keys])
        return torch.from_numpy(rows).to(device=device, dtype=dtype)

    @staticmethod
    def settings_of(encoder: torch.nn.Module, processor, view: int, policy: SpecAugmentPolicy, audio_key: str) -> str:
        """What decides a clip's states besides its audio: features, encoder weights and, for a view, its masks and
        augmentation (`audio_key`)."""
        view_settings = [view, repr(policy), MASKING_VERSION, audio_key] if view else []
        return digest(extractor_settings(processor), encoder_fingerprint(encoder), *view_settings)

    @staticmethod
    def path_for(
        folder: Path,
        name: str,
        encoder: torch.nn.Module,
        processor,
        utterances: list[Utterance],
        view: int = 0,
        policy: SpecAugmentPolicy = DEFAULT_POLICY,
        audio_key: str = "",
        settings: str | None = None,
    ) -> Path:
        """The cache file of these clips (ids and audio files as they are now) and settings (`settings_of`, given
        or computed): any change makes another file, so a cache is never reused for other inputs."""
        settings = settings or EncoderCache.settings_of(encoder, processor, view, policy, audio_key)
        name = f"{name}-view{view}" if view else name
        return folder / f"{name}-{digest(clips_fingerprint(utterances, with_text=False), settings)[:16]}.npy"

    @classmethod
    def build(
        cls,
        folder: Path,
        name: str,
        encoder: torch.nn.Module,
        processor,
        utterances: list[Utterance],
        batch_size: int,
        device: torch.device,
        view: int = 0,
        policy: SpecAugmentPolicy = DEFAULT_POLICY,
        load: Callable[[Utterance], np.ndarray] | None = None,
        audio_key: str = "",
    ) -> EncoderCache:
        """Compute (or reuse, if the same clips were cached before) the states of every utterance; view > 0 is a
        SpecAugment-masked view of the inputs (see augment.py), view 0 the clean one. `load(utterance)` gives the
        view's audio (an augmented copy, see audio_augment.py; `audio_key` names the augmentation for the key)."""
        keys = [u.id for u in utterances]
        settings = cls.settings_of(encoder, processor, view, policy, audio_key)
        path = cls.path_for(folder, name, encoder, processor, utterances, view, settings=settings)
        keys_path = path.with_suffix(".keys.json")
        if path.is_file() and keys_path.is_file() and json.loads(keys_path.read_text()) == keys:
            return cls(path, keys)
        folder.mkdir(parents=True, exist_ok=True)
        shape = (len(keys), encoder.config.max_source_positions, encoder.config.d_model)
        clips = [[u.id, audio_stamp(u)] for u in utterances]
        arrays = PartialArrays({"states": (path, shape, np.float16)}, settings, clips)
        arrays.borrow(f"{name}-*{RECORD_SUFFIX}")
        index = {key: i for i, key in enumerate(keys)}
        todo = [u for u in utterances if index[u.id] not in arrays.done]
        with (
            torch.inference_mode(),
            tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"cache {name}", unit="clip") as bar,
        ):
            for batch in batches_by_length(todo, batch_size):
                audio = [load(u) if load else u.load() for u in batch]
                features = processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
                features = features.input_features
                if view:
                    features = torch.stack(
                        [
                            spec_augment(f, len(a) * FRAMES_PER_SECOND // SAMPLE_RATE, view_seed(u.id, view), policy)
                            for f, a, u in zip(features, audio, batch, strict=True)
                        ]
                    )
                output = encoder(features.to(device, encoder.dtype)).last_hidden_state
                arrays.write([index[u.id] for u in batch], states=output.float().cpu().numpy())
                bar.update(len(batch))
        arrays.finish()
        keys_path.write_text(json.dumps(keys))
        return cls(path, keys)


RECORD_SUFFIX = ".clips.json"  # beside a finished set of arrays: its settings, files and each row's clip
RECORD_FIELDS = ("settings", "files", "clips")
BORROWED_ROWS_PER_WRITE = 32


def _read_record(path: Path) -> dict | None:
    """A finished set's record, or None for one cut short or of another layout (which lends nothing)."""
    try:
        record = json.loads(path.read_text())
    except (ValueError, OSError):
        return None
    return record if isinstance(record, dict) and all(field in record for field in RECORD_FIELDS) else None


class PartialArrays:
    """.npy files filled a batch of rows at a time, under `.NAME.partial` names until `finish` renames them.

    After every batch the rows are flushed and then listed in a `.done.json` beside the first file, so a build
    stopped in the middle starts again where it stopped (`done`), losing at most one batch. A finished set is
    recorded beside its first file (`RECORD_SUFFIX`) with what it was made with (`settings`: weights, options)
    and each row's clip (`clips`: id and audio stamp, and whatever else decides the row), so that a later build with
    the same settings can `borrow` the rows of the clips both have.
    """

    def __init__(self, arrays: dict[str, tuple[Path, tuple[int, ...], type]], settings: str, clips: list[list]):
        self.settings, self.clips = settings, clips
        self.final = {name: path for name, (path, _, _) in arrays.items()}
        first_final = next(iter(self.final.values()))
        self.record = first_final.with_name(first_final.name.removesuffix(".npy") + RECORD_SUFFIX)
        self.partial = {name: path.with_name(f".{path.name}.partial") for name, path in self.final.items()}
        first = next(iter(self.partial.values()))
        self.progress = first.with_name(f"{first.name}.done.json")
        self.done = self._finished_rows({name: shape for name, (_, shape, _) in arrays.items()})
        self.arrays = {
            name: np.lib.format.open_memmap(self.partial[name], mode="r+")
            if self.done
            else np.lib.format.open_memmap(self.partial[name], mode="w+", dtype=dtype, shape=shape)
            for name, (_, shape, dtype) in arrays.items()
        }

    def write(self, rows: list[int], **values: np.ndarray) -> None:
        """Store `values[name]` (one entry per row, cut to its own length) at `rows`, then record them as done."""
        for name, array in values.items():
            self.arrays[name][rows, : array.shape[1]] = array
        for array in self.arrays.values():
            array.flush()  # the rows are on disk before the list says they are
        self.done.update(rows)
        temporary = self.progress.with_name(f"{self.progress.name}.tmp")
        temporary.write_text(json.dumps(sorted(self.done)))
        temporary.replace(self.progress)

    def finish(self) -> None:
        """Rename every file into place, the first one given last (its presence means all are complete)."""
        for array in self.arrays.values():
            array.flush()
        self.arrays.clear()
        for name in reversed(list(self.final)):
            self.partial[name].replace(self.final[name])
        self.progress.unlink(missing_ok=True)
        files = {name: path.name for name, path in self.final.items()}
        temporary = self.record.with_name(f"{self.record.name}.tmp")
        temporary.write_text(json.dumps({"settings": self.settings, "files": files, "clips": self.clips}))
        temporary.replace(self.record)

    def borrow(self, pattern: str) -> None:
        """Copy in the rows that finished sets beside this one (their records matching `pattern`), made with the
        same settings and the same array names, hold for the same clips."""
        wanted = {json.dumps(clip): row for row, clip in enumerate(self.clips) if row not in self.done}
        for record in sorted(self.record.parent.glob(pattern)):
            lender = _read_record(record)
            if not wanted or record == self.record or not lender or lender["settings"] != self.settings:
                continue
            files = {name: record.with_name(file) for name, file in lender["files"].items()}
            if files.keys() != self.final.keys() or not all(path.is_file() for path in files.values()):
                continue
            try:
                sources = {name: np.load(path, mmap_mode="r") for name, path in files.items()}
            except (ValueError, OSError):
                continue  # a lender's array cut short or damaged lends nothing
            lent = [(json.dumps(clip), row) for row, clip in enumerate(lender["clips"])]
            pairs = [(wanted.pop(key), row) for key, row in lent if key in wanted]
            for start in range(0, len(pairs), BORROWED_ROWS_PER_WRITE):
                mine, theirs = zip(*pairs[start : start + BORROWED_ROWS_PER_WRITE], strict=True)
                widths = {name: self.arrays[name].shape[1] for name in sources}
                self.write(
                    list(mine), **{name: np.asarray(a[list(theirs), : widths[name]]) for name, a in sources.items()}
                )
            if pairs:
                tqdm.write(
                    f"{self.record.name.removesuffix(RECORD_SUFFIX)}: {len(pairs)} rows copied from {record.name}"
                )

    def _finished_rows(self, shapes: dict[str, tuple[int, ...]]) -> set[int]:
        """Rows an interrupted build already wrote (empty: start afresh)."""
        if not self.progress.is_file() or not all(path.is_file() for path in self.partial.values()):
            return set()
        try:
            done = set(json.loads(self.progress.read_text()))
            on_disk = {name: np.load(path, mmap_mode="r").shape for name, path in self.partial.items()}
        except (ValueError, OSError):
            return set()  # a progress list or a partial file cut short: the build starts again
        return done if on_disk == shapes else set()


class EncoderViews:
    """A clean cache and its augmented views: the n-th read of a clip comes from the view `clip_view` names."""

    def __init__(self, views: list[EncoderCache]):
        self.views = views

    def get(self, keys: list[str], reads: list[int] | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The states of `keys`, each from the view of its read number (`None`: all clean)."""
        extra = len(self.views) - 1
        reads = reads if reads is not None else [None] * len(keys)
        rows = np.stack(
            [self.views[clip_view(key, read, extra)].row(key) for key, read in zip(keys, reads, strict=True)]
        )
        return torch.from_numpy(rows).to(device=device, dtype=dtype)
