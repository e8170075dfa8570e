import pytest
import torch
from safetensors.torch import load_file

from distil_whisper_zh.distill import DistillOptions, run_distillation
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.student import CreateStudentOptions, create_student
from distil_whisper_zh.training.augment import SpecAugmentPolicy, clip_view, spec_augment, view_seed
from distil_whisper_zh.training.options import TrainingOptions


def test_masks_cover_bands_of_the_speech_only():
    features = torch.arange(80 * 300, dtype=torch.float32).reshape(80, 300)
    masked = spec_augment(features, speech_frames=200, seed=7, policy=SpecAugmentPolicy(time_width=30))
    fill = features[:, :200].mean()
    changed = masked != features
    assert changed.any() and torch.all(masked[changed] == fill)
    assert not changed[:, 200:].any()  # Whisper's padding after the speech is left alone
    assert torch.equal(masked, spec_augment(features, 200, seed=7, policy=SpecAugmentPolicy(time_width=30)))
    assert not torch.equal(masked, spec_augment(features, 200, seed=8, policy=SpecAugmentPolicy(time_width=30)))
    assert torch.equal(features, torch.arange(80 * 300, dtype=torch.float32).reshape(80, 300))  # input untouched


def test_band_sizes_follow_the_policy():
    features = torch.zeros(80, 3000)
    features[:, :500] = torch.randn(80, 500)
    for seed in range(30):
        policy = SpecAugmentPolicy(freq_masks=1, time_masks=0, freq_width=10)
        bins = (spec_augment(features, 500, seed, policy) != features).any(dim=1).sum()
        assert bins <= 10
        policy = SpecAugmentPolicy(freq_masks=0, time_masks=1, time_width=100, max_time_share=0.1)
        frames = (spec_augment(features, 500, seed, policy) != features).any(dim=0).sum()
        assert frames <= 50  # 10% of 500 speech frames, below the 100-frame width


def test_each_clip_cycles_through_every_view():
    keys = [f"clip{i}" for i in range(50)]
    for key in keys:
        assert sorted(clip_view(key, epoch, 2) for epoch in range(3)) == [0, 1, 2]
        assert clip_view(key, None, 2) == 0 and clip_view(key, 5, 0) == 0
    assert 5 < sum(clip_view(key, 0, 2) == 0 for key in keys) < 30  # an epoch mixes clean and masked clips
    assert view_seed("a", 1) != view_seed("a", 2) != view_seed("b", 1)


def test_augmented_views_are_cached_and_change_training(tiny_model_dir, small_manifest, tmp_path):
    student = tmp_path / "student"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(student), decoder_layers=1))

    def distill(out, views):
        training = TrainingOptions(
            batch_size=3, max_steps=3, warmup_steps=0, save_every=3, eval_every=0, learning_rate=1e-3,
            cache_encoder_states=True, augment_views=views,
        )  # fmt: skip
        run_distillation(
            DistillOptions(str(student), str(tiny_model_dir), [str(small_manifest)], str(tmp_path / out),
                           teacher_top_k=8, training=training)
        )  # fmt: skip
        return sorted(p.name for p in (tmp_path / out / "cache").glob("*.npy"))

    clean, views = distill("clean", 0), distill("views", 2)
    assert [f for f in views if f not in clean] == [f for f in views if "encoder-view" in f]
    assert len(views) == len(clean) + 2  # one file of states per masked view; the teacher's top-k once
    a = load_file(str(tmp_path / "clean" / "model.safetensors"))
    b = load_file(str(tmp_path / "views" / "model.safetensors"))
    assert not torch.equal(a["model.decoder.layers.0.fc1.weight"], b["model.decoder.layers.0.fc1.weight"])
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("model.encoder."))


def test_views_need_the_cache():
    with pytest.raises(DwzError, match="--augment-views masks the inputs of cached encoder states"):
        TrainingOptions(augment_views=1)
    with pytest.raises(DwzError, match="--augment-views must not be negative"):
        TrainingOptions(augment_views=-1, cache_encoder_states=True)
