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


def save_model_dir(model, processor, target: Path, extra=None) -> None:
    """Write a complete model dir at `target` atomically; `extra(folder)` may add files before the rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        processor.feature_extractor.save_pretrained(staging)
        if extra is not None:
            extra(staging)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_checkpoint(target: Path, model, processor, optimizer, scheduler, state: TrainState) -> None:
    def extra(folder: Path) -> None:
        (folder / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()},
            folder / OPTIMIZER_FILE,
        )

    save_model_dir(model, processor, target, extra)


def load_checkpoint_state(folder: Path, optimizer, scheduler) -> TrainState:
    saved = torch.load(folder / OPTIMIZER_FILE, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    return TrainState(**json.loads((folder / STATE_FILE).read_text()))


def is_complete_checkpoint(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file()
