"""The encoder cache: built once, reused, and resumed after a stop in the middle of building it."""

import numpy as np
import pytest
import torch

from distil_whisper_zh.data import load_dataset_spec
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.training.cache import EncoderCache


class _StopsAfter(torch.nn.Module):
    """The tiny model's encoder, counting the clips it encodes; raises once it has done `budget` batches."""

    def __init__(self, encoder, budget: int | None = None):
        super().__init__()
        self.encoder, self.config, self.budget, self.clips = encoder, encoder.config, budget, 0

    @property
    def dtype(self):
        return self.encoder.dtype

    def forward(self, features):
        if self.budget is not None and self.budget <= 0:
            raise KeyboardInterrupt("stopped")
        self.budget = None if self.budget is None else self.budget - 1
        self.clips += len(features)
        return self.encoder(features)


def _build(folder, encoder, loaded, utterances):
    return EncoderCache.build(folder, "enc", encoder, loaded.processor, utterances, 1, torch.device("cpu"))


def test_a_stopped_build_resumes_where_it_stopped(tiny_model_dir, small_manifest, tmp_path):
    loaded = load_whisper(str(tiny_model_dir))
    utterances = load_dataset_spec(str(small_manifest)).utterances
    assert len(utterances) == 3
    encoder = loaded.model.model.encoder
    whole = _build(tmp_path / "whole", _StopsAfter(encoder), loaded, utterances)

    stopping = _StopsAfter(encoder, budget=2)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path / "resumed", stopping, loaded, utterances)
    assert stopping.clips == 2 and not list((tmp_path / "resumed").glob("*.npy"))  # no finished file yet
    again = _StopsAfter(encoder)
    resumed = _build(tmp_path / "resumed", again, loaded, utterances)
    assert again.clips == 1  # only the clip the stop left out
    for u in utterances:
        np.testing.assert_array_equal(resumed.row(u.id), whole.row(u.id))
    assert sorted(p.name for p in (tmp_path / "resumed").iterdir()) == sorted(
        p.name for p in (tmp_path / "whole").iterdir()
    )  # the partial file and its progress list are gone

    reused = _StopsAfter(encoder)
    _build(tmp_path / "resumed", reused, loaded, utterances)
    assert reused.clips == 0  # a finished cache is read, not rebuilt


def test_a_cut_progress_list_starts_the_build_again(tiny_model_dir, small_manifest, tmp_path):
    loaded = load_whisper(str(tiny_model_dir))
    utterances = load_dataset_spec(str(small_manifest)).utterances
    encoder = loaded.model.model.encoder
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, _StopsAfter(encoder, budget=1), loaded, utterances)
    (progress,) = tmp_path.glob(".*.done.json")
    progress.write_text('["cut sh')
    again = _StopsAfter(encoder)
    _build(tmp_path, again, loaded, utterances)
    assert again.clips == 3
