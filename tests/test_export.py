import json

import pytest

from distil_whisper_zh.cli import main
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.export import ExportOptions, export_ctranslate2

pytest.importorskip("ctranslate2")
pytest.importorskip("faster_whisper")


def test_export_writes_a_dir_faster_whisper_loads(tiny_model_dir, real_clips, tmp_path):
    result = export_ctranslate2(
        ExportOptions(
            model=str(tiny_model_dir),
            out=str(tmp_path / "ct2"),
            quantization="float32",
            check_audio=str(real_clips[0]["path"]),
        )
    )
    for name in ("model.bin", "tokenizer.json", "preprocessor_config.json", "config.json"):
        assert (tmp_path / "ct2" / name).is_file(), name
    # float32 weights, the same features and greedy decoding: both runtimes write the same text
    assert result.ctranslate2_text == result.transformers_text and len(result.transformers_text) > 0
    assert result.check_cer == 0.0


def test_export_errors(tiny_model_dir, tmp_path):
    with pytest.raises(DwzError, match="--quantization .int4.: choose one of int8,"):
        ExportOptions(model="m", out="o", quantization="int4")
    with pytest.raises(DwzError, match="--format 'onnx': choose one of ctranslate2"):
        ExportOptions(model="m", out="o", format="onnx")
    assert main(["export", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.slow
def test_whisper_base_int8_export_agrees_with_transformers(real_clips, tmp_path, capsys):
    code = main(
        [
            "export",
            "--model",
            "pypi:whisper-base",
            "--out",
            str(tmp_path / "base-int8"),
            "--check-audio",
            str(real_clips[4]["path"]),
        ]
    )
    assert code == 0
    output = capsys.readouterr().out
    cer = float(output.split("CER between them ")[1].split("%")[0])
    assert cer <= 20.0  # int8 vs float32 greedy on a clean 3-s clip: the same text, or one character apart


def test_the_export_check_reads_a_chunked_student_as_dwz_does_on_both_runtimes(tiny_model_dir, real_clips, tmp_path):
    """A student that reads inputs longer than its chunk in chunks: the check clip is cut the same way on both sides,
    so float32 weights still give the same text (comparing a whole clip with its chunks would not)."""
    from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
    from distil_whisper_zh.long_form_mode import CONFIG_KEY, LongFormMode, record
    from distil_whisper_zh.models import load_whisper

    clip = max(real_clips, key=lambda c: len(load_audio(c["path"])))["path"]
    assert len(load_audio(clip)) > 2 * SAMPLE_RATE  # longer than one chunk of the student below
    student = tmp_path / "student"
    loaded = load_whisper(str(tiny_model_dir))
    record(loaded.model.config, LongFormMode("chunked", 2.0))
    loaded.model.save_pretrained(student)
    loaded.processor.save_pretrained(student)
    loaded.processor.feature_extractor.save_pretrained(student)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (student / name).write_bytes((tiny_model_dir / name).read_bytes())
    result = export_ctranslate2(
        ExportOptions(model=str(student), out=str(tmp_path / "ct2"), quantization="float32", check_audio=str(clip))
    )
    assert result.long_form == LongFormMode("chunked", 2.0)
    assert json.loads((tmp_path / "ct2" / "config.json").read_text())[CONFIG_KEY]["chunk_seconds"] == 2.0
    assert result.check_cer == 0.0 and result.transformers_text
