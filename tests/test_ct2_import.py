"""The CTranslate2 reader is proved numerically: a file written by ctranslate2's own converter from a tiny model,
read back by ours, must give the original weights and identical logits."""

import shutil

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration

from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models.ct2 import read_ct2_model, whisper_config_kwargs, whisper_state_dict
from distil_whisper_zh.models.ct2_import import import_ct2_dir
from distil_whisper_zh.models.loading import load_whisper

ctranslate2 = pytest.importorskip("ctranslate2")


@pytest.fixture(scope="module")
def ct2_dir(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ct2") / "tiny-ct2"
    converter = ctranslate2.converters.TransformersConverter(
        str(tiny_model_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]
    )
    converter.convert(str(out), quantization=None)
    return out


def test_reader_recovers_every_weight_exactly(tiny_model_dir, ct2_dir):
    original = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir).state_dict()
    ct2 = read_ct2_model(ct2_dir / "model.bin")
    assert whisper_config_kwargs(ct2)["d_model"] == 64
    assert whisper_config_kwargs(ct2)["decoder_layers"] == 2
    mapped = whisper_state_dict(ct2)
    expected_names = {name for name in original if name != "proj_out.weight"}
    expected_names -= {n for n in expected_names if n.endswith("k_proj.bias")}  # Whisper's k_proj has no bias
    assert set(mapped) == expected_names
    for name, value in mapped.items():
        np.testing.assert_array_equal(value, original[name].numpy(), err_msg=name)


def test_imported_model_gives_identical_logits(tiny_model_dir, ct2_dir, tmp_path):
    imported = import_ct2_dir(ct2_dir, tmp_path / "imported")
    reference = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    ours = WhisperForConditionalGeneration.from_pretrained(imported).eval()
    torch.manual_seed(1)
    features = torch.randn(2, 80, 3000)
    decoder_ids = torch.tensor([[50258, 50260, 50359, 50363, 7422, 122]] * 2)
    with torch.no_grad():
        expected = reference(input_features=features, decoder_input_ids=decoder_ids).logits
        got = ours(input_features=features, decoder_input_ids=decoder_ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert ours.generation_config.lang_to_id["<|zh|>"] == 50260
    assert ours.generation_config.task_to_id == {"transcribe": 50359, "translate": 50358}
    for name in ("tokenizer.json", "preprocessor_config.json", "generation_config.json", "model.safetensors"):
        assert (imported / name).is_file(), name


def test_ct2_dir_loads_on_the_fly_and_is_cached(ct2_dir):
    first = load_whisper(str(ct2_dir))
    second = load_whisper(str(ct2_dir))
    assert first.source == second.source  # imported once into the cache, then reused
    assert first.model.config.d_model == 64


def test_int8_export_reads_back_close(tiny_model_dir, tmp_path):
    out = tmp_path / "int8"
    ctranslate2.converters.TransformersConverter(str(tiny_model_dir)).convert(str(out), quantization="int8")
    original = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir).state_dict()
    mapped = whisper_state_dict(read_ct2_model(out / "model.bin"))
    weight = "model.decoder.layers.0.fc1.weight"
    error = np.abs(mapped[weight] - original[weight].numpy()).max()
    assert error < np.abs(original[weight].numpy()).max() / 100  # int8 per-row scales: ~0.4% of the range


def test_truncated_file_is_a_clear_error(ct2_dir, tmp_path):
    data = (ct2_dir / "model.bin").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(DwzError, match="truncated"):
        read_ct2_model(broken / "model.bin")


def test_ct2_dir_without_tokenizer_is_refused(ct2_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(ct2_dir / "model.bin", bare / "model.bin")
    with pytest.raises(DwzError, match="tokenizer.json"):
        import_ct2_dir(bare, tmp_path / "out")
