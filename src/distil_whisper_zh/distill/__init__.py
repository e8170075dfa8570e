"""Knowledge distillation: loss, label batches, encoder cache, checkpoints and the training loop."""

from .losses import LossWeights, cross_entropy, distillation_loss, kl_divergence
from .trainer import DistillOptions, DistillSummary, run_distillation

__all__ = [
    "DistillOptions",
    "DistillSummary",
    "LossWeights",
    "cross_entropy",
    "distillation_loss",
    "kl_divergence",
    "run_distillation",
]
