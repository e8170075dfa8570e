"""`dwz finetune`: AdaLoRA (peft) or full fine-tuning of the decoder, merged into a plain model dir.

AdaLoRA starts every adapted matrix at rank `init_r` and, between step `tinit` and `total - tfinal`, moves the
rank budget (every `deltaT` steps) to the matrices that matter, ending at `target_r` on average. The schedule is
derived from the number of steps. Checkpoints and the final OUT hold the adapters merged into the weights
(`merge_and_unload`), so `dwz evaluate`, `dwz export` and transformers' pipeline load them without peft.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import torch
from peft import AdaLoraConfig, get_peft_model
from tyro.conf import UseAppendAction

from .audio_context import AudioContext
from .distill.losses import cross_entropy
from .errors import DwzError
from .models import LoadedWhisper, load_whisper
from .models.loading import load_config
from .options import check_choices
from .training.checkpoint import write_model_files
from .training.layers import check_encoder_layers, freeze_encoder_layers
from .training.loop import TrainBatch, Trainer, TrainSummary
from .training.options import FINETUNE_LEARNING_RATE, TrainingOptions

ADAPTER_FILE = "adapter_state.pt"
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
TINIT_FRACTION = 0.1  # steps of plain training before the rank budget starts moving
TFINAL_FRACTION = 0.2  # steps at the final budget at the end
ALLOCATIONS = 20  # budget reallocations between tinit and total - tfinal


@dataclass
class AdaLoraOptions:
    """AdaLoRA's adapters (its schedule tinit/tfinal/deltaT is derived from the number of steps)."""

    init_r: int = 12
    """starting rank of each adapted matrix"""
    target_r: int = 4
    """average final rank"""
    lora_alpha: float = 32.0
    """LoRA scaling"""
    lora_dropout: float = 0.05
    """dropout on the adapters' input"""
    orth_reg_weight: float = 0.5
    """orthogonality regulariser of P and Q, added to the loss by peft"""
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    """decoder linear layers that get adapters"""
    adapt_encoder: bool = False
    """adapt the encoder too (otherwise only the decoder; then the encoder cannot be cached)"""


@dataclass
class FinetuneOptions:
    """Options of `dwz finetune`."""

    model: str
    """the model to fine-tune"""
    data: Annotated[list[str], UseAppendAction]
    """a dataset spec (its references are the labels) or pseudo-label folder"""
    out: str
    """folder for the merged model, checkpoints and logs"""
    method: Literal["adalora", "full"] = "adalora"
    """what is trained: AdaLoRA adapters (merged at the end), or all decoder weights"""
    adalora: AdaLoraOptions = field(default_factory=AdaLoraOptions)
    training: TrainingOptions = field(default_factory=lambda: TrainingOptions(learning_rate=FINETUNE_LEARNING_RATE))

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.data:
            raise DwzError("give at least one --data")
        if self.adalora.target_r > self.adalora.init_r or self.adalora.target_r < 1:
            raise DwzError(f"--target-r must be in 1..--init-r ({self.adalora.init_r}), got {self.adalora.target_r}")
        if self.method == "adalora" and self.training.train_encoder and not self.adalora.adapt_encoder:
            raise DwzError("--method adalora adapts the encoder with --adapt-encoder, not --train-encoder")
        if self.method == "adalora" and self.training.train_encoder_layers is not None:
            raise DwzError("--train-encoder-layers is for --method full: AdaLoRA's --adapt-encoder adapts every layer")
        if self.method == "adalora" and self.adalora.adapt_encoder:
            # the encoder's adapters learn: its states change every step (a copy: the caller's options stay theirs)
            self.training = dataclasses.replace(self.training, train_encoder=True)
        if self.adalora.adapt_encoder and self.training.cache_encoder_states:
            raise DwzError("--adapt-encoder changes the encoder: it cannot be combined with --cache-encoder-states")


