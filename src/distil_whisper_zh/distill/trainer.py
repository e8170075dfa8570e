"""`dwz distill`: train the student on pseudo-labels against the teacher's distribution.

Call order: `run_distillation(options)` -> load both models -> build examples -> (optional) encoder cache ->
loop over optimizer steps: `training_step` (student forward, teacher forward without gradients, loss) ->
every `eval_every` steps dev CER -> every `save_every` steps a checkpoint -> final model in OUT.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..data import SpeechDataset, Utterance, load_dataset_spec
from ..decoding import DecodingOptions, WhisperDecoder, transcribe_utterances
from ..errors import DwzError
from ..metrics import EditCounts, utterance_counts
from ..models import LoadedWhisper, load_whisper
from ..pseudo_label import LABELS_FILE, load_labels
from ..runtime import configure_threads, wants_cpu
from ..training_log import LOG_FILE, PLOT_FILE, TrainingLog, plot_training_curve
from .batches import DecoderBatch, collate_labels, label_token_ids
from .cache import EncoderCache, cache_bytes
from .checkpoint import TrainState, is_complete_checkpoint, load_checkpoint_state, save_checkpoint, save_model_dir
from .losses import LossParts, LossWeights, distillation_loss


@dataclass
class DistillOptions:
    """Options of `dwz distill`."""

    student: str  # the initialised student (dwz create-student)
    teacher: str
    data: list[str]  # pseudo-label folders (dwz pseudo-label) or dataset specs (their references become labels)
    out: str
    eval_data: list[str] = field(default_factory=list)  # held-out specs for dev CER (best checkpoint by it)
    weights: LossWeights = field(default_factory=LossWeights)
    freeze_encoder: bool = True
    cache_encoder_states: bool = False
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 50
    lr_scheduler: str = "linear"  # any transformers scheduler name: linear, cosine, constant_with_warmup, ...
    batch_size: int = 16  # clips per process per micro-batch
    gradient_accumulation_steps: int = 1
    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs
    eval_every: int = 100  # optimizer steps; 0 = only at the end
    save_every: int = 100
    max_eval_utterances: int = 200
    log_every: int = 1
    resume: bool = False
    stop_after_steps: int | None = None  # checkpoint and stop after this many steps in this invocation (time-box)
    mixed_precision: str = "no"  # no, fp16, bf16 (CUDA)
    seed: int = 0
    threads: int | None = None
    device: str = "auto"

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
        if self.weights.temperature <= 0:
            raise DwzError(f"--temperature must be positive, got {self.weights.temperature}")
        if self.weights.ce_weight < 0 or self.weights.kl_weight < 0:
            raise DwzError("--ce-weight and --kl-weight must not be negative")
        if self.max_steps is None and self.epochs <= 0:
            raise DwzError(f"--epochs must be positive, got {self.epochs}")
        if self.cache_encoder_states and not self.freeze_encoder:
            raise DwzError("--cache-encoder-states needs a frozen encoder (drop --train-encoder)")
        if not self.data:
            raise DwzError("dwz distill: give at least one --data")


@dataclass
class Example:
    utterance: Utterance
    label_ids: list[int]


@dataclass
class TrainBatch:
    keys: list[str]
    decoder: DecoderBatch
    features: torch.Tensor | None = None  # (batch, mels, frames) when encoders run live
    student_states: torch.Tensor | None = None  # (batch, positions, d_model) from the cache
    teacher_states: torch.Tensor | None = None


@dataclass
class DistillSummary:
    steps: int
    best_step: int | None
    best_cer: float | None
    seconds_per_step: float
    out: str


# ------------------------------------------------------------------------------------------------- data


def load_training_data(specs: list[str]) -> list[Utterance]:
    """Pseudo-label folders give the teacher's labels; any other spec gives its references."""
    utterances: list[Utterance] = []
    for spec in specs:
        is_label_folder = (Path(spec) / LABELS_FILE).is_file()
        dataset: SpeechDataset = load_labels(spec) if is_label_folder else load_dataset_spec(spec)
        missing = [u.id for u in dataset.utterances if not u.text]
        if missing:
            raise DwzError(f"--data {spec}: {len(missing)} clips have no text to train on (e.g. {missing[0]})")
        utterances += dataset.utterances
    return utterances


def build_examples(utterances: list[Utterance], tokenizer) -> list[Example]:
    return [Example(u, label_token_ids(tokenizer, u.text)) for u in utterances]


def epoch_order(num_examples: int, epoch: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


def global_batches(num_examples: int, global_batch: int, epoch: int, seed: int) -> list[list[int]]:
    """This epoch's batches of example indices; the last, smaller batch is dropped (equal step sizes)."""
    order = epoch_order(num_examples, epoch, seed)
    count = max(1, num_examples // global_batch)
    return [order[i * global_batch : (i + 1) * global_batch] for i in range(count)]


# ------------------------------------------------------------------------------------------------- step


def encoders_identical(student, teacher) -> bool:
    """True when the student's encoder is the teacher's (same layers, same weights): one pass serves both."""
    s, t = student.model.encoder.state_dict(), teacher.model.encoder.state_dict()
    return s.keys() == t.keys() and all(torch.equal(s[k], t[k].to(s[k].device)) for k in s)


def training_step(
    student, teacher, batch: TrainBatch, weights: LossWeights, freeze_encoder: bool, shared_encoder: bool
) -> LossParts:
    """Forward both models on one micro-batch and return the loss parts (no backward here)."""
    inner = student.module if hasattr(student, "module") else student
    if batch.student_states is not None:
        student_states = batch.student_states
    else:
        with torch.set_grad_enabled(not freeze_encoder):
            student_states = inner.model.encoder(batch.features).last_hidden_state
    ids = batch.decoder.decoder_input_ids
    student_logits = student(encoder_outputs=(student_states,), decoder_input_ids=ids).logits
    with torch.no_grad():
        if shared_encoder:
            teacher_states = student_states.detach()
        elif batch.teacher_states is not None:
            teacher_states = batch.teacher_states
        else:
            teacher_states = teacher.model.encoder(batch.features).last_hidden_state
        teacher_logits = teacher(encoder_outputs=(teacher_states,), decoder_input_ids=ids).logits
    return distillation_loss(student_logits, teacher_logits, batch.decoder.labels, weights)


# ------------------------------------------------------------------------------------------------- eval


def dev_cer(model, processor, utterances: list[Utterance], batch_size: int) -> float:
    """Greedy CER of `model` on `utterances` (no temperature fallback: it is a trend, measured often)."""
    was_training = model.training
    model.eval()
    loaded = LoadedWhisper(name="student", source="", model=model, processor=processor)
    decoder = WhisperDecoder(loaded, DecodingOptions(temperature_fallback=False))
    total = EditCounts()
    for utterance, transcript, _ in transcribe_utterances(decoder, utterances, batch_size):
        total = total + utterance_counts(utterance.text or "", transcript.text)
    model.train(was_training)
    return total.cer


# ------------------------------------------------------------------------------------------------- loop


class Distiller:
    """Holds the models, data and optimiser of one distillation run; `run()` trains to the end."""

    def __init__(self, options: DistillOptions):
        self.options = options
        self.out = Path(options.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.accelerator = Accelerator(cpu=wants_cpu(options.device), mixed_precision=options.mixed_precision)
        configure_threads(options.threads)
        torch.manual_seed(options.seed)
        utterances = load_training_data(options.data)
        self.eval_utterances = self._eval_utterances()
        resume_dir = self.out / "checkpoints" / "last"
        self.resuming = options.resume and is_complete_checkpoint(resume_dir)
        device = self.accelerator.device
        self.student = load_whisper(str(resume_dir) if self.resuming else options.student, device)
        self.teacher = load_whisper(options.teacher, device)
        _check_pair(self.student, self.teacher)
        self.processor = self.student.processor
        self.examples = build_examples(utterances, self.processor.tokenizer)
        self.shared_encoder = options.freeze_encoder and encoders_identical(self.student.model, self.teacher.model)
        self._freeze()
        self.caches = self._build_caches() if options.cache_encoder_states else {}

    def _eval_utterances(self) -> list[Utterance]:
        utterances = [u for spec in self.options.eval_data for u in load_dataset_spec(spec).utterances]
        return utterances[: self.options.max_eval_utterances]

    def _freeze(self) -> None:
        self.teacher.model.requires_grad_(False).eval()
        model = self.student.model
        model.train()
        if self.options.freeze_encoder:
            model.model.encoder.requires_grad_(False)
            model.model.encoder.eval()  # no dropout in a frozen encoder: its states must be reproducible

    def _build_caches(self) -> dict[str, EncoderCache]:
        utterances = [e.utterance for e in self.examples]
        config = self.student.model.config
        names = ["student"] if self.shared_encoder else ["student", "teacher"]
        size = sum(
            cache_bytes(len(utterances), config.max_source_positions, getattr(self, n).model.config.d_model)
            for n in names
        )
        self.accelerator.print(
            f"encoder cache: {len(utterances)} clips x {len(names)} encoder(s), "
            f"{size / 2**30:.2f} GiB on disk under {self.out / 'cache'}"
        )
        caches = {}
        for name in names:
            model = getattr(self, name)
            with self.accelerator.main_process_first():
                caches[name] = EncoderCache.build(
                    self.out / "cache",
                    f"{name}-encoder",
                    model.model.model.encoder,
                    self.processor,
                    utterances,
                    self.options.batch_size,
                    self.accelerator.device,
                )
        return caches

    def make_batch(self, indices: list[int]) -> TrainBatch:
        examples = [self.examples[i] for i in indices]
        keys = [e.utterance.id for e in examples]
        decoder = collate_labels([e.label_ids for e in examples], self.processor.tokenizer.pad_token_id)
        device, dtype = self.accelerator.device, self.student.model.dtype
        decoder = DecoderBatch(decoder.decoder_input_ids.to(device), decoder.labels.to(device))
        if self.caches:
            teacher_cache = self.caches.get("teacher")
            return TrainBatch(
                keys,
                decoder,
                student_states=self.caches["student"].get(keys, device, dtype),
                teacher_states=teacher_cache.get(keys, device, dtype) if teacher_cache else None,
            )
        features = self.processor.feature_extractor(
            [e.utterance.load() for e in examples], sampling_rate=16_000, return_tensors="pt"
        ).input_features
        return TrainBatch(keys, decoder, features=features.to(device, dtype))

    def _optimizer(self):
        parameters = [p for p in self.student.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.options.learning_rate, weight_decay=self.options.weight_decay)
        scheduler = get_scheduler(
            self.options.lr_scheduler,
            optimizer,
            num_warmup_steps=self.options.warmup_steps,
            num_training_steps=self.total_steps,
        )
        return optimizer, scheduler

    @property
    def global_batch(self) -> int:
        return self.options.batch_size * self.options.gradient_accumulation_steps * self.accelerator.num_processes

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.examples) // self.global_batch)

    @property
    def total_steps(self) -> int:
        return self.options.max_steps or math.ceil(self.options.epochs * self.steps_per_epoch)

    def run(self) -> DistillSummary:
        optimizer, scheduler = self._optimizer()
        state = (
            load_checkpoint_state(self.out / "checkpoints" / "last", optimizer, scheduler)
            if self.resuming
            else TrainState()
        )
        model = self.accelerator.prepare(self.student.model)
        log = TrainingLog(self.out, state.step) if self.accelerator.is_main_process else None
        self.accelerator.print(self._plan_text(state))
        started, first_step = time.perf_counter(), state.step
        with tqdm(
            total=self.total_steps,
            initial=state.step,
            desc="distill",
            unit="step",
            disable=not self.accelerator.is_main_process,
        ) as bar:
            stop_at = self.total_steps
            if self.options.stop_after_steps:
                stop_at = min(stop_at, state.step + self.options.stop_after_steps)
            while state.step < stop_at:
                parts = self._optimizer_step(model, optimizer, scheduler, state.step)
                state.step += 1
                row = self._after_step(model, optimizer, scheduler, state, parts)
                if log is not None and (state.step % self.options.log_every == 0 or "eval_cer" in row):
                    log.write(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}")
                bar.update(1)
        seconds_per_step = (time.perf_counter() - started) / max(1, state.step - first_step)
        return self._finish(model, state, log, seconds_per_step)

    def _plan_text(self, state: TrainState) -> str:
        return (
            f"distill: {len(self.examples)} clips, {self.steps_per_epoch} steps/epoch of {self.global_batch} "
            f"clips, {self.total_steps} steps{f' (resuming at {state.step})' if state.step else ''}; "
            f"encoder {'frozen' if self.options.freeze_encoder else 'trained'}, "
            f"{'shared with the teacher' if self.shared_encoder else 'separate from the teacher'}, "
            f"{'cached' if self.caches else 'run every step'}"
        )

    def _micro_batches(self, step: int) -> list[list[int]]:
        """This process's micro-batches for optimizer step `step` (deterministic: resumable, shardable)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        batch = global_batches(len(self.examples), self.global_batch, epoch, self.options.seed)[position]
        mine = batch[self.accelerator.process_index :: self.accelerator.num_processes]
        size = self.options.batch_size
        return [mine[i : i + size] for i in range(0, len(mine), size)]

    def _optimizer_step(self, model, optimizer, scheduler, step: int) -> dict[str, float]:
        micro_batches = self._micro_batches(step)
        totals = {"loss": 0.0, "ce": 0.0, "kl": 0.0}
        for i, indices in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            context = self.accelerator.no_sync(model) if not last else contextlib.nullcontext()
            with context:
                parts = training_step(
                    model,
                    self.teacher.model,
                    self.make_batch(indices),
                    self.options.weights,
                    self.options.freeze_encoder,
                    self.shared_encoder,
                )
                self.accelerator.backward(parts.total / len(micro_batches))
            for key, value in (("loss", parts.total), ("ce", parts.ce), ("kl", parts.kl)):
                totals[key] += value.item() / len(micro_batches)
        self.accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        averaged = self.accelerator.reduce(
            torch.tensor(list(totals.values()), device=self.accelerator.device), reduction="mean"
        )
        return dict(zip(totals, averaged.tolist(), strict=True))

    def _after_step(self, model, optimizer, scheduler, state: TrainState, parts: dict[str, float]) -> dict:
        row = {"step": state.step, **parts, "lr": scheduler.get_last_lr()[0]}
        final = state.step == self.total_steps
        stopping = self.options.stop_after_steps and state.step % self.options.stop_after_steps == 0
        every = self.options.eval_every
        if self.eval_utterances and (final or (every and state.step % every == 0)):
            row["eval_cer"] = self._evaluate_and_keep_best(model, state)
        if final or stopping or state.step % self.options.save_every == 0:
            self.accelerator.wait_for_everyone()
            if self.accelerator.is_main_process:
                save_checkpoint(
                    self.out / "checkpoints" / "last",
                    self.accelerator.unwrap_model(model),
                    self.processor,
                    optimizer,
                    scheduler,
                    state,
                )
        return row

    def _evaluate_and_keep_best(self, model, state: TrainState) -> float:
        unwrapped = self.accelerator.unwrap_model(model)
        cer = dev_cer(unwrapped, self.processor, self.eval_utterances, self.options.batch_size)
        if self.options.freeze_encoder:
            unwrapped.model.encoder.eval()
        if state.best_cer is None or cer < state.best_cer:
            state.best_cer, state.best_step = cer, state.step
            if self.accelerator.is_main_process:
                save_model_dir(unwrapped, self.processor, self.out / "checkpoints" / "best")
        return cer

    def _finish(self, model, state: TrainState, log: TrainingLog | None, seconds_per_step: float) -> DistillSummary:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            log.close()
            best = self.out / "checkpoints" / "best"
            chosen = best if best.is_dir() else self.out / "checkpoints" / "last"
            _copy_model_files(chosen, self.out)
            plot_training_curve(self.out / LOG_FILE, self.out / PLOT_FILE)
        return DistillSummary(state.step, state.best_step, state.best_cer, seconds_per_step, str(self.out))


MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "processor_config.json",
)


def _copy_model_files(source: Path, target: Path) -> None:
    """Put the chosen checkpoint's model files at the top of OUT, so OUT itself is a model dir."""
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def _check_pair(student: LoadedWhisper, teacher: LoadedWhisper) -> None:
    s, t = student.model.config, teacher.model.config
    if s.vocab_size != t.vocab_size:
        raise DwzError(f"student vocabulary ({s.vocab_size}) differs from the teacher's ({t.vocab_size})")
    if s.decoder_layers > t.decoder_layers:
        raise DwzError(
            f"the student has more decoder layers ({s.decoder_layers}) than the teacher ({t.decoder_layers})"
        )


def run_distillation(options: DistillOptions) -> DistillSummary:
    return Distiller(options).run()
