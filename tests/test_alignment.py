"""`dwz align-heads`: the student's word-timestamp heads, chosen by how well they follow the teacher's timings."""

import itertools
import json

import pytest
import torch

from distil_whisper_zh.alignment import AlignHeadsOptions, choose_heads, head_errors, teacher_timings
from distil_whisper_zh.audio import load_audio
from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import DecodingOptions, WhisperDecoder
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.student import CreateStudentOptions, create_student


def test_the_best_following_heads_are_chosen():
    errors = torch.tensor([[0.9, 0.2, 1.5], [0.1, 2.0, 0.3]])
    chosen = choose_heads(errors, 3)
    assert [(h.layer, h.head) for h in chosen] == [(1, 0), (0, 1), (1, 2)]
    assert [h.error for h in chosen] == pytest.approx([0.1, 0.2, 0.3])


def test_head_errors_measure_each_head_against_the_teachers_times(tiny_model_dir, real_clips):
    teacher = load_whisper(str(tiny_model_dir))
    audio = load_audio(real_clips[0]["path"])
    tokens, times = teacher_timings(teacher, audio)
    assert len(tokens) == len(times) and torch.all(times[1:] >= times[:-1])  # DTW times never go back
    eos = teacher.processor.tokenizer.eos_token_id
    errors = head_errors(teacher, audio, tokens, times, eos)
    config = teacher.model.config
    assert errors.shape == (config.decoder_layers, config.decoder_attention_heads)
    assert torch.all(errors >= 0) and torch.all(errors <= len(audio) / 16000 + 1)


def test_a_clip_without_text_is_not_measured(tiny_model_dir, real_clips):
    student = load_whisper(str(tiny_model_dir))
    eos = student.processor.tokenizer.eos_token_id
    prompt_only = [50258, 50260, 50359, 50363, eos]  # <|startoftranscript|><|zh|><|transcribe|><|notimestamps|>
    audio = load_audio(real_clips[0]["path"])
    assert head_errors(student, audio, prompt_only, torch.zeros(len(prompt_only)), eos) is None


def test_align_heads_writes_the_generation_config_and_the_export_carries_them(
    tiny_model_dir, small_manifest, real_clips, tmp_path, capsys
):
    student = tmp_path / "student"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(student), decoder_layers=1))
    argv = ["align-heads", "--model", str(student), "--teacher", str(tiny_model_dir), "--data", str(small_manifest)]
    assert main([*argv, "--clips", "2", "--heads", "3"]) == 0
    heads = json.loads((student / "generation_config.json").read_text())["alignment_heads"]
    assert len(heads) == 3 and all(layer == 0 and 0 <= head < 4 for layer, head in heads)
    assert "alignment heads of" in capsys.readouterr().out
    report = json.loads((student / "alignment_heads.json").read_text())
    assert report["clips"] == 2 and len(report["errors"]) == 1 and len(report["errors"][0]) == 4
    assert sorted([h["layer"], h["head"]] for h in report["chosen"]) == sorted(heads)
    assert sorted(h["error"] for h in report["chosen"]) == pytest.approx(sorted(report["errors"][0])[:3], abs=1e-4)
    assert main(["export", "--model", str(student), "--out", str(tmp_path / "ct2"), "--quantization", "float32"]) == 0
    assert json.loads((tmp_path / "ct2" / "config.json").read_text())["alignment_heads"] == heads

    from faster_whisper import WhisperModel

    audio = load_audio(real_clips[0]["path"])
    segments, _ = WhisperModel(str(tmp_path / "ct2"), device="cpu").transcribe(
        audio, language="zh", word_timestamps=True, temperature=0.0, condition_on_previous_text=False
    )
    words = [word for segment in segments for word in segment.words]
    assert words and all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert words[-1].end <= len(audio) / 16000 + 0.5

    capsys.readouterr()
    clip = str(real_clips[0]["path"])
    argv = ["transcribe", "--model", str(tmp_path / "ct2"), clip, "--format", "json", "--word-timestamps"]
    assert main([*argv, "--no-fallback"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    timed = [word for segment in row["segments"] for word in segment["words"]]
    assert timed and all(w["start"] <= w["end"] <= row["audio_seconds"] + 0.5 for w in timed)
    assert all(w["text"] in segment["text"] for segment in row["segments"] for w in segment["words"])


def test_word_timestamps_on_transformers(tiny_model_dir, real_clips, capsys):
    """--word-timestamps on a transformers model: words from its alignment heads, in order, inside the audio, each
    inside its segment's text."""
    clip = str(real_clips[0]["path"])
    argv = ["transcribe", "--model", str(tiny_model_dir), clip, "--format", "json", "--word-timestamps"]
    assert main([*argv, "--no-fallback"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    timed = [word for segment in row["segments"] for word in segment["words"]]
    assert timed and all(0 <= w["start"] <= w["end"] <= row["audio_seconds"] for w in timed)
    assert all(a["start"] <= b["start"] for a, b in itertools.pairwise(timed))
    assert all(w["text"] in segment["text"] for segment in row["segments"] for w in segment["words"])


def test_word_timestamps_are_those_of_the_pass_kept(tiny_model_dir, real_clips, monkeypatch):
    """A clip that loops at every temperature keeps one of its passes, not always its last: its words are that
    pass' tokens with that pass' times (here the greedy pass, as a decode without fallback gives it)."""
    from distil_whisper_zh import decoding

    loaded, audio = load_whisper(str(tiny_model_dir)), load_audio(real_clips[0]["path"])
    (greedy,) = WhisperDecoder(loaded, DecodingOptions(fallback=False), word_timestamps=True).decode([audio])
    monkeypatch.setattr(decoding, "is_loop", lambda text: True)  # every pass of the random model counts as a loop
    monkeypatch.setattr(decoding, "kept_try", lambda tries, text_of: tries[0])  # ... and the first is kept
    (kept,) = WhisperDecoder(loaded, DecodingOptions(), word_timestamps=True).decode([audio])
    assert kept.retries == 5 and kept.raw_text == greedy.raw_text
    assert kept.segments == greedy.segments and any(segment.words for segment in kept.segments)


def test_word_timestamps_need_alignment_heads(tiny_model_dir, real_clips, tmp_path, capsys):
    model = load_whisper(str(tiny_model_dir))
    model.model.generation_config.alignment_heads = None
    model.model.save_pretrained(tmp_path / "no-heads")
    model.processor.save_pretrained(tmp_path / "no-heads")
    argv = ["transcribe", "--model", str(tmp_path / "no-heads"), str(real_clips[0]["path"]), "--word-timestamps"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "names no alignment heads in its generation config (for a student: dwz align-heads" in error


def test_align_heads_options_are_checked():
    with pytest.raises(DwzError, match="--clips and --heads must be at least 1"):
        AlignHeadsOptions(model="m", teacher="t", data=["d"], heads=0)
