"""Training hyper-parameters shared by `dwz distill` and `dwz finetune` (one dataclass, one place)."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import SchedulerType

from ..audio_context import DEFAULT_MARGIN, DEFAULT_MULTIPLE, AudioContext
from ..errors import DwzError
from ..runtime import MIXED_PRECISIONS
from .audio_augment import AudioAugmentation

SCHEDULERS = tuple(s.value for s in SchedulerType)


@dataclass
class TrainingOptions:
    """How to train: optimiser, schedule, batches, evaluation, checkpoints."""

    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    dropout: float | None = None  # residual dropout of the model's layers while training (None: the config's)
    warmup_steps: int = 50
    lr_scheduler: str = "linear"  # any transformers scheduler name: linear, cosine, constant_with_warmup, ...
    batch_size: int = 16  # clips per process per micro-batch
    gradient_accumulation_steps: int = 1
    epochs: float = 3.0
    # dataset name -> sampling weight: a clip of weight 3 is seen three times an epoch, 0.5 every other epoch
    # on average (e.g. more real recordings among synthetic ones); datasets not named keep weight 1
    dataset_weights: dict[str, float] = field(default_factory=dict)
    max_steps: int | None = None  # overrides epochs
    eval_every: int = 100  # optimizer steps between dev-CER evaluations; 0 = only at the end
    save_every: int = 100  # optimizer steps between checkpoints (OUT/checkpoints/last)
    max_eval_utterances: int = 200
    eval_fallback: bool = True  # dev CER with temperature fallback on repetitive output, as `dwz evaluate` decodes
    log_every: int = 1
    freeze_encoder: bool = True
    train_encoder_layers: int | None = None  # with the encoder trained: only its top N layers (None: all of it)
    # the encoder's input: full (30-s window), dynamic (the clip + margin), None (what the model's config says)
    audio_context: str | None = None
    context_margin: int = DEFAULT_MARGIN  # dynamic: encoder positions (20 ms) read past the end of each clip
    context_multiple: int = DEFAULT_MULTIPLE  # dynamic: input lengths rounded up to this many positions
    # compute encoder states once, reuse every epoch: the frozen encoder's, or with a dynamic context the teacher's
    cache_encoder_states: bool = False
    augment_views: int = 0  # SpecAugment-masked views of each clip cached besides the clean one (see augment.py)
    # audio augmentations each view draws from before its SpecAugment masks (see audio_augment.py)
    audio_augment: list[str] = field(default_factory=list)
    cache_dir: str | None = None  # where the cache lives (default OUT/cache); runs on the same clips can share it
    resume: bool = False  # continue from OUT/checkpoints/last
    stop_after_steps: int | None = None  # checkpoint and stop after this many steps of this invocation
    mixed_precision: str = "no"  # autocast: no, bf16 (CUDA, or a CPU with AVX512-BF16/AMX), fp16 (CUDA), auto
    seed: int = 0
    strict: bool = False  # any bad clip is an error (default: skip it, list it in OUT/skipped.jsonl)
    threads: int | None = None
    device: str = "auto"

    @property
    def dynamic_context(self) -> bool:
        return self.audio_context == "dynamic"

    def context(self) -> AudioContext | None:
        """The audio context this run trains with (None: the model's own)."""
        if self.audio_context is None:
            return None
        return AudioContext(self.audio_context, self.context_margin, self.context_multiple)

    def __post_init__(self) -> None:
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
            if not weight > 0:
                raise DwzError(
                    f"--dataset-weight {name}={weight}: weights must be positive (leave a dataset out instead)"
                )
        if self.max_steps is None and self.epochs <= 0:
            raise DwzError(f"--epochs must be positive, got {self.epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise DwzError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.augment_views < 0:
            raise DwzError(f"--augment-views must not be negative, got {self.augment_views}")
        AudioAugmentation(tuple(self.audio_augment))  # unknown names fail here
        if self.audio_augment and not self.augment_views:
            raise DwzError("--audio-augment makes the cached views: add --augment-views N (e.g. 2)")
        if self.augment_views and not self.cache_encoder_states:
            raise DwzError("--augment-views masks the inputs of cached encoder states: add --cache-encoder-states")
        if self.cache_encoder_states and not self.freeze_encoder and not self.dynamic_context:
            raise DwzError(
                "--cache-encoder-states needs a frozen encoder (drop --train-encoder), or --audio-context dynamic "
                "(then it caches the teacher's states on the full window)"
            )
        if self.train_encoder_layers is not None:
            if self.freeze_encoder:
                raise DwzError("--train-encoder-layers N trains the top N encoder layers: add --train-encoder")
            if self.train_encoder_layers < 1:
                raise DwzError(f"--train-encoder-layers must be at least 1, got {self.train_encoder_layers}")
        self.context()  # a margin or multiple that makes no sense fails here, before any heavy work
        if self.mixed_precision not in MIXED_PRECISIONS:
            choices = ", ".join(MIXED_PRECISIONS)
            raise DwzError(f"--mixed-precision must be one of {choices}, got {self.mixed_precision!r}")
