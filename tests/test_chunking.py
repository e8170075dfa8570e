"""Long recordings decoded in chunks cut at pauses (`--long-form chunked`): the chunk plan on real joined clips,
the transcript assembled from the chunks, both runtimes, evaluate and transcribe, and bad chunk lengths."""

import itertools
import json

import numpy as np
import pytest

from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
from distil_whisper_zh.backends import Runtime, make_decoder
from distil_whisper_zh.chunking import (
    Chunk,
    ChunkedDecoder,
    assemble,
    base_decoder,
    gaps,
    join_texts,
    merge_regions,
    plan_chunks,
)
from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import DecodingOptions, Segment, Transcript, WhisperDecoder, Word
from distil_whisper_zh.errors import DwzError

CHUNKED = DecodingOptions(fallback=False, long_form="chunked", chunk_seconds=15.0)


def seconds(*pairs: tuple[float, float]) -> list[Chunk]:
    return [Chunk(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in pairs]


@pytest.fixture(scope="module")
def joined(aishell_rows):
    """About 47 s of consecutive real S0150 clips joined, and the join times (the tests that take it cut with
    faster-whisper's VAD)."""
    from conftest import AISHELL_S0150

    pytest.importorskip("faster_whisper")
    audios = [load_audio(AISHELL_S0150 / row["audio"]) for row in aishell_rows[40:55]]
    joins = np.cumsum([len(a) for a in audios])[:-1] / SAMPLE_RATE
    return np.concatenate(audios).astype(np.float32), joins


def test_regions_merge_into_chunks_no_longer_than_the_limit():
    regions = seconds((0.5, 3.0), (3.4, 7.0), (7.5, 12.0), (12.2, 16.1), (17.0, 20.0))
    assert merge_regions(regions, 10.0) == seconds((0.5, 7.0), (7.5, 16.1), (17.0, 20.0))
    assert merge_regions(regions, 30.0) == seconds((0.5, 20.0))
    assert merge_regions([], 10.0) == []


def test_a_clip_of_one_chunk_is_one_chunk_and_a_longer_recording_is_cut_at_its_pauses(joined):
    audio, joins = joined
    assert plan_chunks(audio[: 15 * SAMPLE_RATE], 15.0) == [Chunk(0, 15 * SAMPLE_RATE)]
    within_a_window = plan_chunks(audio[: 25 * SAMPLE_RATE], 15.0)  # one 30-s window, but longer than a chunk
    assert len(within_a_window) >= 2 and all(c.end - c.start <= 15 * SAMPLE_RATE for c in within_a_window)
    quiet = np.zeros(20 * SAMPLE_RATE, np.float32)  # nothing for the VAD to cut at inside one window: decoded whole
    assert plan_chunks(quiet, 15.0) == [Chunk(0, len(quiet))]
    chunks = plan_chunks(audio, 15.0)
    assert len(chunks) >= 4
    assert all(0 < (c.end - c.start) / SAMPLE_RATE <= 15.0 for c in chunks)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))  # in order, no overlap
    assert chunks[0].start < 1 * SAMPLE_RATE and chunks[-1].end > len(audio) - 1 * SAMPLE_RATE  # all speech kept
    ends = [c.end / SAMPLE_RATE for c in chunks[:-1]]
    assert all(min(abs(e - j) for j in joins) < 0.5 for e in ends)  # cut in the pauses between the clips


def test_texts_join_without_spaces_between_chinese_and_with_one_between_words():
    assert join_texts(["今天天气很好", "", "我们出去玩"]) == "今天天气很好我们出去玩"
    assert join_texts(["hello world", "again", "再见"]) == "hello world again再见"


