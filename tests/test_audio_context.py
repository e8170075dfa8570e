"""Dynamic audio context: the policy, the short encoder, training with it, and every consumer reading it."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
from distil_whisper_zh.audio_context import CONFIG_KEY, AudioContext, cut_features, record
from distil_whisper_zh.backends import BackendOptions, make_decoder
from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import WINDOW_FRAMES, DecodingOptions, WhisperDecoder, token_cap
from distil_whisper_zh.distill import DistillOptions, LossWeights, run_distillation
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.export import ExportOptions, export_ctranslate2
from distil_whisper_zh.finetune import AdaLoraOptions, FinetuneOptions, run_finetune
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.models.encoder import encode
from distil_whisper_zh.student import CreateStudentOptions, create_student
from distil_whisper_zh.training.options import TrainingOptions

DYNAMIC = AudioContext("dynamic", margin=64, multiple=32)


def test_positions_are_the_clip_plus_margin_rounded_up():
    assert DYNAMIC.positions(5 * SAMPLE_RATE) == 320  # 250 positions of speech + 64 = 314 -> 320
    assert DYNAMIC.positions(1) == 96  # 1 + 64 = 65 -> 96
    assert AudioContext("dynamic", margin=0, multiple=1).positions(5 * SAMPLE_RATE) == 250
    assert DYNAMIC.positions(29 * SAMPLE_RATE) == 1500  # never past the 30-s window
    assert AudioContext().positions(5 * SAMPLE_RATE) == 1500  # full: Whisper's own window
    assert DYNAMIC.frames([SAMPLE_RATE, 5 * SAMPLE_RATE, 2 * SAMPLE_RATE]) == 640  # the longest clip decides


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mode="short"), "--audio-context 'short': choose one of full, dynamic"),
        (dict(mode="dynamic", margin=-1), "--context-margin -1: give 0..1499"),
        (dict(mode="dynamic", margin=1500), "--context-margin 1500"),
        (dict(mode="dynamic", multiple=0), "--context-multiple 0: give 1..1500"),
    ],
)
def test_a_context_that_makes_no_sense_is_refused(kwargs, message):
    with pytest.raises(DwzError, match=message):
        AudioContext(**kwargs)
    with pytest.raises(DwzError, match=message.split(":")[0]):  # the training options check it before any work
        TrainingOptions(
            audio_context=kwargs["mode"],
            context_margin=kwargs.get("margin", 64),
            context_multiple=kwargs.get("multiple", 32),
            train_encoder=True,
        )


def test_the_config_field_round_trips(tiny_model_dir, tmp_path):
    model = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir)
    assert AudioContext.of(model.config) == AudioContext()  # no field: the full window, as today
    record(model.config, DYNAMIC)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved[CONFIG_KEY] == {"mode": "dynamic", "margin": 64, "multiple": 32}
    assert AudioContext.of(WhisperForConditionalGeneration.from_pretrained(tmp_path).config) == DYNAMIC
    record(model.config, AudioContext())
    assert not hasattr(model.config, CONFIG_KEY)
    with pytest.raises(DwzError, match="unusable dwz_audio_context"):
        AudioContext.of({CONFIG_KEY: {"mode": "dynamic", "margin": -5}})


def test_the_short_encoder_is_whispers_encoder_on_the_full_window(tiny_model_dir):
    encoder = load_whisper(str(tiny_model_dir)).model.model.encoder
    features = torch.randn(2, 80, WINDOW_FRAMES)
    with torch.inference_mode():
        assert torch.equal(encode(encoder, features), encoder(features).last_hidden_state)
        short = encode(encoder, cut_features(features, 640))
    assert short.shape == (2, 320, 64)
    with pytest.raises(DwzError, match="641 log-mel frames: give an even number up to 3000"):
        encode(encoder, features[..., :641])


@pytest.fixture(scope="module")
def dynamic_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a dynamic context recorded in its config (weights unchanged)."""
    out = tmp_path_factory.mktemp("dynamic") / "model"
    loaded = load_whisper(str(tiny_model_dir))
    record(loaded.model.config, DYNAMIC)
    loaded.model.save_pretrained(out)
    loaded.processor.save_pretrained(out)
    loaded.processor.feature_extractor.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (out / name).write_bytes((tiny_model_dir / name).read_bytes())
    return out


