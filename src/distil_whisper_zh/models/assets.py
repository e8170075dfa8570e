"""The non-weight parts of a Whisper model directory: tokenizer, feature extractor, generation config.

A model directory written by this toolkit is complete and portable: transformers, faster-whisper's converter and
`generate(language="zh", task="transcribe")` all work from it without the hub.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast
from transformers.models.whisper.tokenization_whisper import LANGUAGES

from ..errors import DwzError

ENDOFTEXT = "<|endoftext|>"
MAX_TARGET_LENGTH = 448
# Whisper suppresses a leading blank (" ", id 220) and an immediate end of text.
BEGIN_SUPPRESS_TOKENS = (220, 50257)
MAX_INITIAL_TIMESTAMP_INDEX = 50


def load_tokenizer_json(path: str | Path) -> WhisperTokenizerFast:
    """A Whisper tokenizer from a `tokenizer.json` (as shipped in CTranslate2/faster-whisper model dirs)."""
    path = Path(path)
    if not path.is_file():
        raise DwzError(f"{path}: tokenizer.json is missing")
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(path),
        unk_token=ENDOFTEXT,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=ENDOFTEXT,
    )
    _check_first_merge(path)
    return tokenizer


def _check_first_merge(path: Path) -> None:
    """GPT-2 BPE's first merge is 'Ġ t'; a tokenizer.json without it splits ' the' and mis-tokenizes labels."""
    merges = json.loads(path.read_text(encoding="utf-8"))["model"].get("merges", [])
    first = merges[0] if merges else None
    if first not in (["Ġ", "t"], "Ġ t"):
        raise DwzError(
            f"{path}: BPE merges do not start with 'Ġ t' (first is {first!r}); this tokenizer.json is damaged "
            "(a known defect of some repackaged Whisper files). Use one from an intact model."
        )


def language_ids(tokenizer: WhisperTokenizerFast) -> dict[str, int]:
    """`<|xx|>` -> id for every Whisper language token this vocabulary has."""
    ids = {}
    for code in LANGUAGES:
        token = f"<|{code}|>"
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != tokenizer.unk_token_id:
            ids[token] = token_id
    return ids


def build_generation_config(
    tokenizer: WhisperTokenizerFast,
    alignment_heads: list[list[int]] | None = None,
    suppress_tokens: list[int] | None = None,
) -> GenerationConfig:
    """The generation config Whisper's `generate` needs for `language=`/`task=` and timestamps."""
    ids = tokenizer.convert_tokens_to_ids
    eos = ids(ENDOFTEXT)
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"),
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        is_multilingual=True,
        lang_to_id=language_ids(tokenizer),
        task_to_id={"transcribe": ids("<|transcribe|>"), "translate": ids("<|translate|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"),
        prev_sot_token_id=ids("<|startofprev|>"),
        begin_suppress_tokens=list(BEGIN_SUPPRESS_TOKENS),
        suppress_tokens=list(suppress_tokens or []),
        alignment_heads=[list(h) for h in alignment_heads or []],
        max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
        max_length=MAX_TARGET_LENGTH,
        return_timestamps=False,
    )


def save_processor(tokenizer: WhisperTokenizerFast, num_mel_bins: int, out_dir: str | Path) -> WhisperProcessor:
    """Write tokenizer.json, tokenizer_config.json, preprocessor_config.json (faster-whisper needs the last)."""
    feature_extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    processor.save_pretrained(out_dir)
    feature_extractor.save_pretrained(out_dir)
    return processor
