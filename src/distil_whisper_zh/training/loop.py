"""The training loop shared by distillation and fine-tuning.

Call order: `Trainer(...)` runs its phases: load data -> plan steps (weights, total steps) -> build the model
(`load_model`, labels, frozen parts) -> build the encoder cache if asked; then `run()` -> per optimizer step:
`compute_loss` on each micro-batch, backward, clip, step, `after_optimizer_step` -> every `eval_every` steps dev
CER (best model kept) -> every `save_every` steps OUT/checkpoints/last -> at the end the best (or last) model is
copied to OUT, with train_log.jsonl and loss.png.
Batches are a pure function of (seed, step), so a resumed or sharded run sees exactly the same data.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, is_dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import get_scheduler

from ..audio import SAMPLE_RATE
from ..audio_context import AudioContext, cut_features, record
from ..data import Utterance
from ..decoding import WINDOW_FRAMES
from ..errors import DwzError
from ..files import recover_interrupted, write_atomically
from ..fingerprint import clips_fingerprint
from ..long_form_mode import LongFormMode
from ..long_form_mode import record as record_long_form
from ..models import LoadedWhisper
from ..models.encoder import encode
from ..options import defaults, identity
from ..runtime import configure_threads, native_bf16, resolve_mixed_precision, wants_cpu
from ..skipped import SKIPPED_FILE, SkipLog
from .audio_augment import BABBLE_TALKERS, AudioAugmentation, augment_audio
from .augment import FRAMES_PER_SECOND, clip_view, spec_augment, view_seed
from .batches import PROMPT_LENGTH, DecoderBatch, collate_labels, label_token_ids
from .cache import EncoderCache, EncoderViews, cache_bytes
from .checkpoint import (
    TrainState,
    is_complete_checkpoint,
    load_checkpoint_state,
    publish_model_files,
    save_checkpoint,
    write_model_files,
)
from .data import Example, dev_cer, load_eval_data, load_training_data, training_data_fingerprint
from .identity import RUN_FILE, run_differences, upgraded
from .layers import freeze_encoder_layers, set_dropout
from .log import LOG_FILE, PLOT_FILE, TrainingLog, plot_training_curve
from .options import TrainingOptions
from .precision import make_accelerator, without_autocast
from .sampling import epoch_size, example_weights, global_batches, read_numbers
from .windows import FIRST_TIMESTAMP, NO_TIMESTAMPS, Part, join_parts, pause_rng, tighten, timestamped_step

MAX_GRAD_NORM = 1.0  # gradients are clipped to this global L2 norm before every optimizer step


@dataclass
class TrainBatch:
    keys: list[str]
    decoder: DecoderBatch
    features: torch.Tensor | None = None  # (batch, mels, 3000) when an encoder runs live
    cached_states: dict[str, torch.Tensor] | None = None  # encoder name -> (batch, positions, d_model)
    frames: int = WINDOW_FRAMES  # log-mel frames the student's encoder reads (fewer: dynamic audio context)
    timestamped: bool = False  # joined clips with timestamped labels (windows.py): nothing of it is cached


@dataclass
class TrainSummary:
    steps: int
    best_step: int | None
    best_cer: float | None
    seconds_per_step: float
    out: str


class Trainer:
    """One training run. Subclasses implement `load_model` and `compute_loss`, and may extend the hooks."""

    description = "train"

    def __init__(self, data: list[str], out: str, training: TrainingOptions):
        self.training = training
        self.audio_augmentation = AudioAugmentation(tuple(training.audio_augment))
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        cpu = wants_cpu(training.device)
        self.precision = resolve_mixed_precision(training.mixed_precision, torch.device("cpu" if cpu else "cuda"))
        self.accelerator = make_accelerator(cpu, self.precision)
        configure_threads(training.threads)
        torch.manual_seed(training.seed)
        with self.accelerator.main_process_first():  # a bad model fails before the data is read; imports run once
            self.preflight()
        # The phases run in this order, and each needs only what the ones before it made: the step plan (what
        # AdaLoRA's schedule and the LR schedule need) comes from the data alone, before any model exists.
        self.load_data(data, training.eval_data)
        self.plan_steps()
        self.build_model()
        self.caches = self.build_caches() if training.cache_encoder_states else {}

    def load_data(self, data: list[str], eval_data: list[str]) -> None:
        """Phase 1: the training and dev clips, screened; unusable ones listed in OUT/skipped.jsonl."""
        self.skipped = SkipLog(self.training.strict)
        try:
            self.utterances = load_training_data(data, self.skipped)
            self.eval_utterances = load_eval_data(eval_data, self.training.max_eval_utterances, self.skipped)
        finally:
            if self.accelerator.is_main_process:
                self.skipped.write(self.out / SKIPPED_FILE)
        if self.skipped.items:
            self.accelerator.print(f"{self.description}: {self.skipped.summary()}, listed in {self.out / SKIPPED_FILE}")

    def plan_steps(self) -> None:
        """Phase 2: sampling weights, hence `steps_per_epoch` and `total_steps` (no model needed)."""
        self.weights = example_weights(self.utterances, self.training.dataset_weights)

    def build_model(self) -> None:
        """Phase 3: the model (resumed from the last checkpoint of this same run, if any), its labels, frozen parts."""
        recover_interrupted(self.last_dir)
        self.resuming = self.should_resume()
        with self.accelerator.main_process_first():  # a CTranslate2 import into the cache happens once
            self.model: LoadedWhisper = self.load_model(self.last_dir if self.resuming else None)
        self.processor = self.model.processor
        self.context = self.training.context() or AudioContext.of(self.model.model.config)
        record(self.model.model.config, self.context)  # every checkpoint says how its encoder reads audio
        record_long_form(self.model.model.config, self.long_form_mode())  # and how it reads long recordings
        if self.training.dropout is not None:
            set_dropout(self.model.model, self.training.dropout)
        self.examples = [Example(u, label_token_ids(self.processor.tokenizer, u.text)) for u in self.utterances]
        self.freeze()

    # -------------------------------------------------------------------------------------- hooks

    def preflight(self) -> None:
        """Cheap checks of the model arguments (configs only), before the data is read and decoded."""

    def long_form_mode(self) -> LongFormMode:
        """How the trained model reads long inputs (long_form_mode): by default as the model did before training."""
        return LongFormMode.of(self.model.model.config)

    def load_model(self, resume_dir: Path | None) -> LoadedWhisper:
        raise NotImplementedError

    def compute_loss(self, model, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Loss parts of one micro-batch; "loss" is the one to minimise."""
        raise NotImplementedError

    @property
    def student_encoder(self) -> torch.nn.Module:
        return self.model.model.model.encoder

    def encoders_to_cache(self) -> dict[str, torch.nn.Module]:
        return {"student": self.student_encoder}

    def student_states(self, batch: TrainBatch) -> torch.Tensor:
        """The student's encoder states: cached, or computed over the batch's audio context (with gradients where
        encoder layers train)."""
        cached = batch.cached_states or {}
        if "student" in cached:
            return cached["student"]
        with torch.set_grad_enabled(self.training.train_encoder):
            return encode(self.student_encoder, cut_features(batch.features, batch.frames))

    def after_optimizer_step(self, model, step: int) -> None:
        """Called after every optimizer step (AdaLoRA reallocates its rank budget here)."""

    def write_model(self, model, folder: Path) -> None:
        """Write a usable model dir (weights, tokenizer, feature extractor, generation config) into `folder`."""
        write_model_files(self.accelerator.unwrap_model(model), self.processor, folder)

    def write_checkpoint(self, model, folder: Path) -> None:
        """The model files plus what this run is (`run_identity`), so a rerun knows whether to continue it."""
        self.write_model(model, folder)
        (folder / RUN_FILE).write_text(json.dumps(self.run_identity(), indent=2, sort_keys=True))

    def run_identity(self) -> dict:
        """What the run computes: its options (not how often it saves or logs, nor threads: the `neutral` ones)
        and the training clips themselves (the same --data paths with other contents are another run)."""
        options = getattr(self, "options", None)  # the subclass's options dataclass, set before __init__
        what = identity(options) if is_dataclass(options) else {"training": identity(self.training)}
        return {**what, "data": training_data_fingerprint(self.utterances)}

    def identity_defaults(self) -> dict:
        """What `run_identity` holds for options left at their defaults (see `same_run`)."""
        options = getattr(self, "options", None)
        own = defaults(type(options)) if is_dataclass(options) else {}
        return {"training": defaults(TrainingOptions), **own}  # a command's own training defaults win

    def should_resume(self) -> bool:
        """Continue OUT/checkpoints/last when it is complete and from this same run (so rerunning the command that
        was killed continues it), or when --resume says so; a checkpoint of other options is started afresh."""
        if not is_complete_checkpoint(self.last_dir):
            return False
        saved = self.last_dir / RUN_FILE
        if self.training.resume:
            return True
        if not saved.is_file():
            differences = ["(it records none)"]
        else:
            saved_run = upgraded(json.loads(saved.read_text()))
            differences = run_differences(saved_run, self.run_identity(), self.identity_defaults())
            if not differences:
                return True
        self.accelerator.print(
            f"{self.description}: {self.last_dir} is from a run with other options ({', '.join(differences)}); "
            "starting afresh (--resume would continue it)"
        )
        if self.accelerator.is_main_process:
            shutil.rmtree(self.out / "checkpoints" / "best", ignore_errors=True)  # not this run's best
        return False

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.model.parameters() if p.requires_grad]

    def freeze(self) -> None:
        model = self.model.model
        model.train()
        freeze_encoder_layers(self.student_encoder, not self.training.train_encoder, self.training.train_encoder_layers)

    # ------------------------------------------------------------------------------------- set-up

    @property
    def last_dir(self) -> Path:
        return self.out / "checkpoints" / "last"

    @property
    def cache_folder(self) -> Path:
        return Path(self.training.cache_dir) if self.training.cache_dir else self.out / "cache"

    @property
    def global_batch(self) -> int:
        t = self.training
        return t.batch_size * t.gradient_accumulation_steps * self.accelerator.num_processes

    @property
    def steps_per_epoch(self) -> int:
        return max(1, epoch_size(self.weights, len(self.utterances)) // self.global_batch)

    @property
    def total_steps(self) -> int:
        return self.training.max_steps or math.ceil(self.training.epochs * self.steps_per_epoch)

    def build_caches(self) -> dict[str, EncoderViews]:
        utterances = [e.utterance for e in self.examples]
        encoders = self.encoders_to_cache()
        if "student" in encoders and self.context.dynamic:
            raise DwzError(
                "--cache-encoder-states: this model's encoder reads each clip's own length (dynamic audio context), "
                "so its states over the 30-s window are not the ones it trains on; drop --cache-encoder-states"
            )
        views = 1 + self.training.augment_views
        size = views * sum(
            cache_bytes(len(utterances), e.config.max_source_positions, e.config.d_model) for e in encoders.values()
        )
        folder = self.cache_folder
        self.accelerator.print(
            f"encoder cache: {len(utterances)} clips x {len(encoders)} encoder(s) x {views} view(s) = "
            f"{size / 2**30:.2f} GiB on disk under {folder}"
        )
        caches, audio_key = {}, self.view_audio_key()
        for name, encoder in encoders.items():
            with self.accelerator.main_process_first():
                caches[name] = EncoderViews(
                    [
                        EncoderCache.build(
                            folder,
                            "encoder",  # named by its weights alone: equal encoders share one cache
                            encoder,
                            self.processor,
                            utterances,
                            self.training.batch_size,
                            self.accelerator.device,
                            view=view,
                            load=lambda utterance, view=view: self.view_audio(utterance, view),
                            audio_key=audio_key,
                        )
                        for view in range(views)
                    ]
                )
        return caches

    def make_batch(self, indices: list[int], reads: list[int] | None = None) -> TrainBatch:
        """The batch of `indices`; `reads` (training) picks each clip's cached view by its read number (None: the
        clean states)."""
        examples = [self.examples[i] for i in indices]
        keys = [e.utterance.id for e in examples]
        decoder = self.decoder_batch([e.label_ids for e in examples])
        device, dtype = self.accelerator.device, self.model.model.dtype
        states = {name: cache.get(keys, reads, device, dtype) for name, cache in self.caches.items()}
        if "student" in states:
            return TrainBatch(keys, decoder, cached_states=states)
        # the encoder runs live: on the view the cached teacher states of this read were made from
        extra = self.training.augment_views if self.caches else 0
        views = [clip_view(key, read, extra) for key, read in zip(keys, reads or [None] * len(keys), strict=True)]
        audios = [self.view_audio(e.utterance, view) for e, view in zip(examples, views, strict=True)]
        features = self.processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        features = torch.stack(
            [
                spec_augment(f, len(a) * FRAMES_PER_SECOND // SAMPLE_RATE, view_seed(key, view)) if view else f
                for f, a, key, view in zip(features.input_features, audios, keys, views, strict=True)
            ]
        )
        frames = self.context.frames([len(a) for a in audios])
        return TrainBatch(keys, decoder, features.to(device, dtype), states or None, frames)

    def decoder_batch(self, sequences: list[list[int]]) -> DecoderBatch:
        tokenizer = self.processor.tokenizer
        no_timestamps = tokenizer.convert_tokens_to_ids(NO_TIMESTAMPS)
        batch = collate_labels(sequences, tokenizer.pad_token_id, no_timestamps)
        device = self.accelerator.device
        return DecoderBatch(batch.decoder_input_ids.to(device), batch.labels.to(device))

    def make_window_batch(self, indices: list[int], step: int) -> TrainBatch:
        """The clips of `indices`, edge silence cut and random pauses put between them, joined into windows with
        timestamped labels (clean audio, encoders run live)."""
        tokenizer = self.processor.tokenizer
        examples = [self.examples[i] for i in indices]
        rng = pause_rng(self.training.seed, step, [e.utterance.id for e in examples])
        parts = tighten([self.window_part(e) for e in examples], rng)
        prompt = examples[0].label_ids[: PROMPT_LENGTH - 1]  # <|startoftranscript|> <|zh|> <|transcribe|>
        begin = tokenizer.convert_tokens_to_ids(FIRST_TIMESTAMP)
        if begin == tokenizer.unk_token_id:
            raise DwzError(f"--timestamp-share: the tokenizer has no timestamp tokens ({FIRST_TIMESTAMP})")
        windows = join_parts(parts, prompt, begin, tokenizer.eos_token_id)
        audios = [w.audio for w in windows]
        features = self.processor.feature_extractor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        device, dtype = self.accelerator.device, self.model.model.dtype
        frames = self.context.frames([len(a) for a in audios])
        decoder = self.decoder_batch([w.label_ids for w in windows])
        keys = [w.key for w in windows]
        return TrainBatch(keys, decoder, features.input_features.to(device, dtype), None, frames, timestamped=True)

    def window_part(self, example: Example) -> Part:
        """A clip as part of a joined window: its label's segments (pseudo-label --timestamps) with their times."""
        tokenizer = self.processor.tokenizer
        segments = [
            (start, end, tokenizer(text, add_special_tokens=False).input_ids)
            for start, end, text in example.utterance.fields.get("label_segments", [])
        ]
        return Part(example.utterance.id, example.utterance.load(), example.label_ids[PROMPT_LENGTH:-1], segments)

    def view_audio(self, utterance: Utterance, view: int):
        """A clip's audio as view `view` reads it: clean for view 0, else augmented as --audio-augment says."""
        audio = utterance.load()
        if view == 0 or not self.audio_augmentation.names:
            return audio
        return augment_audio(audio, view_seed(utterance.id, view), self.audio_augmentation, self.babble)

    def view_audio_key(self) -> str:
        """What an augmented view's audio depends on besides its clip: the augmentation, and with babble the clips
        mixed in, drawn from the whole training set (so a view made in another corpus is another view)."""
        key = self.audio_augmentation.key()
        if "babble" in self.audio_augmentation.names:
            key += f", babble from {clips_fingerprint(self.utterances, with_text=False)}"
        return key

    def babble(self, rng) -> list:
        """Other training clips to mix in as babble, drawn by `rng`."""
        chosen = rng.choice(len(self.utterances), size=min(BABBLE_TALKERS, len(self.utterances)), replace=False)
        return [self.utterances[i].load() for i in chosen]

    def make_optimizer(self):
        t = self.training
        optimizer = torch.optim.AdamW(self.trainable_parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
        scheduler = get_scheduler(
            t.lr_scheduler, optimizer, num_warmup_steps=t.warmup_steps, num_training_steps=self.total_steps
        )
        return optimizer, scheduler

    # --------------------------------------------------------------------------------------- loop

    def run(self) -> TrainSummary:
        optimizer, scheduler = self.make_optimizer()
        state = load_checkpoint_state(self.last_dir, optimizer, scheduler) if self.resuming else TrainState()
        # The optimizer is prepared too: with fp16 its steps go through accelerate's gradient scaler.
        model, optimizer = self.accelerator.prepare(self.model.model, optimizer)
        log = TrainingLog(self.out, state.step) if self.accelerator.is_main_process else None
        self.accelerator.print(self.plan_text(state))
        started, first_step = time.perf_counter(), state.step
        stop_at = self.total_steps
        if self.training.stop_after_steps:
            stop_at = min(stop_at, state.step + self.training.stop_after_steps)
        with tqdm(
            total=self.total_steps,
            initial=state.step,
            desc=self.description,
            unit="step",
            disable=not self.accelerator.is_main_process,
        ) as bar:
            while state.step < stop_at:
                parts = self.optimizer_step(model, optimizer, scheduler, state.step)
                state.step += 1
                row = self.after_step(model, scheduler, state, parts)
                # the row before the checkpoint: a run killed between the two resumes from the previous checkpoint,
                # and the log drops the rows after it, so no step's row is ever lost
                if log is not None and (state.step % self.training.log_every == 0 or "eval_cer" in row):
                    log.write(row)
                self.save_if_due(model, optimizer, scheduler, state, stopping=state.step == stop_at)
                bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}")
                bar.update(1)
        seconds_per_step = (time.perf_counter() - started) / max(1, state.step - first_step)
        return self.finish(state, log, seconds_per_step)

    def plan_text(self, state: TrainState) -> str:
        resumed = f" (resuming at {state.step})" if state.step else ""
        return (
            f"{self.description}: {len(self.examples)} clips, {self.steps_per_epoch} steps/epoch of "
            f"{self.global_batch} clips, {self.total_steps} steps{resumed}; encoder {self.encoder_text()}, "
            f"{'cached' if self.caches else 'run every step'}"
            + (f" with {self.training.augment_views} augmented view(s)" if self.training.augment_views else "")
            + (f" ({', '.join(self.training.audio_augment)} + SpecAugment)" if self.training.audio_augment else "")
            + (
                f"; {self.training.timestamp_share:.0%} of steps on joined clips with timestamps"
                if self.training.timestamp_share
                else ""
            )
            + self.precision_text()
        )

    def encoder_text(self) -> str:
        t = self.training
        trained = (
            "frozen"
            if not t.train_encoder
            else "trained"
            if t.train_encoder_layers is None
            else (f"top {t.train_encoder_layers} layers trained")
        )
        if not self.context.dynamic:
            return trained
        return f"{trained}, reading each clip + {self.context.margin} positions (dynamic audio context)"

    def precision_text(self) -> str:
        if self.precision != "no":
            return f"; {self.precision} autocast"
        if native_bf16(self.accelerator.device):
            return "; float32 (this device computes bf16 natively: --mixed-precision auto trains about 2x faster)"
        return "; float32"

    def micro_batches(self, step: int) -> list[tuple[list[int], list[int]]]:
        """This process's micro-batches for optimizer step `step`, each as (clip indices, their read numbers);
        deterministic: resumable, shardable."""
        epoch, position = divmod(step, self.steps_per_epoch)
        batches = global_batches(len(self.examples), self.global_batch, epoch, self.training.seed, self.weights)
        reads = read_numbers(batches, epoch, self.weights)[position]
        mine = slice(self.accelerator.process_index, None, self.accelerator.num_processes)
        indices, reads = batches[position][mine], reads[mine]
        size = self.training.batch_size
        return [(indices[i : i + size], reads[i : i + size]) for i in range(0, len(indices), size)]

    def optimizer_step(self, model, optimizer, scheduler, step: int) -> dict[str, float]:
        micro_batches = self.micro_batches(step)
        totals: dict[str, float] = {}
        for i, (indices, reads) in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                joined = timestamped_step(self.training.seed, step, self.training.timestamp_share)
                batch = self.make_window_batch(indices, step) if joined else self.make_batch(indices, reads)
                parts = self.compute_loss(model, batch)
                self.accelerator.backward(parts["loss"] / len(micro_batches))
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value.item() / len(micro_batches)
        self.accelerator.clip_grad_norm_(self.trainable_parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        self.after_optimizer_step(model, step)
        optimizer.zero_grad(set_to_none=True)
        values = torch.tensor(list(totals.values()), device=self.accelerator.device)
        return dict(zip(totals, self.accelerator.reduce(values, reduction="mean").tolist(), strict=True))

    def after_step(self, model, scheduler, state: TrainState, parts: dict) -> dict:
        """The step's log row, with the dev CER when it is due."""
        row = {"step": state.step, **parts, "lr": scheduler.get_last_lr()[0]}
        final = state.step == self.total_steps
        every = self.training.eval_every
        if self.eval_utterances and (final or (every and state.step % every == 0)):
            row["eval_cer"] = self.evaluate_and_keep_best(model, state)
        return row

    def save_if_due(self, model, optimizer, scheduler, state: TrainState, stopping: bool) -> None:
        if state.step == self.total_steps or stopping or state.step % self.training.save_every == 0:
            self.accelerator.wait_for_everyone()
            if self.accelerator.is_main_process:
                save_checkpoint(
                    self.last_dir, lambda folder: self.write_checkpoint(model, folder), optimizer, scheduler, state
                )

    def evaluate_and_keep_best(self, model, state: TrainState) -> float:
        unwrapped = self.accelerator.unwrap_model(model)
        batch_size, fallback = self.training.batch_size, self.training.eval_fallback
        with without_autocast(unwrapped):
            cer = dev_cer(unwrapped, self.processor, self.eval_utterances, batch_size, fallback)
        self.freeze_modes(unwrapped)
        if state.best_cer is None or cer < state.best_cer:
            state.best_cer, state.best_step = cer, state.step
            if self.accelerator.is_main_process:
                write_atomically(self.out / "checkpoints" / "best", lambda folder: self.write_model(model, folder))
        return cer

    def freeze_modes(self, model) -> None:
        """Back to training mode after evaluation, with frozen parts in eval mode."""
        model.train()
        freeze_encoder_layers(self.student_encoder, not self.training.train_encoder, self.training.train_encoder_layers)

    def finish(self, state: TrainState, log: TrainingLog | None, seconds_per_step: float) -> TrainSummary:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            log.close()
            if state.step >= self.total_steps:
                best = self.out / "checkpoints" / "best"
                publish_model_files(best if best.is_dir() else self.last_dir, self.out)
            plot_training_curve(self.out / LOG_FILE, self.out / PLOT_FILE)
        return TrainSummary(state.step, state.best_step, state.best_cer, seconds_per_step, str(self.out))
