import math

import pytest
import torch
import torch.nn.functional as F

from distil_whisper_zh.distill.losses import (
    IGNORE_INDEX,
    LossWeights,
    TopK,
    cross_entropy,
    distillation_loss,
    kl_divergence,
    top_k_kl_divergence,
)
from distil_whisper_zh.script_tokens import (
    TraditionalSpellings,
    simplified_token_map,
    token_bytes,
    traditional_forms,
    traditional_token_ids,
)


def _kl_by_hand(p_logits, q_logits, temperature):
    """KL(p || q) of one position, summed over a 3-word vocabulary with plain Python math."""
    p = [math.exp(x / temperature) for x in p_logits]
    q = [math.exp(x / temperature) for x in q_logits]
    p = [x / sum(p) for x in p]
    q = [x / sum(q) for x in q]
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def test_kl_matches_hand_computation_with_temperature_scaling():
    teacher = torch.tensor([[[2.0, 0.5, -1.0]]])
    student = torch.tensor([[[0.0, 1.0, 0.0]]])
    labels = torch.tensor([[1]])
    for temperature in (1.0, 2.0, 4.0):
        expected = _kl_by_hand([2.0, 0.5, -1.0], [0.0, 1.0, 0.0], temperature) * temperature**2
        assert kl_divergence(student, teacher, labels, temperature).item() == pytest.approx(expected, rel=1e-5)


def test_kl_is_zero_for_identical_distributions_and_ignores_masked_positions():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]])
    assert kl_divergence(logits, logits, labels, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[0, 2] += 100.0  # wildly different, but only on a masked (padding) position
    other[1, 1:] -= 50.0
    assert kl_divergence(other, logits, labels, 2.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_averages_over_labelled_positions_only():
    teacher = torch.tensor([[[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]]])
    student = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    one = kl_divergence(student, teacher, torch.tensor([[1, IGNORE_INDEX]]), 1.0)
    both = kl_divergence(student, teacher, torch.tensor([[1, 1]]), 1.0)
    assert both.item() == pytest.approx(one.item() / 2, rel=1e-6)  # the second position adds zero KL


def test_cross_entropy_ignores_padding():
    logits = torch.randn(1, 3, 4)
    labels = torch.tensor([[2, 1, IGNORE_INDEX]])
    expected = F.cross_entropy(logits[0, :2], labels[0, :2])
    assert cross_entropy(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_label_smoothing_spreads_a_share_of_the_target_by_hand():
    logits = torch.tensor([[[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]]])
    labels = torch.tensor([[0, IGNORE_INDEX]])
    log_q = [x - math.log(sum(math.exp(y) for y in [2.0, 0.5, -1.0])) for x in [2.0, 0.5, -1.0]]
    expected = -(0.9 * log_q[0] + 0.1 * sum(log_q) / 3)  # (1 - e) on the label, e spread over the 3 words
    assert cross_entropy(logits, labels, label_smoothing=0.1).item() == pytest.approx(expected, rel=1e-6)
    weights = LossWeights(ce_weight=1.0, kl_weight=0.0, label_smoothing=0.1)
    assert distillation_loss(logits, logits, labels, weights).ce.item() == pytest.approx(expected, rel=1e-6)


def test_total_is_the_weighted_sum():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    labels = torch.tensor([[1, 2, 3, IGNORE_INDEX], [0, 5, IGNORE_INDEX, IGNORE_INDEX]])
    weights = LossWeights(ce_weight=0.8, kl_weight=1.0, temperature=2.0)
    parts = distillation_loss(student, teacher, labels, weights)
    assert parts.total.item() == pytest.approx(0.8 * parts.ce.item() + 1.0 * parts.kl.item(), rel=1e-6)
    assert parts.kl.item() > 0 and parts.ce.item() > 0


def test_top_k_kl_with_the_whole_vocabulary_is_the_full_kl():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 50), torch.randn(2, 5, 50)
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 5, 6], [IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX]])
    top = teacher.topk(50, dim=-1)
    full = kl_divergence(student, teacher, labels, temperature=2.0)
    sparse = top_k_kl_divergence(student, TopK(top.values, top.indices), labels, temperature=2.0)
    torch.testing.assert_close(sparse, full)


