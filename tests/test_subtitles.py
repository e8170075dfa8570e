"""SRT and WebVTT output: timestamps, numbering, header; one subtitle file per input."""

import shutil

import pytest
import soundfile as sf

from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import Segment
from distil_whisper_zh.subtitles import format_timestamp, to_srt, to_vtt

SEGMENTS = [Segment(0.0, 2.5, "设定二十九度"), Segment(62.345, 3725.0004, "调高温度")]


@pytest.mark.parametrize(
    ("seconds", "srt", "vtt"),
    [
        (0.0, "00:00:00,000", "00:00:00.000"),
        (62.345, "00:01:02,345", "00:01:02.345"),
        (3725.0004, "01:02:05,000", "01:02:05.000"),
        (59.9996, "00:01:00,000", "00:01:00.000"),  # rounding carries into the minutes
        (-0.01, "00:00:00,000", "00:00:00.000"),
    ],
)
def test_timestamps(seconds, srt, vtt):
    assert format_timestamp(seconds, ",") == srt
    assert format_timestamp(seconds, ".") == vtt


def test_srt_cues_are_numbered_from_one():
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:02,500\n设定二十九度\n\n2\n00:01:02,345 --> 01:02:05,000\n调高温度\n"
    )
    assert to_srt([]) == ""


def test_vtt_has_its_header_and_dot_decimals():
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n设定二十九度\n\n00:01:02.345 --> 01:02:05.000\n调高温度\n"
    )
    assert to_vtt([]) == "WEBVTT\n"


def test_several_inputs_get_one_subtitle_file_each(tiny_model_dir, small_manifest, tmp_path, capsys):
    clips = small_manifest.parent / "clips"
    argv = ["transcribe", "--model", str(tiny_model_dir), str(clips), "--format", "vtt", "--no-fallback"]
    assert main(argv) == 0  # without --output: beside each audio file
    beside = sorted(p.name for p in clips.glob("*.vtt"))
    assert beside == sorted(p.stem + ".vtt" for p in clips.glob("*.flac"))
    assert capsys.readouterr().out == ""
    for path in clips.glob("*.vtt"):
        path.unlink()
    assert main([*argv, "--output", str(tmp_path / "subs")]) == 0
    written = sorted(p.name for p in (tmp_path / "subs").iterdir())
    assert written == sorted(p.stem + ".vtt" for p in clips.iterdir())
    for path in (tmp_path / "subs").iterdir():
        assert path.read_text(encoding="utf-8").startswith("WEBVTT\n")


def test_one_input_into_an_output_folder_and_same_named_inputs(tiny_model_dir, small_manifest, tmp_path, capsys):
    clip = sorted((small_manifest.parent / "clips").glob("*.flac"))[0]
    subs = tmp_path / "subs"
    subs.mkdir()
    argv = ["transcribe", "--model", str(tiny_model_dir), "--format", "srt", "--no-fallback"]
    assert main([*argv, str(clip), "--output", str(subs)]) == 0  # an existing folder: DIR/<stem>.srt
    assert [p.name for p in subs.iterdir()] == [f"{clip.stem}.srt"]
    assert main([*argv, str(clip), "--output", f"{tmp_path / 'new'}/"]) == 0  # a trailing slash: a new folder
    assert (tmp_path / "new" / f"{clip.stem}.srt").is_file()
    twin = tmp_path / "twins"
    twin.mkdir()
    shutil.copy(clip, twin / "a.flac")
    sf.write(twin / "a.wav", sf.read(clip)[0], 16000)
    capsys.readouterr()
    assert main([*argv, str(twin / "a.flac"), str(twin / "a.wav")]) == 2  # both would write a.srt
    assert "would overwrite each other's subtitles" in capsys.readouterr().err
