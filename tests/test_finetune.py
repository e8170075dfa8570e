import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration

from distil_whisper_zh.cli import main
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.finetune import AdaLoraOptions, FinetuneOptions, adalora_schedule, run_finetune
from distil_whisper_zh.training.options import TrainingOptions


def _options(model, manifest, out, method="adalora", **training):
    defaults = dict(batch_size=3, max_steps=6, warmup_steps=0, save_every=3, eval_every=0, learning_rate=5e-3)
    return FinetuneOptions(
        model=str(model),
        data=[str(manifest)],
        out=str(out),
        method=method,
        training=TrainingOptions(**{**defaults, **training}),
    )


def test_schedule_leaves_a_budgeting_phase():
    assert adalora_schedule(100) == {"tinit": 10, "tfinal": 20, "deltaT": 3, "total_step": 100}
    assert adalora_schedule(3)["tinit"] < 3 - adalora_schedule(3)["tfinal"]
    with pytest.raises(DwzError, match="at least 3 training steps"):
        adalora_schedule(2)


def test_adalora_learns_and_saves_a_merged_plain_model(tiny_model_dir, small_manifest, tmp_path):
    summary = run_finetune(_options(tiny_model_dir, small_manifest, tmp_path / "out", max_steps=12))
    rows = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert summary.steps == 12 and rows[-1]["ce"] < rows[0]["ce"]
    merged = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert not any("lora" in key for key in merged)  # plain Whisper weights: no peft needed to load
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    changed = [k for k in before if not torch.equal(before[k], merged[k])]
    assert changed and all(".decoder.layers." in k for k in changed)  # adapters on decoder linears only
    model = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out")
    assert model.generate(torch.zeros(1, 80, 3000), language="zh", max_new_tokens=2).shape[0] == 1


def test_full_finetuning_keeps_the_encoder_frozen(tiny_model_dir, small_manifest, tmp_path):
    run_finetune(_options(tiny_model_dir, small_manifest, tmp_path / "out", method="full", learning_rate=1e-3))
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("model.encoder."))
    assert not torch.equal(before["model.decoder.layers.1.fc2.weight"], after["model.decoder.layers.1.fc2.weight"])


def test_adalora_resume_equals_an_uninterrupted_run(tiny_model_dir, small_manifest, tmp_path):
    whole = run_finetune(_options(tiny_model_dir, small_manifest, tmp_path / "whole", cache_encoder_states=True))
    run_finetune(
        _options(tiny_model_dir, small_manifest, tmp_path / "out", stop_after_steps=3, cache_encoder_states=True)
    )
    summary = run_finetune(
        _options(tiny_model_dir, small_manifest, tmp_path / "out", resume=True, cache_encoder_states=True)
    )
    assert summary.steps == whole.steps == 6
    steps = [json.loads(line)["step"] for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    resumed, uninterrupted = (
        load_file(str(tmp_path / "out" / "model.safetensors")),
        load_file(str(tmp_path / "whole" / "model.safetensors")),
    )
    for key in uninterrupted:  # the adapters, their ranks and the allocator's scores all came back
        torch.testing.assert_close(resumed[key], uninterrupted[key], rtol=0, atol=1e-6, msg=key)


def test_bad_finetune_options(tiny_model_dir, small_manifest, tmp_path):
    with pytest.raises(DwzError, match="--method 'lora': choose one of adalora, full"):
        _options(tiny_model_dir, small_manifest, tmp_path, method="lora")
    with pytest.raises(DwzError, match="--target-r must be"):
        FinetuneOptions(model="m", data=["d"], out="o", adalora=AdaLoraOptions(init_r=4, target_r=8))


def test_cli_finetune(tiny_model_dir, small_manifest, tmp_path, capsys):
    code = main(
        [
            "finetune",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(small_manifest),
            "--out",
            str(tmp_path / "ft"),
            "--max-steps",
            "3",
            "--batch-size",
            "3",
            "--eval-data",
            str(small_manifest),
            "--eval-every",
            "3",
        ]
    )
    assert code == 0
    assert "trained to step 3" in capsys.readouterr().out


def test_adalora_plans_its_schedule_from_epochs(tiny_model_dir, small_manifest, tmp_path):
    # recipes/whisper-small-zh.yaml gives epochs, no max-steps: AdaLoRA's schedule must come from the data's size
    options = _options(tiny_model_dir, small_manifest, tmp_path / "out", max_steps=None, epochs=2, batch_size=1)
    summary = run_finetune(options)
    clips = sum(1 for _ in small_manifest.open())
    assert summary.steps == 2 * clips
    saved = torch.load(tmp_path / "out" / "checkpoints" / "last" / "adapter_state.pt", weights_only=False)
    assert saved["rank_pattern"]  # the budget was allocated on the planned schedule


def test_adapting_the_encoder_does_not_change_the_callers_training_options():
    training = TrainingOptions()
    options = FinetuneOptions(
        model="m", data=["d"], out="o", adalora=AdaLoraOptions(adapt_encoder=True), training=training
    )
    assert options.training.train_encoder and not training.train_encoder
