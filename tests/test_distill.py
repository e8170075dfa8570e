import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from distil_whisper_zh.cli import main
from distil_whisper_zh.data import Utterance
from distil_whisper_zh.distill import DistillOptions, LossWeights, run_distillation
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.options import parse_args
from distil_whisper_zh.runtime import native_bf16, resolve_mixed_precision
from distil_whisper_zh.student import CreateStudentOptions, create_student
from distil_whisper_zh.training.augment import clip_view
from distil_whisper_zh.training.identity import RUN_FILE, same_run
from distil_whisper_zh.training.options import TrainingOptions
from distil_whisper_zh.training.precision import make_accelerator, without_autocast
from distil_whisper_zh.training.sampling import example_weights, global_batches, read_numbers


@pytest.fixture(scope="module")
def student_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "s"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(out), decoder_layers=1))
    return out


def _options(student, teacher, manifest, out, eval_data=(), weights=None, **kwargs):
    defaults = dict(batch_size=3, max_steps=4, warmup_steps=0, save_every=2, eval_every=0, learning_rate=1e-3)
    return DistillOptions(
        student=str(student),
        teacher=str(teacher),
        data=[str(manifest)],
        out=str(out),
        weights=weights or LossWeights(),
        training=TrainingOptions(**{**defaults, "eval_data": list(eval_data), **kwargs}),
    )


def _weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_batches_are_deterministic_and_cover_each_epoch():
    first = global_batches(10, 3, epoch=0, seed=0)
    assert first == global_batches(10, 3, epoch=0, seed=0)
    assert len(first) == 3 and len({i for b in first for i in b}) == 9
    assert first != global_batches(10, 3, epoch=1, seed=0)


def test_distillation_learns_and_writes_a_model_dir(student_dir, tiny_model_dir, small_manifest, tmp_path):
    summary = run_distillation(
        _options(
            student_dir,
            tiny_model_dir,
            small_manifest,
            tmp_path / "out",
            max_steps=12,
            eval_data=[str(small_manifest)],
            eval_every=6,
        )
    )
    rows = [__import__("json").loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert rows[-1]["ce"] < rows[0]["ce"]  # the same 3 clips, 12 steps at 1e-3: it must fit them better
    assert {"loss", "ce", "kl", "lr"} <= rows[0].keys() and "eval_cer" in rows[5]
    assert summary.best_step in (6, 12)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "preprocessor_config.json", "loss.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert (tmp_path / "out" / "checkpoints" / "best" / "model.safetensors").is_file()
    # the student reads long recordings in chunks as long as its training clips: 90% of 3 clips is the longest,
    # rounded up to half a second
    longest = max(
        sf.info(str(small_manifest.parent / json.loads(line)["audio"])).duration
        for line in small_manifest.read_text("utf-8").splitlines()
    )
    config = json.loads((tmp_path / "out" / "config.json").read_text("utf-8"))
    assert config["dwz_long_form"] == {"mode": "chunked", "chunk_seconds": math.ceil(2 * longest) / 2}


def test_frozen_encoder_is_untouched(student_dir, tiny_model_dir, small_manifest, tmp_path):
    run_distillation(_options(student_dir, tiny_model_dir, small_manifest, tmp_path / "out"))
    before, after = _weights(student_dir), _weights(tmp_path / "out")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("model.encoder."))
    assert not torch.equal(before["model.decoder.layers.0.fc1.weight"], after["model.decoder.layers.0.fc1.weight"])


def test_dropout_changes_the_trained_decoder_only(student_dir, tiny_model_dir, small_manifest, tmp_path):
    plain = run_distillation(_options(student_dir, tiny_model_dir, small_manifest, tmp_path / "plain"))
    dropped = run_distillation(_options(student_dir, tiny_model_dir, small_manifest, tmp_path / "drop", dropout=0.3))
    before, a, b = _weights(student_dir), _weights(tmp_path / "plain"), _weights(tmp_path / "drop")
    assert all(torch.equal(before[k], b[k]) for k in before if k.startswith("model.encoder."))
    assert not torch.equal(a["model.decoder.layers.0.fc1.weight"], b["model.decoder.layers.0.fc1.weight"])
    assert plain.steps == dropped.steps == 4
    saved = json.loads((tmp_path / "drop" / "config.json").read_text())
    assert saved["dropout"] == 0.3
    model = load_whisper(str(tmp_path / "drop")).model.train()
    tokens = torch.tensor([[50258, 50260, 50359, 50363]])
    states = torch.randn(1, 1500, model.config.d_model)
    first, second = (model(encoder_outputs=(states,), decoder_input_ids=tokens).logits for _ in range(2))
    assert not torch.allclose(first, second)  # the saved config trains with dropout again


