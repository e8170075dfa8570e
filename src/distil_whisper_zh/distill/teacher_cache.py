"""The teacher's top-k logits, computed once per clip and reused every epoch.

The teacher is frozen and its input (encoder states of a clip, the clip's label tokens) never changes, so its
distribution at every label position is the same in every epoch. Half of a cached distillation step is the
teacher's decoder forward (its cross-attention projects all 1,500 encoder positions in each of its layers);
storing the k largest logits per position (float16 values + int32 token ids, a few KB per clip) removes it.
The KL term is then taken over those k tokens (see losses.top_k_kl_divergence).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import Utterance
from ..errors import DwzError
from ..fingerprint import audio_stamp, clips_fingerprint, digest
from ..training.cache import RECORD_SUFFIX, PartialArrays, encoder_fingerprint


def teacher_fingerprint(model: torch.nn.Module) -> str:
    return encoder_fingerprint(model)  # the same weight hash, over the whole model


class TeacherTopK:
    """key -> (positions, k) float16 logits and int32 token ids, memory-mapped from `<folder>/<name>.*.npy`."""

    def __init__(self, values_path: Path, keys: list[str]):
        self.index = {key: i for i, key in enumerate(keys)}
        self.values = np.load(values_path, mmap_mode="r")
        self.ids = np.load(values_path.with_name(values_path.name.replace(".values", ".ids")), mmap_mode="r")

    @property
    def k(self) -> int:
        return self.values.shape[-1]

    def get(self, keys: list[str], positions: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, positions, k) logits (float32) and token ids (int64) of `keys`, cut to `positions`."""
        rows = [self.index[key] for key in keys]
        values = torch.from_numpy(np.stack([self.values[r, :positions] for r in rows])).float()
        ids = torch.from_numpy(np.stack([self.ids[r, :positions] for r in rows])).long()
        return values.to(device), ids.to(device)

    @classmethod
    def build(
        cls,
        folder: Path,
        teacher: torch.nn.Module,
        utterances: list[Utterance],
        label_ids: list[list[int]],
        k: int,
        batches: list[list[int]],
        forward: Callable[[list[int]], torch.Tensor],
    ) -> TeacherTopK:
        """Run `forward(indices) -> (batch, positions, vocab) logits` over `batches` and keep the top k.

        Reuses an earlier build of the same clips (ids and audio files), labels, k and teacher weights, and copies
        from builds of other clips the rows of the clips whose audio and labels are the same.
        """
        vocab = teacher.config.vocab_size
        if not 1 <= k <= vocab:
            raise DwzError(f"--teacher-top-k must be between 1 and the vocabulary size {vocab}, got {k}")
        keys = [u.id for u in utterances]
        clips = clips_fingerprint(utterances, with_text=False)
        weights = teacher_fingerprint(teacher)
        name = hashlib.sha256(json.dumps([keys, clips, label_ids, k]).encode())
        name.update(weights.encode())
        values_path = folder / f"teacher-top{k}-{name.hexdigest()[:16]}.values.npy"
        ids_path = values_path.with_name(values_path.name.replace(".values", ".ids"))
        if values_path.is_file() and ids_path.is_file():
            return cls(values_path, keys)
        folder.mkdir(parents=True, exist_ok=True)
        shape = (len(keys), max(len(ids) for ids in label_ids) - 1, k)
        rows = [[u.id, audio_stamp(u), ids] for u, ids in zip(utterances, label_ids, strict=True)]
        files = {"values": (values_path, shape, np.float16), "ids": (ids_path, shape, np.int32)}
        arrays = PartialArrays(files, digest(weights, k), rows)
        arrays.borrow(f"teacher-top{k}-*.values{RECORD_SUFFIX}")
        todo = [left for batch in batches if (left := [i for i in batch if i not in arrays.done])]
        with (
            torch.inference_mode(),
            tqdm(total=len(keys), initial=len(keys) - sum(map(len, todo)), desc=f"teacher top-{k}", unit="clip") as bar,
        ):
            for batch in todo:
                top = forward(batch).float().topk(k, dim=-1)
                arrays.write(batch, values=top.values.cpu().numpy(), ids=top.indices.cpu().numpy())
                bar.update(len(batch))
        arrays.finish()  # the values file is renamed last: its presence means both are complete
        return cls(values_path, keys)
