"""Speculative decoding: a student drafts tokens, the teacher checks them, the text is the teacher's own.

transformers' assisted generation takes the draft model as `assistant_model=`. A student made by `create-student`
and distilled with a frozen encoder keeps the teacher's encoder bit for bit; then the assistant is the student's
decoder alone (`WhisperForCausalLM`, as distil-whisper does) and reads the teacher's encoder states, so the encoder
runs once per clip instead of twice. A student with a different encoder drafts as a whole encoder-decoder model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, WhisperForCausalLM, WhisperForConditionalGeneration

from .errors import DwzError
from .models import LoadedWhisper, load_whisper


@dataclass
class Assistant:
    """The draft model handed to `generate(assistant_model=...)`."""

    name: str  # the model argument as the user gave it
    model: PreTrainedModel  # WhisperForCausalLM when the encoder is shared, else the whole student
    shares_encoder: bool  # True: the teacher's encoder states serve both models


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
    return Assistant(argument, student.model, shares_encoder=False)