def test_cached_encoder_states_give_the_same_training(student_dir, tiny_model_dir, small_manifest, tmp_path):
    live = run_distillation(_options(student_dir, tiny_model_dir, small_manifest, tmp_path / "live"))
    cached = run_distillation(
        _options(student_dir, tiny_model_dir, small_manifest, tmp_path / "cached", cache_encoder_states=True)
    )
    assert live.steps == cached.steps == 4
    a, b = _weights(tmp_path / "live"), _weights(tmp_path / "cached")
    for key in a:  # float16 cache: tiny differences only
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=2e-3)
    assert list((tmp_path / "cached" / "cache").glob("encoder-*.npy"))


def test_numeral_folds_change_the_kl_where_labels_spell_numbers(student_dir, tiny_model_dir, small_manifest, tmp_path):
    """The three clips' labels spell numbers (设定二十九度): with --fold-teacher-numerals the teacher's digit tokens
    count as the label's token there, which changes the first step's KL and not its CE."""

    def first_step(out, **kwargs):
        options = _options(student_dir, tiny_model_dir, small_manifest, out, max_steps=1)
        run_distillation(replace(options, **kwargs))
        return json.loads((out / "train_log.jsonl").read_text().splitlines()[0])

    plain, folded = first_step(tmp_path / "plain"), first_step(tmp_path / "folded", fold_teacher_numerals=True)
    assert folded["ce"] == pytest.approx(plain["ce"], rel=1e-6)
    assert folded["kl"] != pytest.approx(plain["kl"], rel=1e-4)


def test_teacher_top_k_cache_over_the_whole_vocabulary_trains_like_live_logits(
    student_dir, tiny_model_dir, small_manifest, tmp_path
):
    def run(out, **kwargs):
        options = _options(student_dir, tiny_model_dir, small_manifest, out, cache_encoder_states=True)
        options.teacher_top_k = kwargs.get("top_k", 0)
        return run_distillation(options)

    vocab = 51865
    run(tmp_path / "live")
    run(tmp_path / "top", top_k=vocab)
    a, b, init = _weights(tmp_path / "live"), _weights(tmp_path / "top"), _weights(student_dir)
    trained = [k for k in a if not torch.equal(a[k], init[k])]
    assert trained
    for key in trained:  # the updates themselves agree (float16 logits in the cache: tiny differences only)
        live, top = a[key] - init[key], b[key] - init[key]
        assert (top - live).norm() <= 0.02 * live.norm(), key
    kl = [json.loads((tmp_path / run / "train_log.jsonl").read_text().splitlines()[0])["kl"] for run in ("live", "top")]
    assert kl[1] == pytest.approx(kl[0], rel=1e-3)  # the first step's KL: same teacher distribution
    assert len(list((tmp_path / "top" / "cache").glob(f"teacher-top{vocab}-*.values.npy"))) == 1
    run(tmp_path / "top8", top_k=8)  # a small k trains too, and differs
    c = _weights(tmp_path / "top8")
    assert not torch.equal(b["model.decoder.layers.0.fc1.weight"], c["model.decoder.layers.0.fc1.weight"])
    with pytest.raises(DwzError, match="--teacher-top-k must be 0"):
        DistillOptions(student="s", teacher="t", data=["d"], out="o", teacher_top_k=-1)


NATIVE_BF16 = native_bf16(torch.device("cpu"))


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
def test_bf16_autocast_trains_like_float32(student_dir, tiny_model_dir, small_manifest, tmp_path, capsys):
    def run(out, precision):
        options = _options(student_dir, tiny_model_dir, small_manifest, out, max_steps=8, mixed_precision=precision)
        run_distillation(options)
        return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]

    full, half = run(tmp_path / "fp32", "no"), run(tmp_path / "bf16", "auto")
    assert "bf16 autocast" in capsys.readouterr().out
    assert half[-1]["ce"] < half[0]["ce"]  # it learns
    for a, b in zip(full, half, strict=True):  # and follows the float32 run to bf16's rounding
        assert b["loss"] == pytest.approx(a["loss"], rel=0.03)
    saved = load_file(str(tmp_path / "bf16" / "model.safetensors"))
    assert {t.dtype for t in saved.values()} == {torch.float32}  # float32 master weights, saved as such


@pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bfloat16 (AVX512-BF16 or AMX)")
def test_dev_cer_decodes_without_the_training_autocast(tiny_model_dir):
    model = load_whisper(str(tiny_model_dir)).model
    prepared = make_accelerator(cpu=True, precision="bf16").prepare(model)
    seen = []
    prepared.model.decoder.layers[0].fc1.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    tokens, states = torch.tensor([[50258, 50260]]), torch.randn(1, 1500, model.config.d_model)
    prepared(encoder_outputs=(states,), decoder_input_ids=tokens)
    with without_autocast(prepared):
        prepared(encoder_outputs=(states,), decoder_input_ids=tokens)
    prepared(encoder_outputs=(states,), decoder_input_ids=tokens)
    assert seen == [torch.bfloat16, torch.float32, torch.bfloat16]
    make_accelerator(cpu=True, precision="no")  # later tests in this process train in float32


def test_mixed_precision_is_resolved_for_the_device():
    cpu = torch.device("cpu")
    assert resolve_mixed_precision("auto", cpu) == ("bf16" if NATIVE_BF16 else "no")
    assert resolve_mixed_precision("no", cpu) == "no"
    with pytest.raises(DwzError, match="--mixed-precision fp16 needs a CUDA GPU"):
        resolve_mixed_precision("fp16", cpu)
    with pytest.raises(DwzError, match="--mixed-precision 'fp8': choose one of auto, no, fp16, bf16"):
        resolve_mixed_precision("fp8", cpu)
    if not NATIVE_BF16:
        with pytest.raises(DwzError, match="no native bfloat16"):
            resolve_mixed_precision("bf16", cpu)
    with pytest.raises(DwzError, match="--mixed-precision 'fp8': choose one of auto, no, fp16, bf16"):
        TrainingOptions(mixed_precision="fp8")


def test_resume_equals_an_uninterrupted_run(student_dir, tiny_model_dir, small_manifest, tmp_path):
    run_distillation(_options(student_dir, tiny_model_dir, small_manifest, tmp_path / "straight", max_steps=4))
    interrupted = run_distillation(
        _options(
            student_dir,
            tiny_model_dir,
            small_manifest,
            tmp_path / "split",
            max_steps=4,
            save_every=100,
            stop_after_steps=2,
        )
    )
    assert interrupted.steps == 2
    run_distillation(
        _options(student_dir, tiny_model_dir, small_manifest, tmp_path / "split", max_steps=4, resume=True)
    )
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "train_log.jsonl").open()]
    assert steps == [1, 2, 3, 4]


def test_bad_options_are_refused_early(student_dir, tiny_model_dir, small_manifest, tmp_path):
    with pytest.raises(DwzError, match="--temperature must be positive"):
        _options(student_dir, tiny_model_dir, small_manifest, tmp_path, weights=LossWeights(temperature=0))
    with pytest.raises(DwzError, match=r"--label-smoothing must be in \[0, 1\), got 1.0"):
        _options(student_dir, tiny_model_dir, small_manifest, tmp_path, weights=LossWeights(label_smoothing=1.0))
    with pytest.raises(DwzError, match="needs a frozen encoder"):
        _options(student_dir, tiny_model_dir, small_manifest, tmp_path, cache_encoder_states=True, train_encoder=True)
    with pytest.raises(DwzError, match="more decoder layers"):
        run_distillation(_options(tiny_model_dir, student_dir, small_manifest, tmp_path / "x"))


def test_cli_chain_pseudo_label_create_student_distill(tiny_model_dir, small_manifest, tmp_path, capsys):
    labels, student, out = tmp_path / "labels", tmp_path / "student", tmp_path / "out"
    assert (
        main(
            [
                "pseudo-label",
                "--teacher",
                str(tiny_model_dir),
                "--data",
                str(small_manifest),
                "--out",
                str(labels),
                "--no-fallback",
            ]
        )
        == 0
    )
    assert (
        main(["create-student", "--teacher", str(tiny_model_dir), "--decoder-layers", "1", "--out", str(student)]) == 0
    )
    assert "decoder layers from the teacher: [1]" in capsys.readouterr().out
    assert (
        main(
            [
                "distill",
                "--student",
                str(student),
                "--teacher",
                str(tiny_model_dir),
                "--data",
                str(labels),
                "--out",
                str(out),
                "--max-steps",
                "2",
                "--batch-size",
                "3",
                "--cache-encoder-states",
            ]
        )
        == 0
    )
    assert "trained to step 2" in capsys.readouterr().out