def _greedy(model, cap: int, **inputs) -> list[int]:
    with torch.inference_mode():
        (row,) = model.generate(**inputs, language="zh", task="transcribe", max_new_tokens=cap)
    return [t for t in row.tolist() if t < 50257]


def test_transformers_decoding_reads_only_the_clip_and_margin(dynamic_model_dir, real_clips):
    audio = load_audio(real_clips[0]["path"])
    decoder = WhisperDecoder(load_whisper(str(dynamic_model_dir)), DecodingOptions(fallback=False))
    prepared = decoder.prepare([audio])
    assert prepared.frames == 2 * DYNAMIC.positions(len(audio)) < WINDOW_FRAMES
    model = decoder.loaded.model
    states = encode(model.model.encoder, cut_features(prepared.features["input_features"], prepared.frames))
    expected = decoder.loaded.processor.tokenizer.decode(
        _greedy(model, token_cap(len(audio) / SAMPLE_RATE), encoder_outputs=BaseModelOutput(last_hidden_state=states)),
        skip_special_tokens=True,
    )
    (transcript,) = decoder.decode_prepared(prepared)
    assert transcript.raw_text == expected.strip()


def test_a_clip_over_30_s_is_still_decoded_whole(dynamic_model_dir):
    decoder = WhisperDecoder(load_whisper(str(dynamic_model_dir)), DecodingOptions())
    audio = np.random.default_rng(0).normal(0, 0.1, 65 * SAMPLE_RATE).astype(np.float32)
    prepared = decoder.prepare([audio])
    assert prepared.long_form and prepared.frames == WINDOW_FRAMES
    assert prepared.features["input_features"].shape[-1] == 6500  # the whole recording, window by window
    (transcript,) = decoder.decode_prepared(prepared)
    assert transcript.segments  # sequential long-form decoding (timestamped), not one cut window


def test_the_export_carries_the_context_and_ctranslate2_reads_it(dynamic_model_dir, real_clips, tmp_path):
    out = tmp_path / "ct2"
    result = export_ctranslate2(ExportOptions(model=str(dynamic_model_dir), out=str(out), quantization="float32"))
    assert result.context == DYNAMIC
    assert json.loads((out / "config.json").read_text())[CONFIG_KEY] == DYNAMIC.to_json()
    decoder = make_decoder(str(out), DecodingOptions(fallback=False), BackendOptions("ctranslate2"))
    assert decoder.context == DYNAMIC
    audios = [load_audio(clip["path"]) for clip in real_clips[:2]]
    prepared = decoder.prepare(audios)
    assert prepared.features.shape == (2, 80, DYNAMIC.frames([len(a) for a in audios]))
    transcripts = decoder.decode_prepared(prepared)
    assert len(transcripts) == 2 and all(t.retries == 0 for t in transcripts)  # greedy only: no fallback pass


@pytest.fixture(scope="module")
def student_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "s"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(out), decoder_layers=1))
    return out


ENCODER_MATCHING = LossWeights(encoder_weight=1.0)


def _distill(student, teacher, manifest, out, weights=ENCODER_MATCHING, **training):
    defaults = dict(batch_size=3, max_steps=3, warmup_steps=0, save_every=3, eval_every=0, learning_rate=1e-3)
    return DistillOptions(
        student=str(student),
        teacher=str(teacher),
        data=[str(manifest)],
        out=str(out),
        weights=weights,
        training=TrainingOptions(**{**defaults, **training}),
    )


def test_distillation_with_a_dynamic_context_trains_the_top_encoder_layers(
    student_dir, tiny_model_dir, small_manifest, tmp_path, capsys
):
    options = _distill(
        student_dir,
        tiny_model_dir,
        small_manifest,
        tmp_path / "out",
        weights=LossWeights(ce_weight=0.0, kl_weight=0.0, encoder_weight=1.0),  # the encoder objective alone
        max_steps=5,
        audio_context="dynamic",
        train_encoder=True,
        train_encoder_layers=1,
        cache_encoder_states=True,  # the teacher's full-window states: the targets
    )
    run_distillation(options)
    assert "top 1 layers trained, reading each clip + 64 positions (dynamic audio context)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved[CONFIG_KEY] == DYNAMIC.to_json()
    before, after = (
        load_file(str(student_dir / "model.safetensors")),
        load_file(str(tmp_path / "out" / "model.safetensors")),
    )
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("model.encoder.layers.1.") for k in changed)
    assert "model.encoder.layer_norm.weight" in changed
    assert not any(k.startswith(("model.encoder.layers.0.", "model.encoder.conv")) for k in changed)
    rows = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert all(row["encoder"] > 0 for row in rows) and rows[-1]["encoder"] < rows[0]["encoder"]
    assert list((tmp_path / "out" / "cache").glob("encoder-*.npy"))  # the teacher's states, computed once


