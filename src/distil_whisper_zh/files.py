"""Folders written whole or not at all, and never over something that is not ours to replace."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import DwzError

# Every file a model dir or checkpoint of this toolkit holds (transformers, CTranslate2, training state); a folder
# with anything else in it is not ours to replace.
MODEL_DIR_FILES = frozenset(
    {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "normalizer.json",
        "preprocessor_config.json",
        "processor_config.json",
        "model.bin",
        "vocabulary.json",
        "vocabulary.txt",
        "trainer_state.json",
        "optimizer.pt",
        "adapter_state.pt",
        "run.json",
    }
)


def check_replaceable(target: Path) -> None:
    """A folder we may overwrite: missing, empty, or a model folder as this toolkit writes them (nothing else in
    it: a project folder that happens to hold a config.json is not one)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise DwzError(f"{target} exists and is not a folder; choose another --out")
    foreign = sorted(p.name for p in target.iterdir() if p.name not in MODEL_DIR_FILES or not p.is_file())
    if foreign:
        raise DwzError(
            f"{target} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which a model folder "
            "does not; refusing to replace it (choose another --out, or empty it)"
        )


def fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, and the folders themselves, to disk (before a rename publishes them)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for directory in [*(p for p in folder.rglob("*") if p.is_dir()), folder]:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace the file `path` with `text` by one rename, after the text is on disk."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """`write(folder)` fills a temporary sibling of `target`, which then replaces `target` by renames: a reader
    (or a resumed run) sees the old complete folder or the new complete folder, never half of one."""
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be shared
    try:
        write(staging)
        for path in staging.rglob("*"):  # shared like any file a user writes (some libraries write 0600)
            path.chmod(0o755 if path.is_dir() else 0o644)
        fsync_tree(staging)  # on disk before the rename makes it visible: a crash never publishes empty files
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


def recover_interrupted(target: Path) -> None:
    """A kill between the two renames of `write_atomically` leaves only `.NAME.old`: put it back."""
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.is_dir():
        old.rename(target)