def test_training_options_are_validated():
    with pytest.raises(DwzError, match="--lr-scheduler 'bogus'"):
        TrainingOptions(lr_scheduler="bogus")
    with pytest.raises(DwzError, match="--eval-every must not be negative"):
        TrainingOptions(eval_every=-1)
    with pytest.raises(DwzError, match="--stop-after-steps must be at least 1"):
        TrainingOptions(stop_after_steps=0)
    with pytest.raises(DwzError, match=r"--dropout must be in \[0, 1\), got 1.5"):
        TrainingOptions(dropout=1.5)


def test_dataset_weights_repeat_clips_within_an_epoch():
    weights = [3.0, 3.0, 1.0, 1.0, 1.0, 1.0]  # two clips of a real dataset weighted 3, four synthetic ones
    batches = global_batches(6, 2, epoch=0, seed=0, weights=weights)
    assert len(batches) == 5 and all(len(b) == 2 for b in batches)  # 10 draws an epoch
    drawn = [i for b in batches for i in b]
    assert sorted(drawn) == [0, 0, 0, 1, 1, 1, 2, 3, 4, 5]
    assert batches == global_batches(6, 2, epoch=0, seed=0, weights=weights)
    halves = [0.5] * 4 + [1.0] * 4  # half-weight clips appear in about every other epoch
    seen = [sum(i < 4 for b in global_batches(8, 2, epoch=e, seed=0, weights=halves) for i in b) for e in range(40)]
    assert 1.0 < sum(seen) / len(seen) < 3.0
    assert all(len(global_batches(8, 2, epoch=e, seed=0, weights=halves)) == 3 for e in range(10))


def test_repeats_of_a_clip_read_different_augmented_views():
    weights = [3.0, 3.0, 1.0, 1.0, 1.0, 1.0]
    reads_of: dict[int, list[int]] = {}
    for epoch in range(3):
        batches = global_batches(6, 2, epoch=epoch, seed=0, weights=weights)
        for batch, numbers in zip(batches, read_numbers(batches, epoch, weights), strict=True):
            for index, number in zip(batch, numbers, strict=True):
                reads_of.setdefault(index, []).append(number)
    assert reads_of[0] == list(range(9))  # weight 3: three reads an epoch, numbered in draw order
    assert reads_of[2] == [0, 1, 2]  # weight 1: one read an epoch, numbered by the epoch
    # with 2 augmented views (3 in all), a weight-3 clip sees all three in one epoch, and a weight-1 clip all
    # three over three epochs (not one view forever, as a shared stride of 3 would give it)
    assert sorted(clip_view("clip-0", n, 2) for n in reads_of[0][:3]) == [0, 1, 2]
    assert sorted(clip_view("clip-2", n, 2) for n in reads_of[2]) == [0, 1, 2]
    unweighted = global_batches(4, 2, epoch=5, seed=0)
    assert read_numbers(unweighted, 5) == [[5, 5], [5, 5]]  # one read an epoch: the epoch


def test_example_weights_name_the_datasets():
    clips = [Utterance("a", Path("a.wav"), "好", fields={"dataset": "tts"}), Utterance("b", Path("b.wav"), "好")]
    clips[1].fields["dataset"] = "train"
    assert example_weights(clips, {}) is None
    assert example_weights(clips, {"train": 3.0}) == [1.0, 3.0]
    with pytest.raises(DwzError, match=r"--dataset-weights real W: no training clips .*datasets: train, tts"):
        example_weights(clips, {"real": 2.0})
    assert example_weights(clips, {"tts": 0.0}) == [0.0, 1.0]  # never drawn, but still among the clips
    assert sorted(i for b in global_batches(2, 1, epoch=0, seed=0, weights=[0.0, 1.0]) for i in b) == [1]
    with pytest.raises(DwzError, match="every training clip has weight 0"):
        example_weights(clips, {"tts": 0.0, "train": 0.0})
    with pytest.raises(DwzError, match="epoch 0 draws no clip at all"):
        global_batches(2, 1, epoch=0, seed=0, weights=[0.0, 0.01])
    with pytest.raises(DwzError, match="--dataset-weights train -1.0: a weight is 0 .never drawn. or more"):
        TrainingOptions(dataset_weights={"train": -1.0})


def test_dataset_weights_flag_needs_names_and_numbers(capsys):
    argv = ["--student", "s", "--teacher", "t", "--data", "d", "--out", "o"]
    assert parse_args(DistillOptions, [*argv, "--dataset-weights", "train", "3", "tts", "0.5"], "dwz distill", "")\
        .training.dataset_weights == {"train": 3.0, "tts": 0.5}  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", *argv, "--dataset-weights", "3"])
    assert exit_info.value.code == 2
    assert "--dataset-weights" in capsys.readouterr().err


