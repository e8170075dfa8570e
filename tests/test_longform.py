"""Long recordings joined from short clips (`dwz evaluate --concat`) and the checks of their segments."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
from distil_whisper_zh.cli import main
from distil_whisper_zh.data import Utterance
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.evaluate import EvaluateOptions
from distil_whisper_zh.longform import in_order, join_clips, longest_uncovered, timing_checks


def clips(real_clips) -> list[Utterance]:
    return [Utterance(c["id"], c["path"], c["text"]) for c in real_clips]


def test_joined_recordings_keep_audio_text_and_joins(real_clips):
    parts = clips(real_clips)
    lengths = [len(load_audio(c["path"])) for c in real_clips]
    recordings = join_clips(parts, seconds=8.0)
    assert sum(len(r.fields["parts"]) for r in recordings) == len(parts)  # every clip once, in order
    assert [p for r in recordings for p in r.fields["parts"]] == [u.id for u in parts]
    first = recordings[0]
    count = len(first.fields["parts"])
    assert first.text == "".join(c["text"] for c in real_clips[:count])
    assert len(first.load()) == sum(lengths[:count]) and first.seconds() == len(first.load()) / SAMPLE_RATE
    assert first.fields["joins"] == pytest.approx(np.cumsum(lengths[: count - 1]) / SAMPLE_RATE, abs=1e-3)
    assert np.array_equal(first.load()[: lengths[0]], load_audio(real_clips[0]["path"]))
    assert all(r.seconds() >= 8.0 for r in recordings[:-1])
    assert [r.id for r in recordings] == [f"joined-{n:04d}" for n in range(len(recordings))]


def test_segment_checks():
    assert in_order([[0.0, 2.0], [2.0, 5.0], [4.5, 6.0]])
    assert not in_order([[0.0, 2.0], [1.0, 3.0], [0.5, 4.0]])  # goes back in time
    assert not in_order([[3.0, 2.0]])  # ends before it starts
    assert longest_uncovered([[1.0, 4.0], [10.0, 12.0]], duration=13.0) == 6.0
    assert longest_uncovered([], duration=40.0) == 40.0  # nothing decoded: the whole recording is lost
    rows = [
        {"segments": [[0.0, 4.9], [5.2, 9.0]], "joins": [5.0, 9.5], "audio_seconds": 10.0},
        {"segments": [[0.0, 3.0], [2.0, 12.0]], "joins": [6.0], "audio_seconds": 11.0},
    ]
    timing = timing_checks(rows)
    assert (timing.recordings, timing.out_of_order, timing.past_end) == (2, 0, 1)
    assert (timing.joins, timing.joins_found, timing.joins_found_share) == (3, 2, 2 / 3)
    assert timing.decoys_found == 1  # mid-clip points 2.5 and 7.25 (none near), 3.0 (a boundary there)
    assert timing.longest_silence == 1.0  # 9.0 -> 10.0 of the first recording


def test_evaluate_concat_reports_long_form_timing(tiny_model_dir, aishell_rows, tmp_path, capsys):
    from conftest import write_s0150_manifest

    rows = aishell_rows[:10]
    manifest = write_s0150_manifest(rows, tmp_path / "clips.jsonl")
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest), "--report", str(report)]
    assert main([*argv, "--concat", "31", "--no-fallback"]) == 0
    assert "joins found" in capsys.readouterr().out
    (result,) = json.loads((report / "report.json").read_text("utf-8"))["results"]
    assert result["dataset"] == "clips-concat31" and result["utterances"] >= 1
    assert result["audio_seconds"] == pytest.approx(sum(r["duration"] for r in rows), abs=0.1)
    timing = result["long_form"]
    assert timing["recordings"] == result["utterances"] and timing["joins"] == 10 - result["utterances"]
    hypotheses = [json.loads(line) for line in (report / result["hypotheses_file"]).read_text("utf-8").splitlines()]
    assert all("segments" in h and "joins" in h for h in hypotheses)
    assert "joins found" in (report / "report.md").read_text("utf-8")


def test_concat_must_be_longer_than_a_window():
    with pytest.raises(DwzError, match="--concat 20: recordings must be longer than one 30-s window"):
        EvaluateOptions(model=["m"], data=["d"], concat=20)


@pytest.mark.slow
def test_the_real_teacher_on_a_joined_recording(aishell_rows, tmp_path):
    """whisper-base, window by window on about a minute of joined real clips: its segments are in order, inside
    the audio, cover it, and most joins between clips are segment boundaries."""
    from conftest import write_s0150_manifest

    rows = aishell_rows[40:58]  # 57 s
    manifest = write_s0150_manifest(rows, tmp_path / "clips.jsonl")
    report = tmp_path / "report"
    argv = ["evaluate", "--model", "pypi:whisper-base", "--data", str(manifest), "--report", str(report)]
    assert main([*argv, "--concat", "55"]) == 0
    (result,) = json.loads((report / "report.json").read_text("utf-8"))["results"]
    timing = result["long_form"]
    assert result["utterances"] == 1 and result["audio_seconds"] > 55
    assert timing["out_of_order"] == 0 and timing["past_end"] == 0
    assert timing["longest_silence"] < 10  # no window lost
    assert timing["joins_found"] >= timing["joins"] / 2
    assert result["cer"] < 0.5 and result["looped"] == 0


def test_join_clips_script_writes_single_window_recordings(aishell_rows, tmp_path):
    """scripts/join_clips.py: consecutive clips joined until --seconds, each recording inside one 30-s window, with
    its clips' texts and join times, as WAV files a manifest names."""
    from conftest import AISHELL_S0150, write_s0150_manifest

    manifest = write_s0150_manifest(aishell_rows[:12], tmp_path / "clips.jsonl")
    script = Path(__file__).parent.parent / "scripts" / "join_clips.py"
    out = tmp_path / "joined"
    subprocess.run(
        [sys.executable, str(script), f"manifest:{manifest}", "--seconds", "10", "--out", str(out)], check=True
    )
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    clips = [load_audio(AISHELL_S0150 / row["audio"]) for row in aishell_rows[:12]]
    assert "".join(row["text"] for row in rows) == "".join(row["text"] for row in aishell_rows[:12])
    used = 0
    for row in rows:
        audio = load_audio(out / row["audio"])
        assert 10 <= len(audio) / SAMPLE_RATE <= 30 or row is rows[-1]  # the last takes what is left
        parts = clips[used : used + len(row["clip_ends"]) + 1]
        assert len(audio) == sum(len(part) for part in parts)
        assert row["clip_ends"] == pytest.approx(list(np.cumsum([len(p) for p in parts])[:-1] / SAMPLE_RATE), abs=1e-3)
        used += len(parts)
    assert used == 12
