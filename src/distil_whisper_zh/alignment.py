"""Alignment heads of a student: the cross-attention heads whose attention follows the teacher's word timings.

Word timestamps (transformers' `return_token_timestamps`, faster-whisper's `word_timestamps=True`) read the
cross-attention of a few decoder heads, the "alignment heads" of the generation config. A student made of some of
the teacher's layers and then trained has heads that behave otherwise than the teacher's: copied heads can point
nowhere useful (SYSTRAN/faster-whisper#1283). `dwz align-heads` measures, on a few clips, where each of the
student's heads looks for every token of the teacher's transcript, against the time the teacher's own alignment
gives that token, and keeps the heads that follow it best. They are saved in the student's generation config, and
`dwz export` carries them into the CTranslate2 config.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import torch
from tyro.conf import UseAppendAction

from .audio import SAMPLE_RATE
from .audio_context import AudioContext, cut_features
from .data import load_dataset_spec
from .errors import DwzError
from .files import write_text_atomic
from .models import LoadedWhisper, load_whisper, resolve_model
from .models.encoder import encode
from .options import neutral
from .runtime import configure_threads
from .screening import load_checked

SECONDS_PER_POSITION = 0.02  # an encoder position covers 20 ms of audio
GENERATION_CONFIG = "generation_config.json"
REPORT = "alignment_heads.json"  # beside it: every head's error, the clips and the teacher measured against


@dataclass
class AlignHeadsOptions:
    """Options of `dwz align-heads`."""

    model: str
    """the student (a local model dir): its generation_config.json gets the chosen heads"""
    teacher: str
    """the teacher whose alignment heads give the reference word timings"""
    data: Annotated[list[str], UseAppendAction]
    """a dataset spec with clips to measure on (repeatable)"""
    clips: int = 16
    """clips measured"""
    heads: int = 4
    """alignment heads kept (the best-following ones)"""
    threads: int | None = neutral()
    """CPU threads for torch (None: $DWZ_NUM_THREADS, else half the cores)"""

    def __post_init__(self) -> None:
        if self.clips < 1 or self.heads < 1:
            raise DwzError(f"--clips and --heads must be at least 1, got {self.clips} and {self.heads}")


@dataclass
class HeadScore:
    layer: int
    head: int
    error: float  # mean seconds between where the head looks and the teacher's time of each token


def teacher_timings(teacher: LoadedWhisper, audio) -> tuple[list[int], torch.Tensor]:
    """The teacher's greedy tokens of one clip (prompt included) and each token's time in seconds."""
    if not teacher.model.generation_config.alignment_heads:
        raise DwzError(f"{teacher.name}: its generation config names no alignment heads to time words with")
    features = teacher.processor.feature_extractor(
        audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True
    )
    output = teacher.model.generate(
        features.input_features.to(teacher.device, teacher.model.dtype),
        attention_mask=features.attention_mask.to(teacher.device),
        language="zh",
        task="transcribe",
        return_token_timestamps=True,
    )
    return output["sequences"][0].tolist(), output["token_timestamps"][0].float().cpu()


@torch.no_grad()
def head_errors(student: LoadedWhisper, audio, tokens: list[int], times: torch.Tensor, eos: int) -> torch.Tensor | None:
    """(layers, heads): mean |time the head attends most - teacher's time| over the clip's text tokens (None when
    the teacher wrote no text for the clip)."""
    context = AudioContext.of(student.model.config)
    features = student.processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt")
    features = features.input_features.to(student.device, student.model.dtype)
    features = cut_features(features, context.frames([len(audio)]))
    states = encode(student.model.get_encoder(), features)
    ids = torch.tensor([tokens], device=student.device)
    student.model.set_attn_implementation("eager")  # fused attention kernels return no attention weights
    output = student.model(encoder_outputs=(states,), decoder_input_ids=ids, output_attentions=True)
    if not output.cross_attentions:
        raise DwzError(f"{student.name}: the model returned no cross-attention weights to measure")
    text = [i for i, token in enumerate(tokens) if token < eos and i > 0]  # text tokens (timestamps are > eos)
    if not text:
        return None  # the teacher heard nothing to time
    positions = min(states.shape[1], round(len(audio) / SAMPLE_RATE / SECONDS_PER_POSITION))
    errors = []
    for attention in output.cross_attentions:  # (1, heads, tokens, positions) per layer
        # the attention while reading token i predicts token i + 1: compare with token i's own time
        looked = attention[0, :, text, :positions].float().argmax(-1) * SECONDS_PER_POSITION  # (heads, text)
        errors.append((looked - times[text]).abs().mean(-1))
    return torch.stack(errors)


def choose_heads(errors: torch.Tensor, count: int) -> list[HeadScore]:
    """The `count` heads with the lowest error, best first."""
    layers, heads = errors.shape
    scores = [HeadScore(layer, head, float(errors[layer, head])) for layer in range(layers) for head in range(heads)]
    return sorted(scores, key=lambda s: s.error)[:count]


@dataclass
class AlignedHeads:
    chosen: list[HeadScore]  # best first
    previous: list[HeadScore]  # the heads the generation config had, measured the same way

    @staticmethod
    def mean(scores: list[HeadScore]) -> float | None:
        return sum(s.error for s in scores) / len(scores) if scores else None


def align_heads(options: AlignHeadsOptions) -> AlignedHeads:
    """Measure the student's heads on the clips and write the best ones into its generation config."""
    configure_threads(options.threads)
    folder = Path(resolve_model(options.model))
    if not (folder / GENERATION_CONFIG).is_file():
        raise DwzError(f"{options.model}: no {GENERATION_CONFIG} to write the heads into (a local model dir?)")
    audios = _clips(options.data, options.clips)
    student, teacher = load_whisper(options.model), load_whisper(options.teacher)
    eos = student.processor.tokenizer.eos_token_id
    measured = [head_errors(student, audio, *teacher_timings(teacher, audio), eos) for audio in audios]
    measured = [errors for errors in measured if errors is not None]
    if not measured:
        raise DwzError(f"{options.teacher} wrote no text for any of the {len(audios)} clips: nothing to time heads by")
    errors = torch.stack(measured).mean(0)
    chosen = choose_heads(errors, options.heads)
    config = json.loads((folder / GENERATION_CONFIG).read_text(encoding="utf-8"))
    layers, heads = errors.shape
    previous = [
        HeadScore(layer, head, float(errors[layer, head]))
        for layer, head in config.get("alignment_heads") or []
        if layer < layers and head < heads
    ]
    config["alignment_heads"] = [[score.layer, score.head] for score in sorted(chosen, key=lambda s: (s.layer, s.head))]
    write_text_atomic(folder / GENERATION_CONFIG, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    result = AlignedHeads(chosen, previous)
    report = {
        "teacher": options.teacher,
        "data": options.data,
        "clips": len(measured),
        "chosen": [asdict(h) for h in chosen],
        "previous": [asdict(h) for h in previous],
        "mean_error_chosen": AlignedHeads.mean(chosen),
        "mean_error_previous": AlignedHeads.mean(previous),
        "errors": [[round(float(e), 4) for e in row] for row in errors],
    }
    write_text_atomic(folder / REPORT, json.dumps(report, indent=2) + "\n")
    return result


def _clips(specs: list[str], count: int) -> list:
    audios = []
    for spec in specs:
        for utterance in load_dataset_spec(spec).utterances:
            if len(audios) == count:
                return audios
            audios.append(load_checked(utterance))
    if not audios:
        raise DwzError(f"{', '.join(specs)}: no clips to measure the heads on")
    return audios
