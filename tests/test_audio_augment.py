"""Audio augmentations on a real clip: lengths, energy, band limits, determinism; and their place in cache keys."""

import json

import numpy as np
import pytest
import torch
from scipy.signal import welch

from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
from distil_whisper_zh.data import load_dataset_spec
from distil_whisper_zh.distill import DistillOptions, run_distillation
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.training.audio_augment import (
    AUGMENTATIONS,
    AudioAugmentation,
    augment_audio,
    mix_at_snr,
    opus_pass,
    reverberate,
    speed_perturb,
    telephone,
)
from distil_whisper_zh.training.cache import EncoderCache
from distil_whisper_zh.training.options import TrainingOptions


@pytest.fixture(scope="module")
def clip(real_clips):
    return load_audio(real_clips[0]["path"])


def _snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    return 10 * np.log10(np.mean(clean**2) / np.mean((mixed - clean) ** 2))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_changes_the_length_by_its_factor(clip, factor):
    faster = speed_perturb(clip, factor)
    assert abs(len(faster) - len(clip) / factor) <= 2
    assert speed_perturb(clip, 1.0) is clip


def test_noise_is_mixed_at_the_asked_snr(clip):
    noise = np.random.default_rng(0).standard_normal(len(clip)).astype(np.float32)
    for snr in (5.0, 20.0):
        assert _snr_db(clip, mix_at_snr(clip, noise, snr)) == pytest.approx(snr, abs=0.01)


def test_telephone_band_removes_what_a_phone_line_cannot_carry(clip):
    phone = telephone(clip)
    assert len(phone) == len(clip) and phone.dtype == np.float32
    frequencies, before = welch(clip, SAMPLE_RATE, nperseg=1024)
    _, after = welch(phone, SAMPLE_RATE, nperseg=1024)
    high = frequencies > 4500
    assert after[high].sum() < 1e-3 * before[high].sum()  # nothing above the 8-kHz line's Nyquist
    speech = (frequencies > 500) & (frequencies < 3000)
    assert after[speech].sum() > 0.3 * before[speech].sum()  # the speech band is kept


def test_room_and_codec_keep_the_length_and_level(clip):
    for out in (reverberate(clip, np.random.default_rng(0)), opus_pass(clip)):
        assert len(out) == len(clip) and out.dtype == np.float32
        assert 0.3 < np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(clip**2)) < 3.0
        assert not np.allclose(out, clip, atol=1e-3)


def test_a_view_is_the_same_for_the_same_seed_and_differs_for_another(clip, real_clips):
    others = [load_audio(c["path"]) for c in real_clips[1:4]]
    policy = AudioAugmentation(AUGMENTATIONS)
    a = augment_audio(clip, 7, policy, lambda rng: others)
    np.testing.assert_array_equal(a, augment_audio(clip, 7, policy, lambda rng: others))
    b = augment_audio(clip, 8, policy, lambda rng: others)
    assert len(a) != len(b) or not np.array_equal(a, b)
    assert np.abs(a).max() <= 1.0
    np.testing.assert_array_equal(augment_audio(clip, 7, AudioAugmentation()), clip)  # nothing asked: clean


def test_unknown_names_and_missing_views_are_refused():
    with pytest.raises(DwzError, match="--audio-augment 'echo': choose from speed, noise, babble"):
        AudioAugmentation(("echo",))
    with pytest.raises(DwzError, match="--audio-augment makes the cached views: add --augment-views N"):
        TrainingOptions(audio_augment=["noise"], cache_encoder_states=True)


def test_every_augmentation_names_its_own_cache_view(tiny_model_dir, small_manifest, tmp_path):
    loaded = load_whisper(str(tiny_model_dir))
    utterances = load_dataset_spec(str(small_manifest)).utterances
    encoder = loaded.model.model.encoder

    def path(audio_key, view=1):
        return EncoderCache.path_for(
            tmp_path, "encoder", encoder, loaded.processor, utterances, view, audio_key=audio_key
        )

    keys = [""] + [AudioAugmentation((name,)).key() for name in AUGMENTATIONS]
    assert len({path(key) for key in keys}) == len(keys)
    assert path("", view=0) == path(keys[1], view=0)  # the clean view is the same whatever the views do


def test_babble_views_of_another_corpus_are_other_views(tiny_model_dir, small_manifest, tmp_path):
    """Babble mixes in clips drawn from the whole corpus, so a grown corpus may copy clean states, not babble views."""
    training = TrainingOptions(
        batch_size=2, max_steps=1, warmup_steps=0, save_every=1, eval_every=0, cache_dir=str(tmp_path / "cache"),
        cache_encoder_states=True, augment_views=1, audio_augment=["babble"],
    )  # fmt: skip
    part = tmp_path / "part.jsonl"
    part.write_text("".join(small_manifest.read_text(encoding="utf-8").splitlines(keepends=True)[:2]), "utf-8")
    model = str(tiny_model_dir)
    for data, out in ((part, "a"), (small_manifest, "b")):
        run_distillation(DistillOptions(model, model, [str(data)], str(tmp_path / out), training=training))
    records = {
        path.name: json.loads(path.read_text()) for path in sorted((tmp_path / "cache").glob("encoder-*.clips.json"))
    }
    clean = [r["settings"] for name, r in records.items() if "-view" not in name]
    views = [r["settings"] for name, r in records.items() if "-view1-" in name]
    assert len(clean) == len(views) == 2
    assert clean[0] == clean[1] and views[0] != views[1]


def test_distillation_trains_on_audio_augmented_views(tiny_model_dir, small_manifest, tmp_path):
    training = TrainingOptions(
        batch_size=3, max_steps=2, warmup_steps=0, save_every=2, eval_every=0, learning_rate=1e-3,
        cache_encoder_states=True, augment_views=1, audio_augment=["speed", "noise"],
    )  # fmt: skip
    model, out = str(tiny_model_dir), str(tmp_path / "o")
    run_distillation(DistillOptions(model, model, [str(small_manifest)], out, training=training))
    clean, view = (np.load(p) for p in sorted((tmp_path / "o" / "cache").glob("encoder-*.npy")))
    assert clean.shape == view.shape and not np.array_equal(clean, view)
    assert torch.isfinite(torch.from_numpy(view.astype(np.float32))).all()
