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