def test_dynamic_context_needs_a_trained_encoder_and_no_student_cache(student_dir, tiny_model_dir, tmp_path):
    with pytest.raises(DwzError, match="--audio-context dynamic: the encoder must learn to read short inputs"):
        _distill(student_dir, tiny_model_dir, "m.jsonl", tmp_path, audio_context="dynamic")
    with pytest.raises(DwzError, match="--encoder-weight trains the student's encoder"):
        _distill(student_dir, tiny_model_dir, "m.jsonl", tmp_path)
    with pytest.raises(DwzError, match="--train-encoder-layers N trains the top N encoder layers: add --train-encoder"):
        TrainingOptions(train_encoder_layers=1)


def test_cli_refuses_a_bad_margin_before_loading_anything(capsys):
    code = main(["distill", "--student", "s", "--teacher", "t", "--data", "d", "--out", "o", "--train-encoder",
                 "--audio-context", "dynamic", "--context-margin", "-3"])  # fmt: skip
    assert code == 2
    assert "--context-margin -3: give 0..1499" in capsys.readouterr().err


def test_timestamped_decoding_of_a_short_clip_reads_the_dynamic_context(dynamic_model_dir, real_clips):
    audio = load_audio(real_clips[0]["path"])
    decoder = WhisperDecoder(load_whisper(str(dynamic_model_dir)), DecodingOptions(fallback=False), timestamps=True)
    prepared = decoder.prepare([audio])
    model = decoder.loaded.model
    states = encode(model.model.encoder, cut_features(prepared.features["input_features"], prepared.frames))
    with torch.inference_mode():
        (row,) = model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=states), language="zh", task="transcribe",
            max_new_tokens=token_cap(len(audio) / SAMPLE_RATE), return_timestamps=True,
            force_unique_generate_call=True,  # one pass over the window, as the decoder makes
        )  # fmt: skip
    expected = decoder.loaded.processor.tokenizer.decode([t for t in row.tolist() if t < 50257]).strip()
    (transcript,) = decoder.decode_prepared(prepared)
    assert transcript.raw_text == expected
    assert all(s.start <= s.end for s in transcript.segments)


def _finetune(model, manifest, out, method="full", adapt_encoder=False, **training):
    defaults = dict(batch_size=3, max_steps=3, warmup_steps=0, save_every=3, eval_every=0, learning_rate=1e-3)
    return FinetuneOptions(
        model=str(model),
        data=[str(manifest)],
        out=str(out),
        method=method,
        adalora=AdaLoraOptions(adapt_encoder=adapt_encoder),
        training=TrainingOptions(**{**defaults, **training}),
    )


def test_finetuning_trains_the_encoder_for_a_dynamic_context_and_records_it(tiny_model_dir, small_manifest, tmp_path):
    out = tmp_path / "out"
    run_finetune(_finetune(tiny_model_dir, small_manifest, out, audio_context="dynamic", train_encoder=True))
    assert json.loads((out / "config.json").read_text())[CONFIG_KEY] == DYNAMIC.to_json()
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert not torch.equal(before["model.encoder.layers.1.fc2.weight"], after["model.encoder.layers.1.fc2.weight"])


def test_finetuning_a_dynamic_model_keeps_its_context(dynamic_model_dir, small_manifest, tmp_path):
    out = tmp_path / "out"
    run_finetune(_finetune(dynamic_model_dir, small_manifest, out, method="adalora"))  # no context option given
    assert json.loads((out / "config.json").read_text())[CONFIG_KEY] == DYNAMIC.to_json()


