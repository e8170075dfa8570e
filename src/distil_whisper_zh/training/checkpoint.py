"""Checkpoints that are never half-written: saved to a temporary folder, then renamed into place."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    best_cer: float | None = None
    best_step: int | None = None


def write_model_files(model, processor, folder: Path) -> None:
    """Model, tokenizer, feature extractor (preprocessor_config.json) and generation config into `folder`."""
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    processor.feature_extractor.save_pretrained(folder)


def _replace(staging: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def save_model_dir(model, processor, target: Path) -> None:
    """Write a complete model dir at `target` atomically (a temporary sibling, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_model_files(model, processor, staging)
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_checkpoint(target: Path, save_model, optimizer, scheduler, state: TrainState) -> None:
    """`save_model(folder)` writes the model files; the optimizer, scheduler, RNG and step go beside them.
    Everything lands in a temporary folder first and is renamed into `target` complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_model(staging / "model")
        for item in (staging / "model").iterdir():
            item.rename(staging / item.name)
        (staging / "model").rmdir()
        (staging / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        rng = {"torch": torch.get_rng_state()}
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
            staging / OPTIMIZER_FILE,
        )
        _replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_checkpoint_state(folder: Path, optimizer, scheduler) -> TrainState:
    saved = torch.load(folder / OPTIMIZER_FILE, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    return TrainState(**json.loads((folder / STATE_FILE).read_text()))


def is_complete_checkpoint(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file()