def test_top_k_kl_renormalises_the_teacher_over_its_k_tokens():
    teacher = torch.tensor([[[3.0, 1.0, -2.0]]])
    student = torch.tensor([[[0.5, 0.0, 1.0]]])
    labels = torch.tensor([[1]])
    top = teacher.topk(2, dim=-1)  # tokens 0 and 1
    p = [math.exp(3.0), math.exp(1.0)]
    p = [x / sum(p) for x in p]
    log_q = torch.log_softmax(student[0, 0], dim=-1).tolist()
    expected = sum(pi * (math.log(pi) - log_q[i]) for i, pi in enumerate(p))
    got = top_k_kl_divergence(student, TopK(top.values, top.indices), labels, temperature=1.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    losses = distillation_loss(student, TopK(top.values, top.indices), labels, LossWeights(0.0, 1.0, 1.0))
    assert losses.total.item() == pytest.approx(expected, rel=1e-5)


def test_simplified_token_map_sends_traditional_tokens_to_their_simplified_forms(tokenizer):
    mapping = simplified_token_map(tokenizer)
    assert mapping.shape == (len(tokenizer),)

    def one(text):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert len(ids) == 1, text
        return ids[0]

    assert mapping[one("這")] == one("这")
    assert mapping[one("們")] == one("们")
    assert mapping[one("这")] == one("这")  # Simplified and script-neutral tokens stay
    assert mapping[one("的")] == one("的")
    specials = torch.arange(tokenizer.eos_token_id, len(tokenizer))
    assert torch.equal(mapping[specials], specials)  # <|zh|>, timestamps, ... untouched
    changed = (mapping != torch.arange(len(tokenizer))).nonzero().flatten().tolist()
    assert 100 < len(changed) < 1000  # a few hundred Traditional tokens in Whisper's vocabulary
    assert all(tokenizer.decode([mapping[i]]) != tokenizer.decode([i]) for i in changed)
    assert mapping[one("乾")] == one("乾")  # 乾隆, 乾坤: Simplified too
    assert mapping[one("於")] == one("于")  # Simplified writes 於 only for a surname; whisper-base writes 由於
    assert traditional_token_ids(tokenizer) == changed


def _two_script_case():
    """Vocabulary of 4: token 1 is 這, token 2 its Simplified form 这. The teacher says 這 (0.9) or 这 (0.05)."""
    teacher = torch.log(torch.tensor([[[0.02, 0.9, 0.05, 0.03]]]))
    student = torch.log(torch.tensor([[[0.02, 0.03, 0.92, 0.03]]]))  # writes 这 where the teacher writes 這
    token_map = torch.tensor([0, 2, 2, 3])
    return student, teacher, torch.tensor([[2]]), token_map


def test_folded_kl_does_not_punish_the_simplified_form_of_the_teachers_token():
    student, teacher, labels, token_map = _two_script_case()
    plain = kl_divergence(student, teacher, labels, temperature=1.0)
    folded = kl_divergence(student, teacher, labels, temperature=1.0, token_map=token_map)
    assert plain.item() > 2.0  # the student is told to write 這
    # folded teacher: [0.02, 0, 0.95, 0.03] vs the student [0.02, 0.03, 0.92, 0.03]
    expected = 0.02 * math.log(0.02 / 0.02) + 0.95 * math.log(0.95 / 0.92) + 0.03 * math.log(0.03 / 0.03)
    assert folded.item() == pytest.approx(expected, rel=1e-4)


def test_folded_top_k_kl_merges_entries_that_become_one_token():
    student, teacher, labels, token_map = _two_script_case()
    top = teacher.topk(4, dim=-1)
    folded_full = kl_divergence(student, teacher, labels, 1.0, token_map)
    folded_top = top_k_kl_divergence(student, TopK(top.values, top.indices), labels, 1.0, token_map)
    torch.testing.assert_close(folded_top, folded_full)
    # gradients agree too: the student is pulled towards 这, not 這
    student.requires_grad_(True)
    top_k_kl_divergence(student, TopK(top.values, top.indices), labels, 1.0, token_map).backward()
    assert student.grad[0, 0, 1] > 0 > student.grad[0, 0, 2]


def test_folding_with_the_identity_map_changes_nothing():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 50), torch.randn(2, 5, 50)
    labels = torch.tensor([[IGNORE_INDEX, 3, 4, 5, 6], [IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX]])
    identity = torch.arange(50)
    torch.testing.assert_close(
        kl_divergence(student, teacher, labels, 2.0, identity), kl_divergence(student, teacher, labels, 2.0)
    )
    top = teacher.topk(8, dim=-1)
    top = TopK(top.values, top.indices)
    torch.testing.assert_close(
        top_k_kl_divergence(student, top, labels, 2.0, identity), top_k_kl_divergence(student, top, labels, 2.0)
    )