def test_finetune_refuses_a_dynamic_context_its_encoder_cannot_learn(tiny_model_dir, dynamic_model_dir, tmp_path):
    missing = tmp_path / "missing.jsonl"  # the context is checked from the model's config before any data is read
    for method in ("full", "adalora"):  # a frozen encoder would read short inputs it never learned
        with pytest.raises(DwzError, match="--audio-context dynamic: .* encoder must learn to read short inputs"):
            run_finetune(_finetune(tiny_model_dir, missing, tmp_path / method, method=method, audio_context="dynamic"))
    # a model that already reads this context keeps reading it with a frozen encoder: it fails on the data instead
    with pytest.raises(DwzError, match="missing.jsonl"):
        run_finetune(_finetune(dynamic_model_dir, missing, tmp_path / "kept", audio_context="dynamic"))
    with pytest.raises(DwzError, match="--method adalora adapts the encoder with --adapt-encoder, not --train-encoder"):
        _finetune(tiny_model_dir, "m.jsonl", tmp_path, method="adalora", train_encoder=True)
    with pytest.raises(DwzError, match="--train-encoder-layers is for --method full"):
        layers = dict(train_encoder=True, train_encoder_layers=1)
        _finetune(tiny_model_dir, "m", tmp_path, "adalora", adapt_encoder=True, **layers)
    options = _finetune(tiny_model_dir, "m", tmp_path, method="adalora", adapt_encoder=True, audio_context="dynamic")
    assert options.training.train_encoder  # the adapters of the encoder learn the short inputs


def test_a_margin_without_a_dynamic_context_is_refused():
    with pytest.raises(DwzError, match="--context-margin and --context-multiple shape a dynamic audio context"):
        TrainingOptions(context_margin=128)
    with pytest.raises(DwzError, match="add --audio-context dynamic"):
        TrainingOptions(audio_context="full", context_multiple=16)


def test_too_many_top_encoder_layers_are_refused_before_the_data_is_read(student_dir, tiny_model_dir, tmp_path):
    options = _distill(
        student_dir, tiny_model_dir, tmp_path / "missing.jsonl", tmp_path / "out",
        audio_context="dynamic", train_encoder=True, train_encoder_layers=3,
    )  # fmt: skip
    with pytest.raises(DwzError, match="--train-encoder-layers 3: the encoder has only 2 layers"):
        run_distillation(options)  # the manifest does not exist: the layer count failed first


def test_evaluate_and_transcribe_read_the_models_context_without_flags(
    dynamic_model_dir, tiny_model_dir, real_clips, small_manifest, tmp_path, capsys
):
    audio = load_audio(real_clips[0]["path"])
    greedy = DecodingOptions(fallback=False, keep_script=True)
    (short,) = WhisperDecoder(load_whisper(str(dynamic_model_dir)), greedy).decode([audio])
    (full,) = WhisperDecoder(load_whisper(str(tiny_model_dir)), greedy).decode([audio])  # same weights, 30-s window
    assert short.raw_text != full.raw_text  # what each context reads tells them apart
    out = tmp_path / "t.json"
    assert main(["transcribe", "--model", str(dynamic_model_dir), str(real_clips[0]["path"]), "--format", "json",
                 "--no-fallback", "--keep-script", "-o", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["text"] == short.text  # one JSON line a recording
    report = tmp_path / "report"  # batch 1: a batch reads its longest clip's context
    assert main(["evaluate", "--model", str(dynamic_model_dir), "--data", str(small_manifest), "--no-fallback",
                 "--batch-size", "1", "--report", str(report)]) == 0  # fmt: skip
    (result,) = json.loads((report / "report.json").read_text())["results"]
    assert result["audio_context"] == DYNAMIC.to_json()
    assert "| clip + 1.28 s |" in (report / "report.md").read_text()  # 64 positions of 20 ms
    rows = [json.loads(line) for line in (report / result["hypotheses_file"]).read_text().splitlines()]
    first = next(row for row in rows if real_clips[0]["path"].stem in row["id"])
    assert first["raw_hypothesis"] == short.raw_text


def test_finetune_checks_the_top_encoder_layers_before_the_data(tiny_model_dir, tmp_path):
    options = _finetune(tiny_model_dir, tmp_path / "missing.jsonl", tmp_path / "out", train_encoder=True,
                        train_encoder_layers=3)  # fmt: skip
    with pytest.raises(DwzError, match="--train-encoder-layers 3: the encoder has only 2 layers"):
        run_finetune(options)
