"""Encoder states computed once and reused every epoch (the frozen-encoder shortcut).

With the encoder frozen, its output for a clip never changes, so the most expensive part of a training step
(the encoder over 30 s of audio) is done once per clip instead of once per epoch. States are stored as float16
in a memory-mapped .npy under the output folder, so a resumed run reuses them too. Building is itself resumable:
the states go into a `.partial` file whose finished clips are listed beside it after every batch, so a stop in the
middle (an hour of encoder passes for a few thousand clips on a CPU) costs at most one batch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..audio import SAMPLE_RATE
from ..data import Utterance
from ..decoding import batches_by_length
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
    ) -> EncoderCache:
        """Compute (or reuse, if the same clips were cached before) the states of every utterance; view > 0 is a
        SpecAugment-masked view of the inputs (see augment.py), view 0 the clean one."""
        keys = [u.id for u in utterances]
        digest = hashlib.sha256("\n".join(keys).encode())
        digest.update(encoder_fingerprint(encoder).encode())  # another encoder's states are never reused
        if view:
            digest.update(f"view {view}: {policy!r}, masking v{MASKING_VERSION}".encode())
            name = f"{name}-view{view}"
        path = folder / f"{name}-{digest.hexdigest()[:16]}.npy"
        keys_path = path.with_suffix(".keys.json")
        if path.is_file() and keys_path.is_file() and json.loads(keys_path.read_text()) == keys:
            return cls(path, keys)
        folder.mkdir(parents=True, exist_ok=True)
        shape = (len(keys), encoder.config.max_source_positions, encoder.config.d_model)
        partial = path.with_name(f".{path.name}.partial")
        progress = partial.with_name(f"{partial.name}.done.json")
        done = _finished_keys(partial, progress, shape)
        states = np.lib.format.open_memmap(
            partial, mode="r+" if done else "w+", dtype=np.float16, shape=None if done else shape
        )
        index = {key: i for i, key in enumerate(keys)}
        todo = [u for u in utterances if u.id not in done]
        with torch.inference_mode(), tqdm(total=len(keys), initial=len(done), desc=f"cache {name}", unit="clip") as bar:
            for batch in batches_by_length(todo, batch_size):
                audio = [u.load() for u in batch]
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
                for utterance, row in zip(batch, output.float().cpu().numpy(), strict=True):
                    states[index[utterance.id]] = row
                states.flush()  # the rows are on disk before the list says they are
                done.update(u.id for u in batch)
                _write_text_atomically(progress, json.dumps(sorted(done)))
                bar.update(len(batch))
        del states
        partial.replace(path)
        keys_path.write_text(json.dumps(keys))
        progress.unlink(missing_ok=True)
        return cls(path, keys)


def _finished_keys(partial: Path, progress: Path, shape: tuple[int, ...]) -> set[str]:
    """Clips an interrupted build already wrote to `partial` (empty: start afresh)."""
    if not (partial.is_file() and progress.is_file()):
        return set()
    try:
        finished = set(json.loads(progress.read_text()))
        on_disk = np.load(partial, mmap_mode="r").shape
    except (ValueError, OSError):
        return set()  # a progress list or partial file cut short: the build starts again
    return finished if on_disk == shape else set()


def _write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


class EncoderViews:
    """A clean cache and its augmented views: in epoch e each clip is read from the view `clip_view` names."""

    def __init__(self, views: list[EncoderCache]):
        self.views = views

    def get(self, keys: list[str], epoch: int | None, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        extra = len(self.views) - 1
        rows = np.stack([self.views[clip_view(key, epoch, extra)].row(key) for key in keys])
        return torch.from_numpy(rows).to(device=device, dtype=dtype)