def test_traditional_forms_map_simplified_characters_to_their_traditional_ones():
    forms = traditional_forms()
    assert forms["规"] == ("規",)
    assert set(forms["发"]) == {"發", "髮"}
    assert "的" not in forms and "乾" not in forms["干"] and "於" in forms["于"]


def test_token_bytes_are_the_utf8_pieces_of_the_vocabulary(tokenizer):
    pieces = token_bytes(tokenizer)
    assert len(pieces) == tokenizer.eos_token_id
    for text in ["规定", "這個", "脉络", "hello"]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert b"".join(pieces[i] for i in ids) == text.encode("utf-8")


@pytest.fixture(scope="module")
def spellings(tokenizer):
    return TraditionalSpellings(tokenizer)


def _pieces(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def test_spellings_find_the_traditional_first_piece_of_a_two_piece_character(tokenizer, spellings):
    label = _pieces(tokenizer, "规定")  # 规 = e8a7 84, 規 = e8a6 8f: the script is chosen at the first piece
    assert len(label) == 3
    gui_first = _pieces(tokenizer, "規")[0]
    prompt = [IGNORE_INDEX, IGNORE_INDEX]
    pairs = spellings.along(prompt + label + [tokenizer.eos_token_id])
    assert pairs == [(2, gui_first)]  # position 2 = the first piece of 规, after the prompt
    assert spellings.pieces[gui_first] == "規".encode()[:2]


def test_spellings_fold_a_lead_piece_only_where_the_label_writes_another_token(tokenizer, spellings):
    mai_simplified, mai_traditional = _pieces(tokenizer, "脉"), _pieces(tokenizer, "脈")  # [e884, 89] vs [e8, 8488]
    assert spellings.pieces[mai_traditional[0]] == b"\xe8" and mai_simplified[0] != mai_traditional[0]
    assert spellings.along(mai_simplified) == [(0, mai_traditional[0])]
    # characters without a Traditional form, and text that is already one token per word, give nothing
    assert spellings.along(_pieces(tokenizer, "的他们")) == []
    assert spellings.along([IGNORE_INDEX] * 3) == []


def test_spellings_in_batch_are_row_position_token_triples(tokenizer, spellings):
    rows = [_pieces(tokenizer, "规定"), _pieces(tokenizer, "的")]
    width = max(map(len, rows))
    labels = torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in rows])
    folds = spellings.in_batch(labels)
    assert folds.tolist() == [[0, 0, _pieces(tokenizer, "規")[0]]]
    assert spellings.in_batch(labels[1:]).shape == (0, 3)


