"""`dwz split`: a deterministic train/dev split of a dataset by utterance id, written as two manifests."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tyro.conf import Positional

from .data import Utterance, load_dataset_spec
from .errors import DwzError
from .jsonl import write_jsonl_atomic
from .skipped import SKIPPED_FILE, SkipLog


@dataclass
class SplitOptions:
    """Options of `dwz split`."""

    data: Positional[str]
    """dataset spec"""
    out: str
    """folder for train.jsonl and dev.jsonl"""
    dev_fraction: float = 0.2
    """share of clips in dev.jsonl"""
    seed: str = "dwz"
    """salt of the id hash (another seed, another split)"""

    def __post_init__(self) -> None:
        if not 0 < self.dev_fraction < 1:
            raise DwzError(f"--dev-fraction must be between 0 and 1, got {self.dev_fraction}")


def in_dev(utterance_id: str, dev_fraction: float, seed: str) -> bool:
    """Stable for an id whatever else is in the dataset: a hash of the id, not a shuffle."""
    digest = hashlib.sha256(f"{seed}:{utterance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < dev_fraction


def manifest_row(utterance: Utterance) -> dict:
    if not isinstance(utterance.audio, Path):
        raise DwzError(f"{utterance.id}: only datasets of audio files can be split into manifests")
    row = {"id": utterance.id, "audio": str(utterance.audio.resolve()), "text": utterance.text}
    if utterance.duration is not None:
        row["duration"] = utterance.duration
    return {**row, **utterance.fields}


def split_dataset(options: SplitOptions) -> tuple[int, int]:
    dataset = load_dataset_spec(options.data)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = [u for u in dataset.utterances if in_dev(u.id, options.dev_fraction, options.seed)]
    dev_ids = {u.id for u in dev}
    train = [u for u in dataset.utterances if u.id not in dev_ids]
    write_jsonl_atomic(out / "train.jsonl", (manifest_row(u) for u in train))
    write_jsonl_atomic(out / "dev.jsonl", (manifest_row(u) for u in dev))
    log = SkipLog()
    log.extend(dataset.skipped)  # bad manifest rows and missing files: listed, not silently dropped
    log.write(out / SKIPPED_FILE)
    if log.items:
        print(f"dwz split: {log.summary()}, listed in {out / SKIPPED_FILE}", file=sys.stderr)
    (out / "split.json").write_text(
        json.dumps(
            {
                "data": options.data,
                "dev_fraction": options.dev_fraction,
                "seed": options.seed,
                "train": len(train),
                "dev": len(dev),
                "skipped": len(log.items),
            }
        )
        + "\n"
    )
    return len(train), len(dev)
