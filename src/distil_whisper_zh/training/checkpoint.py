"""Checkpoints that are never half-written: saved to a temporary folder, then renamed into place."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..files import write_atomically

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


def save_model_dir(model, processor, target: Path) -> None:
    """Write a complete model dir at `target` atomically."""
    write_atomically(target, lambda folder: write_model_files(model, processor, folder))


def save_checkpoint(target: Path, write_model, optimizer, scheduler, state: TrainState) -> None:
    """`write_model(folder)` writes the model files; the optimizer, scheduler, RNG and step go beside them."""

    def write(folder: Path) -> None:
        write_model(folder)
        (folder / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        rng = {"torch": torch.get_rng_state()}
        torch.save(
            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng},
            folder / OPTIMIZER_FILE,
        )

    write_atomically(target, write)


def load_checkpoint_state(folder: Path, optimizer, scheduler) -> TrainState:
    saved = torch.load(folder / OPTIMIZER_FILE, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    return TrainState(**json.loads((folder / STATE_FILE).read_text()))


def is_complete_checkpoint(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file()


MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
)


def publish_model_files(chosen: Path, out: Path) -> None:
    """OUT itself becomes the chosen checkpoint's model dir: every file is copied beside its final name and
    flushed first, then all are renamed into place (OUT also holds checkpoints/ and logs, so it cannot be swapped
    whole). A stop in between leaves a mix for a moment; rerunning the command publishes the same files again."""
    staged = []
    for name in MODEL_FILES:
        if (chosen / name).is_file():
            temporary = out / f".{name}.publishing"
            shutil.copy2(chosen / name, temporary)
            with temporary.open("rb") as handle:
                os.fsync(handle.fileno())
            staged.append((temporary, out / name))
    for temporary, final in staged:
        temporary.replace(final)