def _label_fold_case():
    """Vocabulary of 4, two positions with label 2. At position 0 token 1 is the Traditional piece of the label's
    character (folded onto 2); at position 1 the same token is another character's piece (left alone)."""
    teacher = torch.log(torch.tensor([[[0.02, 0.9, 0.05, 0.03], [0.02, 0.9, 0.05, 0.03]]]))
    student = torch.log(torch.tensor([[[0.02, 0.03, 0.92, 0.03], [0.02, 0.03, 0.92, 0.03]]]))
    return student, teacher, torch.tensor([[2, 2]]), torch.tensor([[0, 0, 1]])


def test_label_folds_move_the_teachers_piece_onto_the_label_at_that_position_only():
    student, teacher, labels, folds = _label_fold_case()
    folded = kl_divergence(student, teacher, labels, temperature=1.0, label_folds=folds)
    plain_second = kl_divergence(student[:, 1:], teacher[:, 1:], labels[:, 1:], temperature=1.0)
    first = 0.02 * math.log(0.02 / 0.02) + 0.95 * math.log(0.95 / 0.92) + 0.03 * math.log(0.03 / 0.03)
    assert folded.item() == pytest.approx((first + plain_second.item()) / 2, rel=1e-4)
    empty = torch.zeros(0, 3, dtype=torch.long)
    torch.testing.assert_close(
        kl_divergence(student, teacher, labels, 1.0, label_folds=empty), kl_divergence(student, teacher, labels, 1.0)
    )


def test_label_folds_in_the_top_k_kl_match_the_full_kl():
    student, teacher, labels, folds = _label_fold_case()
    top = teacher.topk(4, dim=-1)
    full = kl_divergence(student, teacher, labels, 1.0, label_folds=folds)
    top_k = top_k_kl_divergence(student, TopK(top.values, top.indices), labels, 1.0, label_folds=folds)
    torch.testing.assert_close(top_k, full)
    student.requires_grad_(True)
    weights = LossWeights(ce_weight=0.0, kl_weight=1.0, temperature=1.0)
    distillation_loss(student, TopK(top.values, top.indices), labels, weights, label_folds=folds).total.backward()
    assert student.grad[0, 0, 1] > 0 > student.grad[0, 0, 2]  # position 0: towards the label
    assert student.grad[0, 1, 1] < 0  # position 1: still towards the teacher's token


def test_a_teacher_probability_that_underflows_to_zero_adds_nothing_not_nan():
    # float16 top-k values: a logit 1e4 below the best one underflows to probability 0 after softmax
    teacher = torch.tensor([[[0.0, -1.0e4, -2.0e4]]])
    student = torch.tensor([[[0.5, 0.0, 1.0]]], requires_grad=True)
    labels = torch.tensor([[0]])
    top = teacher.topk(3, dim=-1)
    got = top_k_kl_divergence(student, TopK(top.values, top.indices), labels, temperature=1.0)
    expected = -torch.log_softmax(student[0, 0].detach(), dim=-1)[0].item()  # all the teacher's mass on token 0
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got.backward()
    assert torch.isfinite(student.grad).all()
    assert kl_divergence(student, teacher, labels, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_full_kl_folds_at_labelled_positions_among_padding():
    # padding rows before the fold's position: the fold must land on the right labelled row after masking
    teacher = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 1.0], [0.0, 3.0, 0.0]]])
    student = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    labels = torch.tensor([[IGNORE_INDEX, 1, 0]])
    folds = torch.tensor([[0, 2, 1]])  # at position 2, the teacher's token 1 counts as the label (token 0)
    got = kl_divergence(student, teacher, labels, 1.0, label_folds=folds)
    folded_teacher = torch.tensor(
        [[[0.0, 0.0, 0.0], [2.0, 0.0, 1.0], [math.log(math.exp(0.0) + math.exp(3.0)), -1e9, 0.0]]]
    )
    expected = kl_divergence(student, folded_teacher, labels, 1.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