def adalora_schedule(total_steps: int) -> dict[str, int]:
    """tinit / tfinal / deltaT for `total_steps`; AdaLoRA needs tinit < total - tfinal."""
    tinit = max(1, round(TINIT_FRACTION * total_steps))
    tfinal = max(1, round(TFINAL_FRACTION * total_steps))
    if tinit >= total_steps - tfinal:
        raise DwzError(f"AdaLoRA needs at least 3 training steps to schedule its rank budget, got {total_steps}")
    delta = max(1, (total_steps - tfinal - tinit) // ALLOCATIONS)
    return {"tinit": tinit, "tfinal": tfinal, "deltaT": delta, "total_step": total_steps}


def target_module_pattern(names: tuple[str, ...], adapt_encoder: bool) -> str:
    """A peft regex matching the named linear layers of the decoder (and the encoder if asked)."""
    stacks = "(encoder|decoder)" if adapt_encoder else "decoder"
    return rf".*model\.{stacks}\.layers\.\d+\.(.*\.)?({'|'.join(names)})"


ALLOCATOR_STATE = ("ipt", "exp_avg_ipt", "exp_avg_unc")  # RankAllocator's running importance scores


def save_adapters(peft_model, path: Path) -> None:
    """Full-size adapter tensors (pruned ranks are zeros in lora_E), the rank pattern and the rank allocator's
    importance averages, to resume from exactly. peft's own adapter state dict shrinks pruned tensors, which a
    freshly initialised model cannot load, and keeps no allocator state."""
    adapters = {k: v.detach().cpu() for k, v in peft_model.state_dict().items() if "lora_" in k}
    allocator = peft_model.base_model.rankallocator
    scores = {name: {k: v.detach().cpu() for k, v in getattr(allocator, name).items()} for name in ALLOCATOR_STATE}
    rank_pattern = peft_model.peft_config["default"].rank_pattern
    torch.save({"adapters": adapters, "rank_pattern": rank_pattern, "allocator": scores}, path)


def restore_adapters(peft_model, path: Path) -> None:
    saved = torch.load(path, weights_only=False)
    peft_model.peft_config["default"].rank_pattern = saved["rank_pattern"]
    allocator = peft_model.base_model.rankallocator
    device = next(peft_model.parameters()).device
    for name, scores in saved.get("allocator", {}).items():
        setattr(allocator, name, {k: v.to(device) for k, v in scores.items()})
    missing = set(saved["adapters"]) - set(peft_model.state_dict())
    if missing:
        raise DwzError(f"{path}: adapters do not fit this model (e.g. {sorted(missing)[0]})")
    peft_model.load_state_dict(saved["adapters"], strict=False)


class FineTuner(Trainer):
    description = "finetune"

    def __init__(self, options: FinetuneOptions):
        self.options = options
        super().__init__(options.data, options.out, options.training)

    @property
    def is_adalora(self) -> bool:
        return self.options.method == "adalora"

    def preflight(self) -> None:
        config = load_config(self.options.model)
        check_encoder_layers(config.encoder_layers, self.training.train_encoder_layers)
        self.check_context(self.training.context(), AudioContext.of(config))

    def check_context(self, wanted: AudioContext | None, own: AudioContext) -> None:
        """A dynamic context the model does not read yet must be learned: its encoder has to train."""
        if wanted is not None and wanted.dynamic and wanted != own and self.encoder_frozen:
            raise DwzError(
                f"--audio-context dynamic: {self.options.model}'s encoder must learn to read short inputs; add "
                "--adapt-encoder (adalora) or --train-encoder (full), or give the model a fast encoder with dwz "
                "distill, which trains it against the teacher's full-window states"
            )

    def load_model(self, resume_dir: Path | None) -> LoadedWhisper:
        # AdaLoRA resumes from the original weights plus saved adapters; full fine-tuning from the checkpoint.
        source = str(resume_dir) if resume_dir and not self.is_adalora else self.options.model
        loaded = load_whisper(source, self.accelerator.device)
        if not self.is_adalora:
            return loaded
        a = self.options.adalora
        config = AdaLoraConfig(
            init_r=a.init_r,
            target_r=a.target_r,
            lora_alpha=a.lora_alpha,
            lora_dropout=a.lora_dropout,
            orth_reg_weight=a.orth_reg_weight,
            target_modules=target_module_pattern(a.target_modules, a.adapt_encoder),
            **adalora_schedule(self.total_steps),
        )
        peft_model = get_peft_model(loaded.model, config)
        if resume_dir:
            restore_adapters(peft_model, resume_dir / ADAPTER_FILE)
        return LoadedWhisper(loaded.name, loaded.source, peft_model, loaded.processor)

    @property
    def base_model(self):
        model = self.model.model
        return model.get_base_model() if self.is_adalora else model

    @property
    def student_encoder(self) -> torch.nn.Module:
        return self.base_model.model.encoder

    @property
    def encoder_frozen(self) -> bool:
        """AdaLoRA: peft froze every base weight; the encoder only learns through adapters, if it has them."""
        if self.is_adalora:
            return not self.options.adalora.adapt_encoder
        return not self.training.train_encoder

    def freeze(self) -> None:
        model = self.base_model
        if not self.is_adalora:  # full: the decoder learns, and the encoder too if not frozen
            model.requires_grad_(True)
            model.model.decoder.embed_positions.requires_grad_(False)
            t = self.training
            freeze_encoder_layers(self.student_encoder, not t.train_encoder, t.train_encoder_layers)
        self.freeze_modes(self.model.model)

    def freeze_modes(self, model) -> None:
        self.model.model.train()
        if self.encoder_frozen:
            self.student_encoder.eval()
        elif not self.is_adalora:
            t = self.training
            freeze_encoder_layers(self.student_encoder, not t.train_encoder, t.train_encoder_layers)

    def compute_loss(self, model, batch: TrainBatch) -> dict[str, torch.Tensor]:
        """Cross-entropy on the labels (plus AdaLoRA's orthogonality regulariser, which peft adds)."""
        states = self.student_states(batch)
        ids, labels = batch.decoder.decoder_input_ids, batch.decoder.labels
        output = model(encoder_outputs=(states,), decoder_input_ids=ids, labels=labels)
        return {"loss": output.loss, "ce": cross_entropy(output.logits.detach(), batch.decoder.labels)}

    def after_optimizer_step(self, model, step: int) -> None:
        if self.is_adalora:
            self.accelerator.unwrap_model(model).base_model.update_and_allocate(step)

    def write_model(self, model, folder: Path) -> None:
        """A merged, plain Whisper dir; for AdaLoRA also the adapter state, to resume from."""
        unwrapped = self.accelerator.unwrap_model(model)
        if not self.is_adalora:
            write_model_files(unwrapped, self.processor, folder)
            return
        write_model_files(copy.deepcopy(unwrapped).merge_and_unload(), self.processor, folder)
        save_adapters(unwrapped, folder / ADAPTER_FILE)


def run_finetune(options: FinetuneOptions) -> TrainSummary:
    return FineTuner(options).run()
