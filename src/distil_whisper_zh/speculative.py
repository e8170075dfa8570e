"""Speculative decoding: a student drafts tokens, the teacher checks them, the text is the teacher's own.

transformers' assisted generation takes the draft model as `assistant_model=`. A student made by `create-student`
and distilled with a frozen encoder keeps the teacher's encoder bit for bit; then the assistant is the student's
decoder alone (`WhisperForCausalLM`, as distil-whisper does) and reads the teacher's encoder states, so the encoder
runs once per clip instead of twice. A student with a different encoder drafts as a whole encoder-decoder model,
reading only its own dynamic audio context if it was trained for one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import PreTrainedModel, WhisperForCausalLM, WhisperForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from .audio_context import FRAMES_PER_POSITION, FULL_POSITIONS, AudioContext, cut_features
from .errors import DwzError
from .models import LoadedWhisper, load_whisper
from .models.encoder import encode


@dataclass
class Assistant:
    """The draft model handed to `generate(assistant_model=...)`."""

    name: str  # the model argument as the user gave it
    model: PreTrainedModel  # WhisperForCausalLM when the encoder is shared, else the whole student
    shares_encoder: bool  # True: the teacher's encoder states serve both models
    context: AudioContext = field(default_factory=AudioContext)  # the student's own audio context

    def read(self, lengths: list[int]) -> None:
        """Before each generate: a dynamic-context student's encoder reads only these clips plus its margin."""
        encoder = getattr(self.model.model, "encoder", None)  # a decoder-only assistant has none
        if isinstance(encoder, ContextEncoder):
            encoder.frames = self.context.frames(lengths)


class ContextEncoder(nn.Module):
    """A student's encoder that reads only the first `frames` log-mel frames of the 30-s features it is given:
    transformers' assisted generation hands the draft model the teacher's full-window features, and a student
    trained with a dynamic audio context is fast (and accurate) only on its own context."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.frames = FULL_POSITIONS * FRAMES_PER_POSITION

    def __getattr__(self, name: str):
        """Everything else (conv strides, position table, ...) is the wrapped encoder's: generate reads them."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.encoder, name)

    def forward(self, input_features, **kwargs) -> BaseModelOutput:
        return BaseModelOutput(last_hidden_state=encode(self.encoder, cut_features(input_features, self.frames)))


def same_encoder(teacher: WhisperForConditionalGeneration, student: WhisperForConditionalGeneration) -> bool:
    """Whether the two encoders have identical weights (same names, shapes and values)."""
    ours, theirs = teacher.model.encoder.state_dict(), student.model.encoder.state_dict()
    if ours.keys() != theirs.keys():
        return False
    return all(ours[k].shape == theirs[k].shape and torch.equal(ours[k], theirs[k].to(ours[k])) for k in ours)


def decoder_only(student: WhisperForConditionalGeneration) -> WhisperForCausalLM:
    """The student's decoder and output projection as a decoder-only Whisper (weights shared, not copied)."""
    with torch.device("meta"):
        assistant = WhisperForCausalLM(student.config)
    assistant.model.decoder = student.model.decoder
    assistant.proj_out = student.proj_out
    assistant.generation_config = student.generation_config
    return assistant.to(student.device).eval()


def make_assistant(teacher: LoadedWhisper, argument: str) -> Assistant:
    """Load the student `argument` on the teacher's device and dtype, as a draft model for `teacher`."""
    student = load_whisper(argument, teacher.device, teacher.dtype)
    if student.model.config.vocab_size != teacher.model.config.vocab_size:
        raise DwzError(
            f"--assistant {argument}: vocabulary of {student.model.config.vocab_size} tokens, the model has "
            f"{teacher.model.config.vocab_size}; the assistant must share the model's tokenizer (use a student "
            "made from it by dwz create-student)"
        )
    if same_encoder(teacher.model, student.model):
        return Assistant(argument, decoder_only(student.model), shares_encoder=True)
    context = AudioContext.of(student.model.config)
    if context.dynamic:
        student.model.model.encoder = ContextEncoder(student.model.model.encoder)
    return Assistant(argument, student.model, shares_encoder=False, context=context)
