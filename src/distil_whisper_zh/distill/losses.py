"""The distillation loss: `ce_weight * CE(labels) + kl_weight * T^2 * KL(teacher_T || student_T)`.

All functions take logits of shape (batch, positions, vocab) and labels of shape (batch, positions) in which
IGNORE_INDEX marks positions that carry no loss (padding, and the forced language/task prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..training.batches import IGNORE_INDEX


@dataclass(frozen=True)
class LossWeights:
    """The loss: ce_weight * CE + kl_weight * T^2 * KL(teacher_T || student_T) + encoder_weight * MSE."""

    ce_weight: float = 0.8
    """weight of the cross-entropy against the (pseudo-)labels"""
    kl_weight: float = 1.0
    """weight of the KL against the teacher's distribution"""
    temperature: float = 2.0
    """softmax temperature of the KL (its term is scaled by T^2 to keep its gradient size)"""
    label_smoothing: float = 0.0
    """label smoothing of the CE term (e.g. 0.1)"""
    # the student's states on its own input (a clip + margin with --audio-context dynamic) against the teacher's on
    # the full 30-s window, over the positions both have: FUTO whisper-acft's objective
    encoder_weight: float = 0.0
    """weight of an MSE between the student's encoder states and the teacher's (needs --train-encoder)"""


@dataclass
class TopK:
    """The teacher's k largest logits per position: values (batch, positions, k) and their token ids."""

    values: torch.Tensor
    ids: torch.Tensor


@dataclass
class LossParts:
    total: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor


def cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean token cross-entropy over positions whose label is not IGNORE_INDEX."""
    logits, targets = student_logits.flatten(0, 1).float(), labels.flatten()
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)


def kl_divergence(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    token_map: torch.Tensor | None = None,
    label_folds: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over labelled positions of KL(teacher || student), both softened by `temperature`, times T^2.

    `token_map` (vocab,), if given, moves each token's teacher probability onto `token_map[token]` first (see
    script_tokens.py: Traditional tokens onto their Simplified forms); `label_folds` (N, 3) rows of (row,
    position, token) move that token's probability at that position onto the position's label
    (`TraditionalSpellings.in_batch`: the Traditional pieces of the label's own character).
    """
    mask = labels != IGNORE_INDEX
    if not mask.any():
        return student_logits.sum() * 0.0
    # labelled positions first: every (positions, vocab) tensor below has no padding rows
    teacher_probs = F.softmax(teacher_logits[mask].float() / temperature, dim=-1)
    if token_map is not None:
        index = token_map.to(teacher_probs.device).expand_as(teacher_probs)
        teacher_probs = torch.zeros_like(teacher_probs).scatter_add_(-1, index, teacher_probs)
    if label_folds is not None and len(label_folds):
        row, position, token = label_folds.to(teacher_probs.device).unbind(-1)
        keep = mask[row, position]
        row, position, token = row[keep], position[keep], token[keep]
        at = (mask.flatten().cumsum(0) - 1).view_as(mask)[row, position]  # row of each fold in teacher_probs
        moved = teacher_probs[at, token]
        teacher_probs.index_put_((at, token), torch.zeros_like(moved))
        teacher_probs.index_put_((at, labels[row, position]), moved, accumulate=True)
    student_log_probs = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)
    cross = torch.linalg.vecdot(teacher_probs, student_log_probs)  # sum_v p log q, without a (positions, vocab) product
    per_position = torch.xlogy(teacher_probs, teacher_probs).sum(-1) - cross
    return per_position.mean() * temperature**2


def rename_onto_labels(ids: torch.Tensor, labels: torch.Tensor, label_folds: torch.Tensor) -> torch.Tensor:
    """Top-k token ids (batch, positions, k) with each (row, position, token) of `label_folds` renamed to the
    position's label."""
    row, position, token = label_folds.to(ids.device).unbind(-1)
    fold, entry = (ids[row, position] == token[:, None]).nonzero(as_tuple=True)
    renamed = ids.clone()
    renamed[row[fold], position[fold], entry] = labels[row[fold], position[fold]]
    return renamed


def top_k_kl_divergence(
    student_logits: torch.Tensor,
    teacher_top: TopK,
    labels: torch.Tensor,
    temperature: float,
    token_map: torch.Tensor | None = None,
    label_folds: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(teacher || student) over the teacher's k most likely tokens per position, times T^2.

    The teacher's distribution is its softened top-k logits renormalised over those k tokens; the student's
    log-probabilities are over the whole vocabulary, taken at the same tokens. With k = vocabulary size this is
    exactly `kl_divergence`. `token_map` and `label_folds` rename the teacher's tokens first (as in
    `kl_divergence`); entries that then share a token count as one (their probabilities add up).
    """
    mask = labels != IGNORE_INDEX
    if not mask.any():
        return student_logits.sum() * 0.0
    ids = teacher_top.ids
    if token_map is not None:
        ids = token_map.to(ids.device)[ids]
    if label_folds is not None and len(label_folds):
        ids = rename_onto_labels(ids, labels, label_folds)
    ids = ids[mask]
    student_log_probs = F.log_softmax(student_logits[mask].float() / temperature, dim=-1)
    student_at_top = student_log_probs.gather(-1, ids)
    teacher_probs = F.softmax(teacher_top.values[mask].float() / temperature, dim=-1)
    # each entry's token total: sum_i p_i log P(token_i) is the teacher's entropy term over distinct tokens
    token_probs = torch.zeros_like(student_log_probs).scatter_add_(-1, ids, teacher_probs).gather(-1, ids)
    # xlogy: a probability that underflowed to 0 contributes 0, not 0 * log 0 = NaN
    per_position = (torch.xlogy(teacher_probs, token_probs) - teacher_probs * student_at_top).sum(-1)
    return per_position.mean() * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher: torch.Tensor | TopK,
    labels: torch.Tensor,
    weights: LossWeights,
    token_map: torch.Tensor | None = None,
    label_folds: torch.Tensor | None = None,
) -> LossParts:
    """`teacher` is the teacher's full logits, or its cached top-k (see teacher_cache.py); `token_map` and
    `label_folds` fold the teacher's probabilities onto other tokens before the KL (script_tokens.py)."""
    ce = cross_entropy(student_logits, labels, weights.label_smoothing)
    kl_of = top_k_kl_divergence if isinstance(teacher, TopK) else kl_divergence
    kl = kl_of(student_logits, teacher, labels, weights.temperature, token_map, label_folds)
    return LossParts(total=weights.ce_weight * ce + weights.kl_weight * kl, ce=ce, kl=kl)


def encoder_state_loss(student_states: torch.Tensor, teacher_states: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the student's encoder states (batch, P, d) and the teacher's (batch, >= P, d)
    over the P positions the student has (its clip and margin; the teacher's run on to 30 s)."""
    shared = teacher_states[:, : student_states.shape[1]].to(student_states.dtype)
    return F.mse_loss(student_states.float(), shared.float())
