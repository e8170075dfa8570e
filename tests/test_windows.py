"""Joined windows with timestamped labels (`--timestamp-share`): the label format, the share of steps, training."""

import json

import numpy as np
import pytest

from distil_whisper_zh.audio import SAMPLE_RATE
from distil_whisper_zh.training.batches import IGNORE_INDEX, PROMPT_LENGTH, collate_labels, label_token_ids
from distil_whisper_zh.training.windows import (
    EDGE_MARGIN,
    FRAME,
    MAX_PAUSE,
    Part,
    join_parts,
    pause_rng,
    speech_bounds,
    tighten,
    timestamp_token,
    timestamped_step,
)


def part(key, seconds, text_ids):
    return Part(key, np.full(int(seconds * SAMPLE_RATE), 0.1, dtype=np.float32), text_ids)


def test_timestamp_tokens_are_20_ms_steps(tokenizer):
    begin = tokenizer.convert_tokens_to_ids("<|0.00|>")
    assert timestamp_token(0.0, begin) == begin
    assert tokenizer.convert_ids_to_tokens(timestamp_token(2.5, begin)) == "<|2.50|>"
    assert tokenizer.convert_ids_to_tokens(timestamp_token(3.009, begin)) == "<|3.00|>"  # nearest step
    assert tokenizer.convert_ids_to_tokens(timestamp_token(31.0, begin)) == "<|30.00|>"  # never past the window


def test_joined_window_label_is_whispers_timestamp_format(tokenizer):
    begin, eot = tokenizer.convert_tokens_to_ids("<|0.00|>"), tokenizer.eos_token_id
    first, second = label_token_ids(tokenizer, "你好"), label_token_ids(tokenizer, "今天天气很好")
    prompt = first[: PROMPT_LENGTH - 1]
    parts = [part("a", 2.5, first[PROMPT_LENGTH:-1]), part("b", 4.0, second[PROMPT_LENGTH:-1])]
    (window,) = join_parts(parts, prompt, begin, eot)
    assert window.key == "a+b" and len(window.audio) == int(6.5 * SAMPLE_RATE)
    tokens = tokenizer.convert_ids_to_tokens(window.label_ids)
    assert tokenizer.convert_ids_to_tokens(window.label_ids[:4]) == [
        "<|startoftranscript|>", "<|zh|>", "<|transcribe|>", "<|0.00|>",
    ]  # fmt: skip
    assert tokens[-1] == "<|endoftext|>" and "<|notimestamps|>" not in tokens
    assert [t for t in tokens if t[2:3].isdigit()] == ["<|0.00|>", "<|2.50|>", "<|2.50|>", "<|6.50|>"]
    text_ids = [i for i, t in zip(window.label_ids, tokens, strict=True) if not t.startswith("<|")]
    assert tokenizer.decode(text_ids) == "你好今天天气很好"


def test_windows_stay_inside_30_seconds_and_keep_order(tokenizer):
    begin, eot = tokenizer.convert_tokens_to_ids("<|0.00|>"), tokenizer.eos_token_id
    parts = [part(str(n), seconds, [100 + n]) for n, seconds in enumerate([10, 12, 9, 25, 3])]
    windows = join_parts(parts, [1, 2, 3], begin, eot)
    assert [w.key for w in windows] == ["0+1", "2", "3+4"]
    assert all(len(w.audio) / SAMPLE_RATE <= 29 for w in windows)
    assert windows[1].label_ids == [1, 2, 3, begin, 102, begin + 450, eot]  # alone: 0.00 ... 9.00


def test_timestamped_labels_learn_their_first_timestamp(tokenizer):
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    plain = label_token_ids(tokenizer, "你好")
    timestamped = [*plain[:3], 50364, *plain[4:-1], 50364 + 50, plain[-1]]
    batch = collate_labels([plain, timestamped], pad_token_id=50257, no_timestamps_id=no_timestamps)
    assert batch.labels[0, :3].tolist() == [IGNORE_INDEX] * 3  # <|zh|> <|transcribe|> <|notimestamps|> forced
    assert batch.labels[1, :3].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 50364]  # <|0.00|> is a target


def test_the_share_of_timestamped_steps():
    steps = [timestamped_step(seed=0, step=s, share=0.25) for s in range(2000)]
    assert 0.22 < sum(steps) / len(steps) < 0.28
    assert steps == [timestamped_step(seed=0, step=s, share=0.25) for s in range(2000)]  # resumable
    assert steps != [timestamped_step(seed=1, step=s, share=0.25) for s in range(2000)]
    assert not any(timestamped_step(0, s, 0.0) for s in range(100)) and all(
        timestamped_step(0, s, 1.0) for s in range(100)
    )