def test_chunk_transcripts_assemble_into_the_recording():
    samples = 40 * SAMPLE_RATE
    chunks = seconds((1.0, 12.0), (14.0, 27.5), (30.0, 38.0))
    words = (Word(0.5, 1.0, "我们"),)
    pieces = [
        Transcript("今天", "今天", 3, False, 1.1, retries=1),
        Transcript("", "", 0, False, 0.0),
        Transcript("我们走", "我们走", 4, True, 2.6, segments=[Segment(0.2, 9.0, "我们走", words)], retries=2),
    ]
    transcript = assemble(pieces, chunks, samples)
    assert transcript.text == "今天我们走" and transcript.num_tokens == 7 and transcript.retries == 3
    assert transcript.hit_token_cap and transcript.looped  # the most repetitive chunk decides
    assert transcript.segments == [
        Segment(1.0, 12.0, "今天"),  # a chunk decoded without timestamps is one segment
        Segment(30.2, 38.0, "我们走", (Word(30.5, 31.0, "我们"),)),  # shifted, and no later than the chunk ends
    ]
    assert transcript.vad_removed == [(0.0, 1.0), (12.0, 14.0), (27.5, 30.0), (38.0, 40.0)]
    assert gaps([], samples) == [(0.0, 40.0)]
    single = Transcript("整段", "整段", 2, False, 1.0)
    assert assemble([single], [Chunk(0, samples)], samples) is single  # one window: as decoded


def test_chunked_decoding_of_a_long_recording_on_both_runtimes(tiny_model_dir, tiny_ct2_dir, joined):
    audio, _ = joined
    short = audio[: 8 * SAMPLE_RATE]
    chunks = plan_chunks(audio, 15.0)
    for model in (tiny_model_dir, tiny_ct2_dir):
        decoder = make_decoder(str(model), CHUNKED, runtime=Runtime(batch_size=1))
        assert isinstance(decoder, ChunkedDecoder)
        plain = base_decoder(decoder)
        assert decoder.decode([short]) == plain.decode([short])  # a clip of one chunk: exactly as without chunking
        (transcript,) = decoder.decode([audio])
        expected = [plain.decode([audio[c.start : c.end]])[0] for c in chunks]  # each chunk alone, in order
        assert transcript.raw_text == join_texts([t.raw_text for t in expected])
        assert transcript.num_tokens == sum(t.num_tokens for t in expected)
        with_text = [c for c, t in zip(chunks, expected, strict=True) if t.text]
        assert [s.start for s in transcript.segments] == [round(c.start / SAMPLE_RATE, 2) for c in with_text]
        assert [s.end for s in transcript.segments] == [round(c.end / SAMPLE_RATE, 2) for c in with_text]


def test_a_batch_of_clips_recordings_and_silence_comes_back_whole_and_in_order(tiny_model_dir, joined):
    audio, _ = joined
    short, silence = audio[: 5 * SAMPLE_RATE], np.zeros(35 * SAMPLE_RATE, np.float32)
    decoder = make_decoder(str(tiny_model_dir), CHUNKED, runtime=Runtime(batch_size=3))
    first, clip, quiet, second = decoder.decode([audio, short, silence, audio[: 40 * SAMPLE_RATE]])
    assert quiet.text == "" and quiet.segments == [] and quiet.vad_removed == [(0.0, 35.0)]
    assert clip.segments == [] and clip.vad_removed == []  # a clip of one chunk: one piece, no VAD
    for transcript, recording in ((first, audio), (second, audio[: 40 * SAMPLE_RATE])):  # each its own chunks
        chunk_starts = {round(c.start / SAMPLE_RATE, 2) for c in plan_chunks(recording, 15.0)}
        assert transcript.segments and {s.start for s in transcript.segments} <= chunk_starts
        assert all(s.end <= len(recording) / SAMPLE_RATE for s in transcript.segments)


def test_vad_and_chunked_long_form_do_not_go_together(tiny_ct2_dir):
    from distil_whisper_zh.backends import BackendOptions

    with pytest.raises(DwzError, match="--vad and --long-form chunked both cut recordings at pauses"):
        make_decoder(str(tiny_ct2_dir), CHUNKED, BackendOptions(vad=True))


