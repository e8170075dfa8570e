"""Which clips a training step reads: a pure function of (seed, epoch, dataset weights), so a resumed or sharded
run sees exactly the same batches."""

from __future__ import annotations

import math

import torch

from ..data import Utterance
from ..errors import DwzError


def epoch_size(weights: list[float] | None, num_examples: int) -> int:
    """Clips drawn per epoch: each clip as often as its dataset's weight says (once when unweighted)."""
    return num_examples if weights is None else math.floor(sum(weights))


def epoch_order(num_examples: int, epoch: int, seed: int, weights: list[float] | None = None) -> list[int]:
    """This epoch's clip indices, shuffled. A clip of weight w appears floor(w) times, plus once more with
    probability w - floor(w) (drawn from the same seeded stream, so the order is a pure function of its inputs)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if weights is None:
        return torch.randperm(num_examples, generator=generator).tolist()
    w = torch.tensor(weights, dtype=torch.float64)
    repeats = w.floor().long()
    repeats += (torch.rand(len(weights), generator=generator, dtype=torch.float64) < w - repeats).long()
    pool = torch.repeat_interleave(torch.arange(len(weights)), repeats)
    return pool[torch.randperm(len(pool), generator=generator)].tolist()


def global_batches(
    num_examples: int, global_batch: int, epoch: int, seed: int, weights: list[float] | None = None
) -> list[list[int]]:
    """This epoch's batches of example indices, `epoch_size // global_batch` of them, all full (a last, smaller
    batch is dropped; a weighted epoch that drew fewer clips than its expected size wraps around)."""
    order = epoch_order(num_examples, epoch, seed, weights)
    if not order:
        raise DwzError(f"--dataset-weights: epoch {epoch} draws no clip at all; give the datasets larger weights")
    count = max(1, epoch_size(weights, num_examples) // global_batch)
    needed = count * global_batch
    order = (order * math.ceil(needed / max(1, len(order))))[:needed] if len(order) < needed else order
    return [order[i * global_batch : (i + 1) * global_batch] for i in range(count)]


def read_numbers(batches: list[list[int]], epoch: int, weights: list[float] | None = None) -> list[list[int]]:
    """For each slot of an epoch's batches, the how-manieth training read of its clip it is. A clip of weight w
    is drawn up to ceil(w) times an epoch, so its reads in epoch e are numbered ceil(w) * e, ceil(w) * e + 1, ...
    in draw order; an unweighted clip's read number is the epoch."""
    seen: dict[int, int] = {}
    numbers = []
    for batch in batches:
        row = []
        for index in batch:
            stride = 1 if weights is None else max(1, math.ceil(weights[index]))
            row.append(epoch * stride + seen.get(index, 0))
            seen[index] = seen.get(index, 0) + 1
        numbers.append(row)
    return numbers


def example_weights(utterances: list[Utterance], dataset_weights: dict[str, float]) -> list[float] | None:
    """Per-clip sampling weights from `--dataset-weights NAME W` (None when no weights are given; 0: never drawn).

    A clip's dataset is the `dataset` field of its pseudo-label row, or the name of the dataset spec it came from.
    """
    if not dataset_weights:
        return None
    names = [u.fields.get("dataset", "") for u in utterances]
    unknown = sorted(set(dataset_weights) - set(names))
    if unknown:
        known = ", ".join(sorted(set(names)))
        raise DwzError(f"--dataset-weights {unknown[0]} W: no training clips from that dataset (datasets: {known})")
    weights = [dataset_weights.get(name, 1.0) for name in names]
    if not any(weights):
        raise DwzError("--dataset-weights: every training clip has weight 0; give some dataset a positive weight")
    return weights