def test_distillation_with_timestamped_windows(tiny_model_dir, small_manifest, tmp_path):
    """Every step on joined windows, with the encoder and the teacher's top-k cached for the plain steps: the
    windows run both encoders live and the KL over the full teacher distribution; the loss is finite and falls."""
    from distil_whisper_zh.distill import DistillOptions, run_distillation
    from distil_whisper_zh.student import CreateStudentOptions, create_student
    from distil_whisper_zh.training.options import TrainingOptions

    student = tmp_path / "student-init"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(student), decoder_layers=1))
    training = TrainingOptions(
        batch_size=3, max_steps=6, warmup_steps=0, learning_rate=1e-3, eval_every=0, save_every=6,
        cache_encoder_states=True, timestamp_share=1.0,
    )  # fmt: skip
    options = DistillOptions(
        student=str(student), teacher=str(tiny_model_dir), data=[str(small_manifest)], out=str(tmp_path / "out"),
        teacher_top_k=8, training=training,
    )  # fmt: skip
    summary = run_distillation(options)
    rows = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert summary.steps == 6 and all(np.isfinite(r["loss"]) and r["kl"] > 0 for r in rows)
    assert rows[-1]["ce"] < rows[0]["ce"]


def test_timestamp_share_is_checked():
    from distil_whisper_zh.errors import DwzError
    from distil_whisper_zh.training.options import TrainingOptions

    with pytest.raises(DwzError, match="--timestamp-share is a share of the steps, from 0 to 1, got 1.5"):
        TrainingOptions(timestamp_share=1.5)


def test_label_segments_cut_the_label_text_where_the_teachers_segments_end():
    from distil_whisper_zh.decoding import Segment
    from distil_whisper_zh.label_segments import label_segments

    # the label keeps the reference's characters (punctuation transfer): the teacher's misheard 汽/门 still align
    teacher = [Segment(0.009, 2.1, "今天天汽很好,"), Segment(2.3, 4.0, "我门去公园吧。")]
    label = "今天天气很好，我们去公园吧。"
    assert label_segments(label, teacher, 4.5) == [[0.0, 2.1, "今天天气很好，"], [2.3, 4.0, "我们去公园吧。"]]
    # marks and spaces stay with the text before them; the pieces joined are the label exactly
    pieces = label_segments("「iPhone 手机」很好", [Segment(0, 2, "iPhone手机"), Segment(2.5, 4, "很好")], 4.5)
    assert [p[2] for p in pieces] == ["「iPhone 手机」", "很好"]
    # a teacher segment no label character falls in gives no piece; times stay inside the clip and in order
    merged = label_segments("很好", [Segment(0.0, 1.0, "嗯"), Segment(1.2, 9.0, "很好")], 4.5)
    assert merged == [[1.2, 4.5, "很好"]]  # the hallucinated 嗯 gives no piece
    # label text after the teacher's last segment (words it missed) joins the last piece, which ends with the clip
    assert label_segments("一二三四五", [Segment(0.5, 2.0, "一二三")], 5.0) == [[0.5, 5.0, "一二三四五"]]
    overlapping = label_segments("一二三四", [Segment(0.0, 2.0, "一二"), Segment(1.5, 3.0, "三四")], 3.0)
    assert overlapping == [[0.0, 2.0, "一二"], [2.0, 3.0, "三四"]]
    assert label_segments("很好", [], 4.5) == [] and label_segments("。", [Segment(0, 1, "好")], 1.0) == []


def test_windows_carry_each_clips_own_segment_times(tokenizer):
    begin, eot = tokenizer.convert_tokens_to_ids("<|0.00|>"), tokenizer.eos_token_id
    first = Part("a", np.zeros(3 * SAMPLE_RATE, np.float32), [1, 2], [(0.5, 1.0, [1]), (1.5, 2.8, [2])])
    second = part("b", 2.0, [3])
    (window,) = join_parts([first, second], [7], begin, eot)
    steps = {0.5: 25, 1.0: 50, 1.5: 75, 2.8: 140, 3.0: 150, 5.0: 250}
    assert window.label_ids == [
        7, begin + steps[0.5], 1, begin + steps[1.0], begin + steps[1.5], 2, begin + steps[2.8],
        begin + steps[3.0], 3, begin + steps[5.0], eot,
    ]  # fmt: skip


