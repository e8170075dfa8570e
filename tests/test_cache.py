"""The encoder cache: built once, reused, and resumed after a stop in the middle of building it."""

import json

import numpy as np
import pytest
import torch

from distil_whisper_zh.data import Utterance, load_dataset_spec
from distil_whisper_zh.distill.teacher_cache import TeacherTopK
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


def _clips(*ids, audio=0.0):
    """Clips held in memory: `audio` decides their samples, and so their audio stamps."""
    return [Utterance(id=key, audio=np.full(1600, audio, dtype=np.float32)) for key in ids]


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


def test_a_cache_of_more_clips_copies_the_rows_of_clips_cached_before(tiny_model_dir, small_manifest, tmp_path):
    loaded = load_whisper(str(tiny_model_dir))
    utterances = load_dataset_spec(str(small_manifest)).utterances
    encoder = loaded.model.model.encoder
    whole = _build(tmp_path / "whole", _StopsAfter(encoder), loaded, utterances)
    _build(tmp_path / "grown", _StopsAfter(encoder), loaded, utterances[:2])
    grown = _StopsAfter(encoder)
    cache = _build(tmp_path / "grown", grown, loaded, utterances)
    assert grown.clips == 1  # only the clip the first cache did not have
    for u in utterances:
        np.testing.assert_array_equal(cache.row(u.id), whole.row(u.id))

    # a clip whose audio was made again under its id is encoded again, not copied
    utterances[0].audio.write_bytes(utterances[2].audio.read_bytes())
    remade = load_dataset_spec(str(small_manifest)).utterances
    again = _StopsAfter(encoder)
    cache = _build(tmp_path / "grown", again, loaded, [remade[0], remade[2]])
    assert again.clips == 1
    np.testing.assert_array_equal(cache.row(remade[0].id), whole.row(remade[2].id))
    # a view of the clips borrows nothing from the clean states
    view = _StopsAfter(encoder)
    EncoderCache.build(tmp_path / "grown", "enc", view, loaded.processor, utterances, 1, torch.device("cpu"), view=1)
    assert view.clips == 3


def test_records_cut_short_of_another_layout_or_with_a_damaged_array_lend_nothing(
    tiny_model_dir, small_manifest, tmp_path
):
    loaded = load_whisper(str(tiny_model_dir))
    utterances = load_dataset_spec(str(small_manifest)).utterances
    encoder = loaded.model.model.encoder
    _build(tmp_path, _StopsAfter(encoder), loaded, utterances[:2])
    (record,) = tmp_path.glob("enc-*.clips.json")
    lender = json.loads(record.read_text())
    (tmp_path / lender["files"]["states"]).write_bytes(b"not an array")  # damaged after it was recorded
    old_layout = {"settings": lender["settings"], "clips": lender["clips"]}  # no "files"
    for name, text in (("old", json.dumps(old_layout)), ("list", "[1, 2]"), ("cut", '{"settings": "')):
        (tmp_path / f"enc-{name}.clips.json").write_text(text)
    again = _StopsAfter(encoder)
    _build(tmp_path, again, loaded, utterances)
    assert again.clips == 3


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


def test_a_stopped_teacher_top_k_build_resumes_by_batch(tiny_model_dir, tmp_path):
    teacher = load_whisper(str(tiny_model_dir)).model
    keys, label_ids = ["a", "b", "c"], [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11, 12]]
    clips = _clips(*keys)
    vocab = teacher.config.vocab_size
    calls = []

    def logits(indices, stop_at=None):
        if len(calls) == stop_at:
            raise KeyboardInterrupt("stopped")
        calls.append(indices)
        length = max(len(label_ids[i]) for i in indices) - 1
        generator = torch.Generator().manual_seed(sum(indices))
        return torch.randn(len(indices), length, vocab, generator=generator)

    def build(folder, forward):
        return TeacherTopK.build(folder, teacher, clips, label_ids, 4, [[0, 1], [2]], forward)

    whole = build(tmp_path / "whole", logits)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "resumed", lambda indices: logits(indices, stop_at=3))  # the 2nd batch of this build
    assert calls[2:] == [[0, 1]]
    resumed = build(tmp_path / "resumed", logits)
    assert calls[3:] == [[2]]  # the first batch is not run again
    for key in keys:
        a, b = whole.get([key], 4, torch.device("cpu")), resumed.get([key], 4, torch.device("cpu"))
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_audio_made_again_under_the_same_ids_gets_a_new_cache(tiny_model_dir, small_manifest, tmp_path):
    loaded = load_whisper(str(tiny_model_dir))
    utterances = load_dataset_spec(str(small_manifest)).utterances
    encoder = loaded.model.model.encoder
    first = _build(tmp_path / "cache", _StopsAfter(encoder), loaded, utterances)
    before = np.array(first.row(utterances[0].id))
    # the first clip's file is replaced by another clip's audio under the same name and id
    utterances[0].audio.write_bytes(utterances[1].audio.read_bytes())
    again = _StopsAfter(encoder)
    remade = _build(tmp_path / "cache", again, loaded, load_dataset_spec(str(small_manifest)).utterances)
    assert again.clips == 1  # not the old states of the clip made again (the other two are copied)
    assert not np.array_equal(np.array(remade.row(utterances[0].id)), before)
    np.testing.assert_array_equal(remade.row(utterances[0].id), remade.row(utterances[1].id))
    assert len(list((tmp_path / "cache").glob("enc-*.npy"))) == 2


def test_teacher_top_k_cache_is_keyed_by_the_clips_audio(tiny_model_dir, tmp_path):
    teacher = load_whisper(str(tiny_model_dir)).model
    calls = []

    def forward(indices):
        calls.append(indices)
        return torch.randn(len(indices), 2, teacher.config.vocab_size)

    for audio in (0.0, 0.0, 0.5):
        TeacherTopK.build(tmp_path, teacher, _clips("a", audio=audio), [[1, 2, 3]], 4, [[0]], forward)
    assert len(calls) == 2  # built, reused, built again for other audio


def test_teacher_top_k_of_more_clips_copies_the_rows_of_clips_with_the_same_audio_and_labels(tiny_model_dir, tmp_path):
    teacher = load_whisper(str(tiny_model_dir)).model
    calls = []

    def forward(indices):
        calls.append(indices)
        return torch.randn(len(indices), 3, teacher.config.vocab_size, generator=torch.Generator().manual_seed(7))

    first = TeacherTopK.build(tmp_path, teacher, _clips("a", "b"), [[1, 2, 3, 4], [5, 6]], 4, [[0, 1]], forward)
    label_ids = [[1, 2, 3, 4], [5, 7], [8, 9, 10]]  # b's label has changed, c is new
    grown = TeacherTopK.build(tmp_path, teacher, _clips("a", "b", "c"), label_ids, 4, [[0, 1], [2]], forward)
    assert calls[1:] == [[1], [2]]  # a's row copied: only b (another label) and c are run
    a_first, a_grown = first.get(["a"], 3, torch.device("cpu")), grown.get(["a"], 3, torch.device("cpu"))
    assert all(torch.equal(x, y) for x, y in zip(a_first, a_grown, strict=True))
    TeacherTopK.build(tmp_path, teacher, _clips("a", "b", "c", audio=0.5), label_ids, 4, [[0, 1, 2]], forward)
    assert calls[3:] == [[0, 1, 2]]  # other audio: nothing to copy
