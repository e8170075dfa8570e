"""Digits of the teacher folded onto labels that spell numbers (numeral_tokens.py), and the KL that results."""

import pytest
import torch

from distil_whisper_zh.distill.losses import IGNORE_INDEX, LossWeights, TopK, distillation_loss, kl_divergence
from distil_whisper_zh.distill.trainer import DistillOptions, fold_sources, label_folds
from distil_whisper_zh.numeral_tokens import NumeralSpellings, digit_token_ids
from distil_whisper_zh.script_tokens import TraditionalSpellings
from distil_whisper_zh.training.identity import run_differences, same_run, upgraded


@pytest.fixture(scope="module")
def numerals(tokenizer):
    return NumeralSpellings(tokenizer)


def _pieces(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_digit_tokens_are_the_tokens_that_begin_with_a_digit(tokenizer):
    ids = digit_token_ids(tokenizer)
    texts = {tokenizer.decode([i]) for i in ids}
    assert {"3", "30", " 2000", "000"} <= texts
    assert all(t.lstrip()[0] in "0123456789０１２３４５６７８９" for t in texts)
    assert not {"三", "年", " ", "%"} & texts
    assert len(ids) == 426  # whisper's multilingual vocabulary


def test_positions_are_where_a_label_token_begins_a_numeral_character(tokenizer, numerals):
    text = "观察三十年零零后"  # 零 is two byte pieces: only its first begins the character
    label = _pieces(tokenizer, text)
    prompt = [IGNORE_INDEX, IGNORE_INDEX]
    positions = numerals.positions(prompt + label + [tokenizer.eos_token_id])
    zero = _pieces(tokenizer, "零")
    assert len(zero) == 2
    assert [label[p - 2] for p in positions] == [*_pieces(tokenizer, "三十"), zero[0], zero[0]]
    assert positions == [4, 5, 7, 9]


def test_labels_that_write_digits_or_no_numbers_have_no_positions(tokenizer, numerals):
    assert numerals.positions(_pieces(tokenizer, "观察30年来的人口")) == []
    assert numerals.positions(_pieces(tokenizer, "调高温度")) == []
    assert numerals.positions([IGNORE_INDEX] * 4) == []


def test_in_batch_pairs_each_numeral_position_with_every_digit_token(tokenizer, numerals):
    rows = [_pieces(tokenizer, "赔两千元"), _pieces(tokenizer, "的")]
    width = max(map(len, rows))
    labels = torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in rows])
    folds = numerals.in_batch(labels)
    digits = numerals.digit_ids.tolist()
    assert folds.shape == (2 * len(digits), 3)
    places = folds[:, :2].unique(dim=0).tolist()
    assert [row for row, _ in places] == [0, 0]
    assert [labels[0, p].item() for _, p in places] == _pieces(tokenizer, "两千")
    assert folds[:, 2].tolist() == digits * 2
    assert numerals.in_batch(labels[1:]).shape == (0, 3)


def _number_case(tokenizer):
    """Label 三十年; the teacher says 30 where the label says 三 (90%), then 十 and 年 as the label does; the student
    writes the label's characters."""
    label = _pieces(tokenizer, "三十年")
    thirty = _pieces(tokenizer, "30")
    assert len(label) == 3 and len(thirty) == 1
    vocab = len(tokenizer)
    teacher = torch.full((1, 3, vocab), -20.0)
    student = torch.full((1, 3, vocab), -20.0)
    for position, token in enumerate(label):
        teacher[0, position, token] = 5.0
        student[0, position, token] = 5.0
    teacher[0, 0, thirty[0]] = 5.0 + torch.log(torch.tensor(9.0))  # 90% on 30, 10% on 三
    return student, teacher, torch.tensor([label]), thirty[0]


def test_folded_kl_does_not_teach_digits_where_the_label_spells_the_number(tokenizer, numerals):
    student, teacher, labels, thirty = _number_case(tokenizer)
    folds = numerals.in_batch(labels)
    plain = kl_divergence(student, teacher, labels, temperature=1.0)
    folded = kl_divergence(student, teacher, labels, temperature=1.0, label_folds=folds)
    assert plain.item() > 0.5  # 0.9 * log(0.9 / tiny) at position 0, averaged over 3
    assert folded.item() == pytest.approx(0.0, abs=1e-4)
    # the recipe's path: the teacher's cached top-k, and the gradient pulls towards 三, not 30
    top = teacher.topk(32, dim=-1)
    student.requires_grad_(True)
    weights = LossWeights(ce_weight=0.0, kl_weight=1.0, temperature=1.0)
    student.data[0, 0, labels[0, 0]] = 4.0  # a student slightly less sure of 三
    three = labels[0, 0]
    distillation_loss(student, TopK(top.values, top.indices), labels, weights, label_folds=folds).total.backward()
    assert student.grad[0, 0, three] < 0  # folded: towards 三
    student.grad = None
    distillation_loss(student, TopK(top.values, top.indices), labels, weights).total.backward()
    assert student.grad[0, 0, thirty] < 0 < student.grad[0, 0, three]  # unfolded: from 三 towards 30


def test_a_distillation_checkpoint_from_before_numeral_folds_is_the_same_run_as_todays_default():
    today = {"student": "s", "teacher": "t", "fold_teacher_numerals": False, "training": {"seed": 0}}
    defaults = {"fold_teacher_numerals": False, "training": {"seed": 0}}
    before = {"student": "s", "teacher": "t", "training": {"seed": 0}}  # it took the teacher's digits as they were
    assert same_run(upgraded(before), today, defaults)
    assert run_differences(upgraded(before), {**today, "fold_teacher_numerals": True}, defaults) == [
        "fold_teacher_numerals"
    ]
    # a run of the versions where folds were on unless --keep-teacher-numerals
    folded = {"student": "s", "teacher": "t", "keep_teacher_numerals": False, "training": {"seed": 0}}
    assert same_run(upgraded(folded), {**today, "fold_teacher_numerals": True}, defaults)
    assert same_run(upgraded({**folded, "keep_teacher_numerals": True}), today, defaults)


def test_distillation_folds_traditional_pieces_and_digits_each_once(tokenizer):
    labels = torch.tensor([_pieces(tokenizer, "规定三十")])
    both = label_folds(
        labels, fold_sources(tokenizer, DistillOptions("s", "t", ["d"], "o", fold_teacher_numerals=True))
    )
    numerals = NumeralSpellings(tokenizer)
    traditional = TraditionalSpellings(tokenizer).in_batch(labels)
    assert both.tolist() == torch.cat([traditional, numerals.in_batch(labels)]).unique(dim=0).tolist()
    assert len(both) == len(traditional) + 2 * len(numerals.digit_ids) and len(traditional) == 1
    assert label_folds(labels, [numerals, numerals]).tolist() == numerals.in_batch(labels).unique(dim=0).tolist()
    kept = DistillOptions("s", "t", ["d"], "o", keep_teacher_script=True)
    assert label_folds(labels, fold_sources(tokenizer, kept)) is None  # the default: the teacher's digits as they are