def test_sequential_decoding_is_not_wrapped(tiny_model_dir):
    decoder = make_decoder(str(tiny_model_dir), DecodingOptions(fallback=False))
    assert isinstance(decoder, WhisperDecoder)


@pytest.mark.parametrize("value", [1.0, 31.0])
def test_a_chunk_length_that_makes_no_sense_is_refused(value):
    with pytest.raises(DwzError, match=f"--chunk-seconds {value:g}: give 2 to 30 seconds"):
        DecodingOptions(long_form="chunked", chunk_seconds=value)


def test_evaluate_and_transcribe_take_long_form_chunked(tiny_model_dir, aishell_rows, joined, tmp_path):
    import soundfile as sf
    from conftest import write_s0150_manifest

    manifest = write_s0150_manifest(aishell_rows[:12], tmp_path / "clips.jsonl")
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest), "--report", str(report)]
    assert main([*argv, "--concat", "31", "--no-fallback", "--long-form", "chunked", "--chunk-seconds", "10"]) == 0
    saved = json.loads((report / "report.json").read_text("utf-8"))
    assert saved["decoding"]["long_form"] == "chunked" and saved["decoding"]["chunk_seconds"] == 10
    (result,) = saved["results"]
    assert result["long_form"]["out_of_order"] == 0 and result["long_form"]["past_end"] == 0
    assert result["long_form"]["segments_from"] == "chunks of <= 10 s"

    audio, _ = joined
    path = tmp_path / "meeting.wav"
    sf.write(path, audio, SAMPLE_RATE)
    out = tmp_path / "meeting.json"
    command = ["transcribe", "--model", str(tiny_model_dir), str(path), "--format", "json", "-o", str(out)]
    assert main([*command, "--long-form", "chunked", "--no-fallback"]) == 0
    (row,) = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(row["segments"]) >= 1 and row["segments"][-1]["end"] <= len(audio) / SAMPLE_RATE
    assert "vad_removed" in row


@pytest.mark.slow
def test_the_real_teacher_reads_a_chunked_recording_as_well_as_its_clips(aishell_rows, tmp_path):
    """whisper-base on about a minute of joined real clips, chunked at its pauses: its CER is close to its CER on
    the same clips one by one, its segments are in order, inside the audio, and leave no stretch of speech out."""
    from conftest import write_s0150_manifest

    manifest = write_s0150_manifest(aishell_rows[40:58], tmp_path / "clips.jsonl")  # 57 s
    argv = ["evaluate", "--model", "pypi:whisper-base", "--data", str(manifest)]
    assert main([*argv, "--report", str(tmp_path / "clips")]) == 0
    assert main([*argv, "--report", str(tmp_path / "long"), "--concat", "55", "--long-form", "chunked"]) == 0
    (clips,) = json.loads((tmp_path / "clips" / "report.json").read_text("utf-8"))["results"]
    (long,) = json.loads((tmp_path / "long" / "report.json").read_text("utf-8"))["results"]
    assert long["utterances"] == 1 and long["looped"] == 0
    assert long["cer"] <= 1.1 * clips["cer"] + 0.02
    timing = long["long_form"]
    assert timing["out_of_order"] == 0 and timing["past_end"] == 0 and timing["longest_silence"] < 3


def test_an_input_of_one_window_but_longer_than_a_chunk_is_decoded_chunk_by_chunk(tiny_model_dir, joined):
    audio, _ = joined
    within_a_window = audio[: 25 * SAMPLE_RATE]
    decoder = make_decoder(str(tiny_model_dir), CHUNKED, runtime=Runtime(batch_size=1))  # a batch shares a token cap
    chunks = plan_chunks(within_a_window, 15.0)
    assert len(chunks) >= 2
    (transcript,) = decoder.decode([within_a_window])
    expected = [base_decoder(decoder).decode([within_a_window[c.start : c.end]])[0] for c in chunks]
    assert transcript.raw_text == join_texts([t.raw_text for t in expected])
    assert transcript.raw_text != base_decoder(decoder).decode([within_a_window])[0].raw_text  # not read whole
