import pytest
import torch

from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.student import (
    CreateStudentOptions,
    create_student,
    maximally_spaced_layers,
    remap_alignment_heads,
)
from distil_whisper_zh.training.batches import IGNORE_INDEX, PROMPT_LENGTH, collate_labels, label_token_ids


@pytest.mark.parametrize(
    ("teacher", "student", "expected"),
    [
        (12, 2, [0, 11]),
        (6, 2, [0, 5]),
        (12, 4, [0, 4, 7, 11]),
        (32, 3, [0, 16, 31]),
        (6, 6, [0, 1, 2, 3, 4, 5]),
        (6, 1, [5]),
    ],
)
def test_maximally_spaced_layers(teacher, student, expected):
    assert maximally_spaced_layers(teacher, student) == expected


@pytest.mark.parametrize("student", [0, 7])
def test_impossible_layer_counts(student):
    with pytest.raises(DwzError, match=r"a student needs 1\.\.6 layers"):
        maximally_spaced_layers(6, student)


def test_alignment_heads_follow_the_kept_layers():
    heads = [[3, 1], [4, 2], [5, 1], [5, 4]]  # whisper-base's, partly
    assert remap_alignment_heads(heads, [0, 5]) == [[1, 1], [1, 4]]
    assert remap_alignment_heads(heads, [0, 1]) == []


def test_create_student_copies_the_chosen_layers(tiny_model_dir, tmp_path, tokenizer):
    from conftest import build_tiny_whisper

    teacher_dir = build_tiny_whisper(tokenizer, tmp_path / "teacher", seed=3, decoder_layers=4)
    summary = create_student(CreateStudentOptions(teacher=str(teacher_dir), out=str(tmp_path / "s"), decoder_layers=2))
    assert summary.decoder_layer_map == [0, 3] and summary.encoder_layer_map == [0, 1]
    assert summary.student_params < summary.teacher_params
    teacher, student = load_whisper(str(teacher_dir)).model, load_whisper(str(tmp_path / "s")).model
    assert student.config.decoder_layers == 2
    for student_index, teacher_index in enumerate([0, 3]):
        s = student.model.decoder.layers[student_index].state_dict()
        t = teacher.model.decoder.layers[teacher_index].state_dict()
        assert all(torch.equal(s[k], t[k]) for k in s)
    assert torch.equal(student.model.encoder.layers[1].fc1.weight, teacher.model.encoder.layers[1].fc1.weight)
    assert student.generation_config.alignment_heads  # remapped, or the last layer's heads
    out = student.generate(torch.zeros(1, 80, 3000), language="zh", task="transcribe", max_new_tokens=3)
    assert out.shape[0] == 1


def _always_says(model, token_id: int) -> None:
    """Make every decoder position's logits peak at `token_id` (constant final hidden state, one non-zero row)."""
    with torch.no_grad():
        model.model.decoder.layer_norm.weight.zero_()
        model.model.decoder.layer_norm.bias.fill_(1.0)
        model.proj_out.weight.zero_()
        model.proj_out.weight[token_id] = 1.0


def test_students_suppress_traditional_only_tokens(tiny_model_dir, tmp_path, tokenizer):
    zhe, men = (tokenizer.convert_tokens_to_ids(tokenizer.tokenize(c))[0] for c in ("這", "們"))
    simplified = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("这"))[0]
    teacher_suppressed = set(load_whisper(str(tiny_model_dir)).model.generation_config.suppress_tokens)
    summary = create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(tmp_path / "s")))
    kept = create_student(CreateStudentOptions(str(tiny_model_dir), str(tmp_path / "k"), keep_teacher_script=True))
    assert summary.suppressed_traditional > 300 and kept.suppressed_traditional == 0
    student, keeper = load_whisper(str(tmp_path / "s")).model, load_whisper(str(tmp_path / "k")).model
    suppressed = set(student.generation_config.suppress_tokens)
    assert {zhe, men} <= suppressed and simplified not in suppressed and teacher_suppressed <= suppressed
    assert set(keeper.generation_config.suppress_tokens) == teacher_suppressed
    for model in (student, keeper):
        _always_says(model, zhe)
    features = torch.zeros(1, 80, 3000)
    said = [
        m.generate(features, language="zh", task="transcribe", max_new_tokens=4)[0].tolist() for m in (student, keeper)
    ]
    assert zhe in said[1] and zhe not in said[0]


def test_explicit_layer_ids_are_checked(tiny_model_dir, tmp_path):
    with pytest.raises(DwzError, match="--decoder-layer-ids"):
        create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(tmp_path), decoder_layer_ids=[0, 9]))


def test_label_ids_and_collation(tokenizer):
    ids = label_token_ids(tokenizer, "设定二十九度")
    assert ids[:PROMPT_LENGTH] == [50258, 50260, 50359, 50363] and ids[-1] == 50257
    short = label_token_ids(tokenizer, "好")
    batch = collate_labels([ids, short], pad_token_id=50257)
    assert batch.decoder_input_ids.shape == batch.labels.shape == (2, len(ids) - 1)
    assert batch.decoder_input_ids[0].tolist() == ids[:-1]
    assert batch.labels[0, PROMPT_LENGTH - 1 :].tolist() == ids[PROMPT_LENGTH:]  # text then <|endoftext|>
    assert batch.labels[0, : PROMPT_LENGTH - 1].tolist() == [IGNORE_INDEX] * 3  # forced prompt: no loss
    assert batch.labels[1, len(short) - 1 :].eq(IGNORE_INDEX).all()  # padding: no loss
    assert batch.decoder_input_ids[1, len(short) - 1 :].eq(50257).all()
