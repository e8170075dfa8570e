"""JSON lines that survive being killed: appended row by row, read back ignoring a torn last line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """All complete rows of `path` (none if it does not exist). A last line without its newline was cut off
    by a kill mid-write: it is dropped, and the file truncated to its last complete row so appends stay valid."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
    return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]


def append_jsonl(handle, row: dict) -> None:
    """Write one row and flush it to the OS, so a killed process loses at most the row being written."""
    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()


def write_jsonl_atomic(path: Path, rows: Iterable[dict]) -> None:
    """Replace `path` with `rows` in one rename: readers see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
