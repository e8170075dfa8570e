"""`dwz create-student`: a student Whisper initialised from maximally spaced teacher layers.

12 -> 2 decoder layers takes teacher layers 0 and 11; 6 -> 2 takes 0 and 5; 32 -> 3 takes 0, 16 and 31: the
first and last layers are always kept (the last one talks to the output projection), the rest evenly spaced.
The student's generation config also suppresses the teacher's Traditional-only tokens (這, 們, 什麼, ...): it is
taught Simplified labels, and multilingual Whisper otherwise drifts into Traditional script for whole sentences.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from transformers import WhisperForConditionalGeneration

from .errors import DwzError
from .models import load_whisper
from .models.loading import load_config
from .models.params import count_parameters
from .script_tokens import traditional_token_ids
from .training.checkpoint import save_model_dir


def maximally_spaced_layers(teacher_layers: int, student_layers: int) -> list[int]:
    """Indices of `student_layers` teacher layers, evenly spaced, always including the first and the last."""
    if not 1 <= student_layers <= teacher_layers:
        raise DwzError(f"a student needs 1..{teacher_layers} layers of this teacher, not {student_layers}")
    if student_layers == 1:
        return [teacher_layers - 1]
    return [int(i) for i in np.round(np.linspace(0, teacher_layers - 1, student_layers)).astype(int)]


def remap_alignment_heads(heads: list[list[int]] | None, layer_map: list[int]) -> list[list[int]]:
    """Teacher (layer, head) pairs -> student ones, for the teacher layers the student kept.

    If none of the teacher's alignment heads survive, every head of the student's last layer is used
    (word timestamps then still work, less precisely).
    """
    position = {teacher: student for student, teacher in enumerate(layer_map)}
    return [[position[layer], head] for layer, head in heads or [] if layer in position]


@dataclass
class CreateStudentOptions:
    """Options of `dwz create-student`."""

    teacher: str
    """the teacher: hub id, model dir, CTranslate2 dir or pypi:whisper-base"""
    out: str
    """folder for the student"""
    encoder_layers: int | None = None
    """encoder layers, maximally spaced over the teacher's (None: all of them)"""
    decoder_layers: int = 2
    """decoder layers, maximally spaced over the teacher's (the first and last always kept)"""
    decoder_layer_ids: list[int] | None = None
    """explicit teacher decoder layers (instead of --decoder-layers)"""
    encoder_layer_ids: list[int] | None = None
    """explicit teacher encoder layers (instead of --encoder-layers)"""
    keep_teacher_script: bool = False
    """do not suppress the teacher's Traditional-only tokens (這, 們, ...) in the student's generation config"""


@dataclass
class StudentSummary:
    encoder_layer_map: list[int]
    decoder_layer_map: list[int]
    teacher_params: int
    student_params: int
    out: str
    suppressed_traditional: int  # Traditional-only tokens added to the student's suppress_tokens


def _layer_map(total: int, count: int | None, explicit: list[int] | None, stack: str) -> list[int]:
    if explicit:
        bad = [i for i in explicit if not 0 <= i < total]
        if bad or len(set(explicit)) != len(explicit):
            raise DwzError(f"--{stack}-layer-ids {explicit}: need distinct layers in 0..{total - 1}")
        return sorted(explicit)
    return maximally_spaced_layers(total, total if count is None else count)


def shrink_whisper(
    teacher: WhisperForConditionalGeneration, encoder_map: list[int], decoder_map: list[int]
) -> WhisperForConditionalGeneration:
    """A deep copy of `teacher` keeping only the listed encoder and decoder layers, in order."""
    student = copy.deepcopy(teacher)
    for stack, layer_map in ((student.model.encoder, encoder_map), (student.model.decoder, decoder_map)):
        stack.layers = type(stack.layers)([stack.layers[i] for i in layer_map])
        for new_index, layer in enumerate(stack.layers):
            for module in layer.modules():  # attention modules carry their layer index for the KV cache
                if hasattr(module, "layer_idx"):
                    module.layer_idx = new_index
    student.config.encoder_layers = len(encoder_map)
    student.config.decoder_layers = len(decoder_map)
    student.config.num_hidden_layers = len(encoder_map)
    heads = remap_alignment_heads(teacher.generation_config.alignment_heads, decoder_map)
    if not heads:
        heads = [[len(decoder_map) - 1, h] for h in range(student.config.decoder_attention_heads)]
    student.generation_config.alignment_heads = heads
    return student


def suppress_in_generation(model: WhisperForConditionalGeneration, token_ids: list[int]) -> None:
    """Add `token_ids` to the tokens `generate` never emits (the model's own ones are kept)."""
    config = model.generation_config
    config.suppress_tokens = sorted(set(config.suppress_tokens or []) | set(token_ids))


def create_student(options: CreateStudentOptions) -> StudentSummary:
    """Load the teacher, copy the chosen layers, save a complete student model dir."""
    config = load_config(options.teacher)  # layer counts are checked before the weights are loaded
    encoder_map = _layer_map(config.encoder_layers, options.encoder_layers, options.encoder_layer_ids, "encoder")
    decoder_map = _layer_map(config.decoder_layers, options.decoder_layers, options.decoder_layer_ids, "decoder")
    teacher = load_whisper(options.teacher)
    student = shrink_whisper(teacher.model, encoder_map, decoder_map)
    suppressed = [] if options.keep_teacher_script else traditional_token_ids(teacher.processor.tokenizer)
    suppress_in_generation(student, suppressed)
    out = Path(options.out)
    save_model_dir(student, teacher.processor, out)  # whole or not at all
    return StudentSummary(
        encoder_map, decoder_map, count_parameters(teacher.model), count_parameters(student), str(out), len(suppressed)
    )
