"""Bad input, written down: which clips a command could not use, and why (the record only; `screening` decides).

Every data-reading command records each clip it leaves out as a `Skipped` row in a `SkipLog`, writes them to
`skipped.jsonl` next to its output, and goes on with the good clips. It fails only when nothing usable is left, or
at the first bad clip under `--strict`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import DwzError
from .jsonl import write_jsonl_atomic

SKIPPED_FILE = "skipped.jsonl"
SHOWN_IN_ERRORS = 3  # bad clips named in an error message; the rest are in skipped.jsonl


@dataclass(frozen=True)
class Skipped:
    """One clip (or manifest row) a command left out."""

    id: str  # utterance id, or "LINE n" for a manifest row that gave no utterance
    path: str | None  # the audio file (or the manifest) concerned
    kind: str  # short tag to count by: missing, unreadable, empty, not_audio, unsupported_format, undecodable,
    # truncated, too_short, too_long, silent, no_reference, empty_reference, no_transcript, bad_row
    reason: str  # what is wrong and what to do, for a person
    dataset: str | None = None

    def line(self) -> str:
        return f"{self.path or self.id}: {self.reason}"


class SkipLog:
    """The skipped clips of one command run, in the order found."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.items: list[Skipped] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Skipped) -> None:
        self.items.append(item)

    def extend(self, items: Iterable[Skipped]) -> None:
        self.items.extend(items)

    def add_strictly(self, item: Skipped) -> None:
        """Record `item`; under --strict stop right away (a clip that failed while decoding)."""
        self.add(item)
        self.check_strict()

    def check_strict(self) -> None:
        """Under --strict, any bad input is an error that names the first few."""
        if self.strict and self.items:
            raise DwzError(
                f"--strict: {len(self.items)} bad input(s): {self.examples()} "
                "(fix or remove them, or drop --strict to skip them and list them in skipped.jsonl)"
            )

    def examples(self, items: list[Skipped] | None = None) -> str:
        """The first few of `items` (default: all recorded), one clause each, for an error message."""
        items = self.items if items is None else items
        shown = "; ".join(item.line() for item in items[:SHOWN_IN_ERRORS])
        more = len(items) - SHOWN_IN_ERRORS
        return shown + (f"; and {more} more" if more > 0 else "")

    def counts(self) -> dict[str, int]:
        return dict(Counter(item.kind for item in self.items))

    def for_dataset(self, dataset: str) -> list[Skipped]:
        return [item for item in self.items if item.dataset == dataset]

    def write(self, path: Path) -> Path:
        """Write every row to `path` (replacing it, atomically; an empty file says nothing was skipped)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomic(path, [asdict(item) for item in self.items])
        return path

    def summary(self) -> str:
        """One line for the terminal: how many, of which kinds."""
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts().items()))
        return f"skipped {len(self.items)} bad input(s) ({kinds})" if self.items else "skipped nothing"

    def nothing_usable(self, what: str) -> DwzError:
        """The error for a run where every clip was bad."""
        return DwzError(f"{what}: nothing usable, every clip was skipped: {self.examples()}")
