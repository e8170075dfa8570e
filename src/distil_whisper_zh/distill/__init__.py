"""Knowledge distillation: the CE + KL loss and the trainer that feeds it teacher and student logits."""

from .losses import LossWeights, cross_entropy, distillation_loss, kl_divergence
from .trainer import Distiller, DistillOptions, run_distillation

__all__ = [
    "DistillOptions",
    "Distiller",
    "LossWeights",
    "cross_entropy",
    "distillation_loss",
    "kl_divergence",
    "run_distillation",
]
