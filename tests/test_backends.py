"""Backends: transformers and CTranslate2 (faster-whisper) chosen from the model argument, forced with --backend;
one report comparing both; errors that name the fix."""

import json

import jiwer
import numpy as np
import pytest

from distil_whisper_zh.audio import load_audio
from distil_whisper_zh.backends import BackendOptions, CTranslate2Decoder, choose_backend, make_decoder
from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import DecodingOptions, WhisperDecoder, token_cap
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models.params import count_model_parameters

pytest.importorskip("faster_whisper")
GREEDY = DecodingOptions(fallback=False)


def test_backend_follows_the_model_argument(tiny_model_dir, tiny_ct2_dir):
    assert choose_backend(str(tiny_ct2_dir)) == "ctranslate2"
    assert choose_backend(str(tiny_model_dir)) == "transformers"
    assert choose_backend("pypi:whisper-base") == "transformers"
    assert choose_backend("openai/whisper-small") == "transformers"
    assert choose_backend(str(tiny_model_dir), "ctranslate2") == "ctranslate2"
    assert isinstance(make_decoder(str(tiny_ct2_dir), GREEDY), CTranslate2Decoder)
    assert isinstance(make_decoder(str(tiny_model_dir), GREEDY), WhisperDecoder)


def test_ctranslate2_decoder_transcribes_real_clips(tiny_model_dir, tiny_ct2_dir, real_clips):
    decoder = make_decoder(str(tiny_ct2_dir), GREEDY)
    assert decoder.backend == "ctranslate2" and decoder.name == str(tiny_ct2_dir)
    assert decoder.params == count_model_parameters(str(tiny_model_dir))  # read from the CT2 file's shapes
    audios = [load_audio(clip["path"]) for clip in real_clips[:2]]
    transcripts = decoder.decode(audios)
    assert len(transcripts) == 2
    cap = token_cap(max(len(a) for a in audios) / 16000)  # one batch: its longest clip sets the cap, as in transformers
    for transcript in transcripts:
        assert transcript.num_tokens <= cap and transcript.hit_token_cap == (transcript.num_tokens == cap)
        assert transcript.segments == []  # short clip, no timestamps asked


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        ("{tiny}", BackendOptions(backend="ctranslate2"), "is not a CTranslate2 dir (no model.bin); export it first"),
        ("{ct2}", BackendOptions(assistant="{tiny}"), "--assistant needs the transformers backend"),
        ("{tiny}", BackendOptions(vad=True), "--vad runs through faster-whisper"),
        ("{tiny}", BackendOptions(compute_type="int8"), "--compute-type is a CTranslate2 option"),
    ],
)
def test_backend_misuse_is_refused(tiny_model_dir, tiny_ct2_dir, model, options, message):
    model = model.format(tiny=tiny_model_dir, ct2=tiny_ct2_dir)
    if options.assistant:
        options = BackendOptions(assistant=str(tiny_model_dir))
    with pytest.raises(DwzError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_decoder(model, GREEDY, options)


def test_backend_options_are_checked():
    with pytest.raises(DwzError, match="--backend 'onnx': choose one of auto, transformers, ctranslate2"):
        BackendOptions(backend="onnx")
    with pytest.raises(DwzError, match="--compute-type 'int4'"):
        BackendOptions(compute_type="int4")
    with pytest.raises(DwzError, match="choose one"):
        BackendOptions(assistant="student", vad=True)


def test_one_report_compares_both_runtimes(tiny_model_dir, tiny_ct2_dir, small_manifest, tmp_path):
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--model", str(tiny_ct2_dir), "--no-fallback"]
    argv += ["--compute-type", "int8"]  # quantises the CTranslate2 model; the transformers one stays float32
    assert main([*argv, "--data", str(small_manifest), "--report", str(report), "--batch-size", "2"]) == 0
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    first, second = data["results"]
    assert (first["backend"], second["backend"]) == ("transformers", "ctranslate2")
    assert first["params"] == second["params"]
    assert first["same_text_as_baseline"] is None and 0.0 <= second["same_text_as_baseline"] <= 1.0
    assert first["hypotheses_file"] != second["hypotheses_file"]
    assert "ctranslate2" in data["versions"] and data["backend"]["backend"] == "auto"
    assert "| ctranslate2 |" in (report / "report.md").read_text(encoding="utf-8")


def test_compute_type_without_a_ctranslate2_model_is_an_error(tiny_model_dir, small_manifest, tmp_path, capsys):
    argv = ["evaluate", "--model", str(tiny_model_dir), "--compute-type", "int8", "--data", str(small_manifest)]
    assert main([*argv, "--report", str(tmp_path / "report")]) == 2
    assert "no --model runs on CTranslate2; use --dtype" in capsys.readouterr().err


@pytest.mark.slow
def test_whisper_base_on_ctranslate2_int8_transcribes_with_timestamps(real_clips, tmp_path, capsys):
    clip = real_clips[0]  # "设定二十九度", 2.4 s
    argv = ["transcribe", "--model", "pypi:whisper-base", "--backend", "ctranslate2", "--compute-type", "int8"]
    assert main([*argv, str(clip["path"]), "--format", "srt"]) == 0
    srt = capsys.readouterr().out
    lines = srt.splitlines()
    assert lines[0] == "1" and lines[1].startswith("00:00:00,000 --> 00:00:0")
    assert main([*argv, str(clip["path"])]) == 0  # txt: the same decoding, so the same words
    assert lines[2] == capsys.readouterr().out.strip() and lines[2].startswith("设定")
    long = tmp_path / "long.wav"
    audio = np.concatenate([load_audio(clip["path"]), np.zeros(30 * 16000, np.float32), load_audio(clip["path"])])
    __import__("soundfile").write(long, audio, 16000)
    assert main([*argv, str(long), "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["audio_seconds"] > 34 and len(row["segments"]) >= 2
    assert row["segments"][0]["start"] < 3.0 and row["segments"][-1]["start"] >= 30.0


def test_vad_reports_what_it_left_out(tiny_ct2_dir, real_clips, tmp_path, capsys):
    import soundfile as sf

    from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
    from distil_whisper_zh.cli import main

    first, second = (load_audio(clip["path"]) for clip in real_clips[:2])
    pause = np.zeros(6 * SAMPLE_RATE, np.float32)
    recording = tmp_path / "two-utterances.wav"
    sf.write(recording, np.concatenate([first, pause, second]), SAMPLE_RATE)
    assert main(["transcribe", "--model", str(tiny_ct2_dir), str(recording), "--format", "json", "--vad"]) == 0
    captured = capsys.readouterr()
    (row,) = [json.loads(line) for line in captured.out.splitlines()]
    gap_start, gap_end = len(first) / SAMPLE_RATE, (len(first) + len(pause)) / SAMPLE_RATE
    removed = row["vad_removed"]
    in_pause = sum(max(0.0, min(b, gap_end) - max(a, gap_start)) for a, b in removed)
    assert in_pause > 4.0  # most of the pause (padded 0.5 s on each side of the speech)
    outside = sum(b - a for a, b in removed) - in_pause
    assert outside < 1.0  # at most the clips' own leading and trailing silence: their speech is kept
    assert "--vad left out" in captured.err and str(recording) in captured.err


def test_short_clips_with_timestamps_go_through_ctranslate2s_batched_generate(tiny_ct2_dir, real_clips, monkeypatch):
    decoder = make_decoder(str(tiny_ct2_dir), GREEDY, timestamps=True)

    def one_at_a_time(audio):
        raise AssertionError("short clips must not go through faster-whisper's transcribe")

    monkeypatch.setattr(decoder, "_transcribe_one", one_at_a_time)
    audios = [load_audio(clip["path"]) for clip in real_clips[:3]]
    transcripts = decoder.decode(audios)
    assert any(t.segments for t in transcripts)
    for transcript, audio in zip(transcripts, audios, strict=True):
        times = [t for s in transcript.segments for t in (s.start, s.end)]
        assert times == sorted(times) and all(0 <= t <= 30.0 for t in times)  # a random model times anything
        last_end = [len(audio) / 16000] if transcript.segments else []  # a segment not closed ends with the clip
        assert all(round(t / 0.02) * 0.02 == pytest.approx(t) for t in times if t not in last_end)


@pytest.mark.slow
def test_timestamps_on_ctranslate2_are_decoded_in_batches_as_faster_whisper_decodes_them(real_clips):
    """Short clips with --timestamps go through CTranslate2's batched generate (its own timestamp rules), not
    faster-whisper's one-at-a-time transcribe: the same segments, to a timestamp step or two. Compared in float32:
    int8 kernels round differently with a batch's padding, which flips a character on these clips (29度/29多)."""
    backend = BackendOptions(backend="ctranslate2", compute_type="float32")
    decoder = make_decoder("pypi:whisper-base", GREEDY, backend, timestamps=True)
    audios = [load_audio(clip["path"]) for clip in real_clips]
    batched = decoder.decode(audios)
    one_by_one = [decoder._transcribe_one(audio) for audio in audios]  # faster-whisper's transcribe
    same_text = 0
    for mine, theirs, audio in zip(batched, one_by_one, audios, strict=True):
        assert mine.segments and all(0 <= s.start < s.end <= len(audio) / 16000 + 0.5 for s in mine.segments)
        assert jiwer.cer(theirs.text, mine.text) <= 0.2, (mine.text, theirs.text)  # a character at most
        assert [s.start for s in mine.segments] == pytest.approx([s.start for s in theirs.segments], abs=0.05)
        assert [s.end for s in mine.segments] == pytest.approx([s.end for s in theirs.segments], abs=0.05)
        same_text += mine.text == theirs.text
    assert same_text >= 4
