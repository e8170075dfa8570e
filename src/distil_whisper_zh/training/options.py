"""Training hyper-parameters shared by `dwz distill` and `dwz finetune` (one dataclass, one place)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from transformers import SchedulerType
from tyro.conf import UseAppendAction

from ..audio_context import DEFAULT_MARGIN, DEFAULT_MULTIPLE, AudioContext
from ..errors import DwzError
from ..options import check_choices, neutral
from .audio_augment import AudioAugmentation

SCHEDULERS = tuple(s.value for s in SchedulerType)
DISTILL_LEARNING_RATE = 1e-4
FINETUNE_LEARNING_RATE = 1e-3  # adapters start from zero: they need larger steps


@dataclass
class TrainingOptions:
    """How to train: optimiser, schedule, batches, what the encoder reads and learns, evaluation, checkpoints."""

    learning_rate: float = DISTILL_LEARNING_RATE
    """AdamW's peak learning rate"""
    weight_decay: float = 0.0
    """AdamW's weight decay"""
    dropout: float | None = None
    """residual dropout in the trained layers (None: the model's)"""
    warmup_steps: int = 50
    """steps of linear warm-up"""
    lr_scheduler: str = "linear"
    """any transformers scheduler: linear, cosine, constant_with_warmup, ..."""
    batch_size: int = 16
    """clips per process per micro-batch"""
    gradient_accumulation_steps: int = 1
    """micro-batches per optimizer step"""
    epochs: float = 3.0
    """passes over the training clips"""
    max_steps: int | None = None
    """optimizer steps in all (overrides --epochs)"""
    # NAME as in the labels' `dataset` field or the spec's dataset name; weight 3 = three times an epoch, 0.5 = every
    # other epoch on average, 0 = never (its clips stay in the caches: runs that differ only in weights share them);
    # datasets not named keep weight 1
    dataset_weights: dict[str, float] = field(default_factory=dict)
    """NAME W ...: sample the clips of dataset NAME W times as often (e.g. train 3)"""
    eval_data: Annotated[list[str], UseAppendAction] = field(default_factory=list)
    """a held-out dataset spec for dev CER, which picks the best checkpoint"""
    eval_every: int = 100
    """optimizer steps between dev-CER evaluations (0: only at the end)"""
    max_eval_utterances: int = 200
    """dev clips decoded per evaluation"""
    eval_fallback: bool = True
    """dev CER with dwz evaluate's temperature fallback (--no-eval-fallback: plain greedy, faster)"""
    save_every: int = neutral(100)
    """optimizer steps between checkpoints (OUT/checkpoints/last)"""
    log_every: int = neutral(1)
    """optimizer steps between rows of OUT/train_log.jsonl"""
    train_encoder: bool = False
    """train the encoder too (otherwise it stays frozen)"""
    train_encoder_layers: int | None = None
    """with --train-encoder: only its top N layers and final layer norm (None: all of it)"""
    # dynamic: the student learns short inputs and its config records it, so every command runs it that way
    audio_context: Literal["full", "dynamic"] | None = None
    """the encoder reads the 30-s window (full) or each clip + a margin (dynamic); None: as the model's config says"""
    context_margin: int = DEFAULT_MARGIN
    """dynamic context: encoder positions (20 ms) read past the end of each clip"""
    context_multiple: int = DEFAULT_MULTIPLE
    """dynamic context: input lengths rounded up to a multiple of this many positions"""
    cache_encoder_states: bool = False
    """compute encoder states once, reuse them every epoch (frozen encoder; dynamic context: the teacher's)"""
    cache_dir: str | None = None
    """folder of the encoder cache (None: OUT/cache); runs on the same clips can share it"""
    augment_views: int = 0
    """also cache N SpecAugment-masked views of each clip; epochs cycle through them"""
    # Kaldi speed factors 0.9/1.0/1.1; white noise at 5-25 dB SNR; babble of 3 other clips at 5-20 dB; a simulated
    # room with an RT60 of 0.2-0.8 s; 8-kHz telephone band; Opus at ~12 kbit/s; each but speed on half the views
    audio_augment: list[str] = field(default_factory=list)
    """with --augment-views: views from augmented audio: speed noise babble reverb telephone codec"""
    timestamp_share: float = 0.0
    """share of steps trained on windows of the batch's clips joined (up to 30 s) with timestamped labels"""
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "no"
    """autocast: bf16 (CUDA, or a CPU with AVX512-BF16/AMX), fp16 (CUDA), auto = bf16 where native"""
    seed: int = 0
    """seed of the sampling order, augmentations and initialisation"""
    resume: bool = neutral(False)
    """continue from OUT/checkpoints/last (a rerun of the same command continues it anyway)"""
    stop_after_steps: int | None = neutral()
    """checkpoint and stop after this many steps of this invocation; --resume continues"""
    strict: bool = neutral(False)
    """stop with an error at any bad clip (otherwise: skip it, list it in OUT/skipped.jsonl)"""
    device: str = "auto"
    """auto (CUDA if present) or cpu"""
    threads: int | None = neutral()
    """CPU threads for torch (None: $DWZ_NUM_THREADS, else half the cores)"""

    @property
    def dynamic_context(self) -> bool:
        return self.audio_context == "dynamic"

    def context(self) -> AudioContext | None:
        """The audio context this run trains with (None: the model's own)."""
        if self.audio_context is None:
            return None
        return AudioContext(self.audio_context, self.context_margin, self.context_multiple)

    def __post_init__(self) -> None:
        check_choices(self)
        positive = {
            "batch_size": self.batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "save_every": self.save_every,
            "log_every": self.log_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise DwzError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("warmup_steps", "eval_every"):
            if getattr(self, name) < 0:
                raise DwzError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.stop_after_steps is not None and self.stop_after_steps < 1:
            raise DwzError(f"--stop-after-steps must be at least 1, got {self.stop_after_steps}")
        if self.lr_scheduler not in SCHEDULERS:
            raise DwzError(f"--lr-scheduler {self.lr_scheduler!r}: choose one of {', '.join(SCHEDULERS)}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise DwzError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0:
            raise DwzError(f"--learning-rate must be positive, got {self.learning_rate}")
        for name, weight in self.dataset_weights.items():
            if not weight >= 0:
                raise DwzError(f"--dataset-weights {name} {weight}: a weight is 0 (never drawn) or more")
        if self.max_steps is None and self.epochs <= 0:
            raise DwzError(f"--epochs must be positive, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise DwzError(f"--max-steps must be at least 1, got {self.max_steps}")
        if not 0 <= self.timestamp_share <= 1:
            raise DwzError(f"--timestamp-share is a share of the steps, from 0 to 1, got {self.timestamp_share}")
        if self.augment_views < 0:
            raise DwzError(f"--augment-views must not be negative, got {self.augment_views}")
        AudioAugmentation(tuple(self.audio_augment))  # unknown names fail here
        if self.audio_augment and not self.augment_views:
            raise DwzError("--audio-augment makes the cached views: add --augment-views N (e.g. 2)")
        if self.augment_views and not self.cache_encoder_states:
            raise DwzError("--augment-views masks the inputs of cached encoder states: add --cache-encoder-states")
        if self.cache_encoder_states and self.train_encoder and not self.dynamic_context:
            raise DwzError(
                "--cache-encoder-states needs a frozen encoder (drop --train-encoder), or --audio-context dynamic "
                "(then it caches the teacher's states on the full window)"
            )
        if self.train_encoder_layers is not None:
            if not self.train_encoder:
                raise DwzError("--train-encoder-layers N trains the top N encoder layers: add --train-encoder")
            if self.train_encoder_layers < 1:
                raise DwzError(f"--train-encoder-layers must be at least 1, got {self.train_encoder_layers}")
        self.context()  # a margin or multiple that makes no sense fails here, before any heavy work
        shaped = (self.context_margin, self.context_multiple) != (DEFAULT_MARGIN, DEFAULT_MULTIPLE)
        if shaped and not self.dynamic_context:
            raise DwzError(
                "--context-margin and --context-multiple shape a dynamic audio context: add --audio-context dynamic "
                "(a model that already reads one keeps the margin it was trained with)"
            )