def test_distill_flags_reach_the_options():
    argv = ["--student", "s", "--teacher", "t", "--data", "d", "--out", "o", "--cache-encoder-states"]
    argv += ["--dropout", "0.1", "--augment-views", "2", "--no-eval-fallback", "--label-smoothing", "0.05"]
    argv += ["--eval-data", "e1", "--eval-data", "e2", "--data", "d2"]
    options = parse_args(DistillOptions, [*argv, "--temperature", "3", "--teacher-top-k", "16"], "dwz distill", "")
    assert (options.training.dropout, options.training.augment_views, options.training.eval_fallback) == (0.1, 2, False)
    assert (options.weights.label_smoothing, options.weights.temperature, options.teacher_top_k) == (0.05, 3.0, 16)
    assert (options.data, options.training.eval_data) == (["d", "d2"], ["e1", "e2"])
    plain = parse_args(DistillOptions, argv[:8], "dwz distill", "")
    assert plain == DistillOptions(student="s", teacher="t", data=["d"], out="o")
    assert not plain.fold_teacher_numerals
    assert parse_args(DistillOptions, [*argv[:8], "--fold-teacher-numerals"], "dwz distill", "").fold_teacher_numerals
    with pytest.raises(DwzError, match="--audio-augment makes the cached views"):
        parse_args(DistillOptions, [*argv[:8], "--audio-augment", "speed", "noise"], "dwz distill", "")


def test_a_rerun_on_relabelled_data_starts_afresh(student_dir, tiny_model_dir, small_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    run_distillation(_options(student_dir, tiny_model_dir, small_manifest, out, max_steps=2))
    capsys.readouterr()
    rows = small_manifest.read_text(encoding="utf-8").splitlines()
    relabelled = [rows[0].replace('"text": "', '"text": "好'), *rows[1:]]  # same paths, one label changed
    small_manifest.write_text("\n".join(relabelled) + "\n", encoding="utf-8")
    run_distillation(_options(student_dir, tiny_model_dir, small_manifest, out, max_steps=2))
    assert "is from a run with other options (data); starting afresh" in capsys.readouterr().out


def test_a_checkpoint_that_predates_an_option_at_its_default_is_the_same_run():
    defaults = {"top_k": 0, "training": {"dropout": None, "epochs": 3.0}}
    current = {"top_k": 0, "training": {"dropout": None, "epochs": 5.0}, "data": "abc"}
    assert same_run({"training": {"epochs": 5.0}, "data": "abc"}, current, defaults)  # older: no top_k, no dropout
    assert not same_run({"training": {"epochs": 5.0}, "data": "abc"}, {**current, "top_k": 32}, defaults)
    assert not same_run({"top_k": 0, "training": {"epochs": 3.0}, "data": "abc"}, current, defaults)
    assert not same_run({**current, "removed_option": 1}, current, defaults)
    weighted = {**current, "training": {**current["training"], "dataset_weights": {}}}
    other_weights = {**weighted, "training": {**weighted["training"], "dataset_weights": {"real": 3}}}
    assert not same_run(other_weights, weighted, {})


def test_an_interrupted_run_of_an_older_toolkit_version_resumes(
    student_dir, tiny_model_dir, small_manifest, tmp_path, capsys
):
    out = tmp_path / "out"
    options = _options(student_dir, tiny_model_dir, small_manifest, out, max_steps=4, save_every=100)
    run_distillation(_options(student_dir, tiny_model_dir, small_manifest, out, max_steps=4, stop_after_steps=2))
    saved = out / "checkpoints" / "last" / RUN_FILE
    identity = json.loads(saved.read_text())
    del identity["training"]["dropout"], identity["teacher_top_k"]  # options added after that run was started
    saved.write_text(json.dumps(identity))
    capsys.readouterr()
    run_distillation(options)
    assert "(resuming at 2)" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").open()]
    assert steps == [1, 2, 3, 4]


def test_a_checkpoint_of_the_previous_version_is_still_this_run():
    from distil_whisper_zh.training.identity import upgraded

    saved = {"student": "s", "eval_data": ["dev"], "training": {"freeze_encoder": True, "strict": False, "seed": 0}}
    assert upgraded(saved) == {"student": "s", "training": {"train_encoder": False, "seed": 0, "eval_data": ["dev"]}}
    assert upgraded({"student": "s"}) == {"student": "s"}
