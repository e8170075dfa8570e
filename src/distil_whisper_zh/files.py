"""Folders written whole or not at all, and never over something that is not ours to replace."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import DwzError

MODEL_MARKERS = ("config.json", "model.bin", "trainer_state.json")


def check_replaceable(target: Path) -> None:
    """A folder we may overwrite: missing, empty, or a model folder (as this toolkit writes them)."""
    if not target.exists():
        return
    if not target.is_dir():
        raise DwzError(f"{target} exists and is not a folder; choose another --out")
    if any(target.iterdir()) and not any((target / marker).is_file() for marker in MODEL_MARKERS):
        raise DwzError(
            f"{target} is a non-empty folder that is not a model; refusing to replace it (choose another --out)"
        )


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """`write(folder)` fills a temporary sibling of `target`, which then replaces `target` by renames: a reader
    (or a resumed run) sees the old complete folder or the new complete folder, never half of one."""
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a model folder is meant to be shared
    try:
        write(staging)
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