def test_distillation_on_labels_with_segment_times(tiny_model_dir, small_manifest, tmp_path):
    """Labels made with pseudo-label --timestamps train on joined windows; their segment times are part of the
    training data's fingerprint (a run or cache made from labels without them is not reused)."""
    from dataclasses import replace

    from distil_whisper_zh.decoding import DecodingOptions
    from distil_whisper_zh.distill import DistillOptions, run_distillation
    from distil_whisper_zh.fingerprint import clips_fingerprint
    from distil_whisper_zh.pseudo_label import PseudoLabelOptions, load_labels, run_pseudo_label
    from distil_whisper_zh.training.data import training_data_fingerprint
    from distil_whisper_zh.training.options import TrainingOptions

    labels = {}
    for timestamps in (False, True):
        out = tmp_path / f"labels-{timestamps}"
        options = PseudoLabelOptions(
            teacher=str(tiny_model_dir), data=[str(small_manifest)], out=str(out), timestamps=timestamps,
            decoding=DecodingOptions(fallback=False),
        )  # fmt: skip
        run_pseudo_label(options)
        labels[timestamps] = load_labels(out).utterances
    timed = [u.fields["label_segments"] for u in labels[True] if "label_segments" in u.fields]
    assert timed and all(len(segment) == 3 for segments in timed for segment in segments)
    untimed = [replace(u, fields={k: v for k, v in u.fields.items() if k != "label_segments"}) for u in labels[True]]
    assert training_data_fingerprint(labels[True]) != training_data_fingerprint(untimed)
    assert training_data_fingerprint(labels[False]) == clips_fingerprint(labels[False])  # as before segments
    training = TrainingOptions(
        batch_size=3, max_steps=2, warmup_steps=0, eval_every=0, save_every=2, timestamp_share=1.0
    )  # fmt: skip
    options = DistillOptions(
        student=str(tiny_model_dir), teacher=str(tiny_model_dir), data=[str(tmp_path / "labels-True")],
        out=str(tmp_path / "out"), training=training,
    )  # fmt: skip
    assert run_distillation(options).steps == 2


def test_speech_bounds_cut_edge_silence_only():
    speech = np.sin(np.linspace(0, 2000, SAMPLE_RATE)).astype(np.float32)  # 1 s of tone
    quiet = np.full(SAMPLE_RATE // 2, 1e-4, np.float32)  # 60 dB below the tone
    start, end = speech_bounds(np.concatenate([quiet, speech, quiet]))
    margin = EDGE_MARGIN * FRAME
    assert (start, end) == (SAMPLE_RATE // 2 - margin, SAMPLE_RATE // 2 + SAMPLE_RATE + margin)
    assert speech_bounds(np.zeros(SAMPLE_RATE, np.float32)) == (0, SAMPLE_RATE)  # all silent: kept whole
    assert speech_bounds(np.ones(100, np.float32)) == (0, 100)  # shorter than a frame


def test_tightened_parts_keep_their_words_between_pauses(tokenizer):
    """Edge silence cut, a pause drawn before each part: segments shift with their speech and stay inside it;
    the same draw gives the same windows (a resumed run), other steps other pauses."""
    speech = np.sin(np.linspace(0, 4000, 2 * SAMPLE_RATE)).astype(np.float32)
    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    padded = np.concatenate([silence, speech, silence])  # 0.5 s + 2 s of speech + 0.5 s
    parts = [Part("a", padded, [1]), Part("b", padded, [2], [(0.4, 1.5, [2]), (1.5, 2.6, [3])])]
    first, second = tighten(parts, pause_rng(0, 3, ["a", "b"]))
    for tight in (first, second):
        pause = tight.segments[0][0]
        assert 0.0 <= pause < MAX_PAUSE
        assert len(tight.audio) == round(pause * SAMPLE_RATE) + 2 * SAMPLE_RATE + 2 * EDGE_MARGIN * FRAME
        assert not tight.audio[: round(pause * SAMPLE_RATE)].any()  # the pause is silence
    assert first.segments == [(first.segments[0][0], first.segments[0][0] + 2.08, [1])]  # 2 s of speech + margins
    shift = second.segments[0][0]  # the first segment began in the cut silence: it starts at the speech
    assert second.segments[1][:2] == pytest.approx((shift + 1.04, shift + 2.08))  # 1.5 s - 0.46 s cut; clipped
    again = tighten(parts, pause_rng(0, 3, ["a", "b"]))
    assert [p.segments for p in again] == [first.segments, second.segments]
    assert tighten(parts, pause_rng(0, 4, ["a", "b"]))[0].segments != first.segments
