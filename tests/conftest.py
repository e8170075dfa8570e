"""Shared fixtures: a tiny random Whisper with the real tokenizer, and real Mandarin clips.

Tiny models follow torchtune's habit: 2 layers, d_model 64, built here, seeded; never downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from distil_whisper_zh.models.assets import build_generation_config, load_tokenizer_json, save_processor
from distil_whisper_zh.models.ct2_import import pypi_tokenizer_json

SHARED_DATA = Path(os.environ.get("DWZ_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
AISHELL_S0150 = SHARED_DATA / "aishell-s0150"

TINY_SIZES = dict(
    d_model=64,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=128,
    decoder_ffn_dim=128,
    num_mel_bins=80,
    max_source_positions=1500,
    max_target_positions=448,
    vocab_size=51865,
)


@pytest.fixture(autouse=True, scope="session")
def _one_thread_and_private_cache(tmp_path_factory):
    """Keep torch to one thread (2-core CI) and imports in a throwaway cache unless one is given."""
    torch.set_num_threads(1)
    os.environ.setdefault("DWZ_NUM_THREADS", "1")
    os.environ.setdefault("DWZ_CACHE_DIR", str(tmp_path_factory.mktemp("dwz-cache")))


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer_json(pypi_tokenizer_json())


def build_tiny_whisper(tokenizer, out_dir: Path, seed: int = 0, decoder_layers: int = 2) -> Path:
    """Save a random tiny Whisper (real tokenizer, full generation config) to `out_dir`."""
    torch.manual_seed(seed)
    sizes = {**TINY_SIZES, "decoder_layers": decoder_layers}
    config = WhisperConfig(
        **sizes, decoder_start_token_id=50258, bos_token_id=50257, eos_token_id=50257, pad_token_id=50257
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = build_generation_config(tokenizer, alignment_heads=[[1, 0]])
    model.save_pretrained(out_dir)
    save_processor(tokenizer, sizes["num_mel_bins"], out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer, tmp_path_factory) -> Path:
    return build_tiny_whisper(tokenizer, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_ct2_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model exported to CTranslate2 (float32)."""
    from distil_whisper_zh.export import ExportOptions, export_ctranslate2

    out = tmp_path_factory.mktemp("tiny-ct2") / "ct2"
    export_ctranslate2(ExportOptions(model=str(tiny_model_dir), out=str(out), quantization="float32"))
    return out


@pytest.fixture(scope="session")
def aishell_rows() -> list[dict]:
    manifest = AISHELL_S0150 / "manifest.jsonl"
    if not manifest.is_file():
        message = f"real recordings not found at {AISHELL_S0150} (set DWZ_SHARED_DATA)"
        if os.environ.get("CI"):  # CI always has ../shared: a missing corpus there is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def real_clips(aishell_rows) -> list[dict]:
    """Five short real clips: {"path", "text", "id", "duration"}."""
    rows = aishell_rows[:5]
    return [{**row, "path": AISHELL_S0150 / row["audio"]} for row in rows]


def write_s0150_manifest(rows: list[dict], path: Path) -> Path:
    """A manifest of S0150 rows with absolute audio paths, written to `path`."""
    lines = [json.dumps({**row, "audio": str(AISHELL_S0150 / row["audio"])}, ensure_ascii=False) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def small_manifest(real_clips, tmp_path) -> Path:
    """A manifest of three real clips, copied next to it (relative paths)."""
    (tmp_path / "clips").mkdir()
    lines = []
    for clip in real_clips[:3]:
        shutil.copy(clip["path"], tmp_path / "clips" / clip["path"].name)
        lines.append(json.dumps({"audio": f"clips/{clip['path'].name}", "text": clip["text"]}, ensure_ascii=False))
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest
