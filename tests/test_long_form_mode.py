"""How a model reads recordings over 30 s (`dwz_long_form` in its config): the chunk length a student's training
clips give, the config round trip, every consumer reading it (transformers, the CTranslate2 export, evaluate,
pseudo-label), the command line's options winning over it, and unusable values refused."""

import json
import shutil

import pytest
from transformers import WhisperConfig

from distil_whisper_zh.backends import BackendOptions, make_decoder
from distil_whisper_zh.chunking import ChunkedDecoder
from distil_whisper_zh.decoding import DecodingOptions, WhisperDecoder
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.export import ExportOptions, export_ctranslate2
from distil_whisper_zh.long_form_mode import CONFIG_KEY, LongFormMode, record
from distil_whisper_zh.pseudo_label import PseudoLabelOptions, run_identity

GREEDY = DecodingOptions(fallback=False)


@pytest.fixture(scope="module")
def chunked_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with a student's record: long recordings in chunks of <= 6.5 s."""
    out = tmp_path_factory.mktemp("chunked") / "model"
    shutil.copytree(tiny_model_dir, out)
    config = json.loads((out / "config.json").read_text("utf-8"))
    config[CONFIG_KEY] = {"mode": "chunked", "chunk_seconds": 6.5}
    (out / "config.json").write_text(json.dumps(config), "utf-8")
    return out


def test_a_students_chunks_are_as_long_as_nine_in_ten_of_its_training_clips():
    clips = [3.0] * 8 + [6.2, 12.0]  # the 9th of 10 is the 90% point
    assert LongFormMode.for_training_clips(clips) == LongFormMode("chunked", 6.5)
    assert LongFormMode.for_training_clips([4.0] * 10) == LongFormMode("chunked", 4.0)
    assert LongFormMode.for_training_clips([0.8, 1.2]) == LongFormMode("chunked", 2.0)  # no chunk under 2 s
    assert LongFormMode.for_training_clips([30.0]) == LongFormMode("chunked", 30.0)
    with pytest.raises(DwzError, match="no training clips"):
        LongFormMode.for_training_clips([])


def test_the_config_field_round_trips_and_whispers_own_reading_writes_none(tmp_path):
    config = WhisperConfig()
    record(config, LongFormMode("chunked", 7.0))
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text("utf-8"))
    assert saved[CONFIG_KEY] == {"mode": "chunked", "chunk_seconds": 7.0}
    assert LongFormMode.of(WhisperConfig.from_pretrained(tmp_path)) == LongFormMode("chunked", 7.0)
    record(config, LongFormMode())
    assert not hasattr(config, CONFIG_KEY)
    assert LongFormMode.of({}) == LongFormMode("sequential", 15.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"mode": "windowed"}, "--long-form 'windowed': choose one of sequential, chunked"),
        ({"mode": "chunked", "chunk_seconds": 45}, "--chunk-seconds 45: give 2 to 30 seconds"),
        ({"mode": "chunked", "seconds": 6}, "unexpected keyword argument 'seconds'"),
    ],
)
def test_an_unusable_field_is_refused_naming_it(value, message):
    with pytest.raises(DwzError, match=f"unusable {CONFIG_KEY}.*{message}"):
        LongFormMode.of({CONFIG_KEY: value})


def test_options_not_given_are_the_models_own_and_given_ones_win():
    config = {CONFIG_KEY: {"mode": "chunked", "chunk_seconds": 6.5}}
    assert (GREEDY.for_model(config).long_form, GREEDY.for_model(config).chunk_seconds) == ("chunked", 6.5)
    assert (GREEDY.for_model({}).long_form, GREEDY.for_model({}).chunk_seconds) == ("sequential", 15.0)
    given = DecodingOptions(long_form="sequential", chunk_seconds=10.0).for_model(config)
    assert (given.long_form, given.chunk_seconds) == ("sequential", 10.0)
    with pytest.raises(DwzError, match="--long-form 'windowed': choose one of sequential, chunked"):
        DecodingOptions(long_form="windowed")


def test_both_runtimes_read_a_student_chunked_without_flags(chunked_model_dir, tmp_path):
    decoder = make_decoder(str(chunked_model_dir), GREEDY)
    assert isinstance(decoder, ChunkedDecoder) and decoder.options.chunk_seconds == 6.5
    assert isinstance(make_decoder(str(chunked_model_dir), DecodingOptions(long_form="sequential")), WhisperDecoder)

    out = tmp_path / "ct2"
    result = export_ctranslate2(ExportOptions(model=str(chunked_model_dir), out=str(out), quantization="float32"))
    assert result.long_form == LongFormMode("chunked", 6.5)
    assert json.loads((out / "config.json").read_text("utf-8"))[CONFIG_KEY] == {"mode": "chunked", "chunk_seconds": 6.5}
    ct2 = make_decoder(str(out), GREEDY, BackendOptions("ctranslate2"))
    assert isinstance(ct2, ChunkedDecoder) and ct2.backend == "ctranslate2" and ct2.options.chunk_seconds == 6.5
    with pytest.raises(
        DwzError, match=r"--vad and --long-form chunked \(.* its dwz_long_form\).*--long-form sequential"
    ):
        make_decoder(str(out), GREEDY, BackendOptions("ctranslate2", vad=True))
    make_decoder(str(out), DecodingOptions(long_form="sequential"), BackendOptions("ctranslate2", vad=True))


def test_a_model_without_the_field_reads_long_recordings_as_whisper(tiny_model_dir):
    decoder = make_decoder(str(tiny_model_dir), GREEDY)
    assert isinstance(decoder, WhisperDecoder)
    assert (decoder.options.long_form, decoder.options.chunk_seconds) == ("sequential", 15.0)


def test_pseudo_label_runs_are_identified_by_how_the_teacher_reads(chunked_model_dir, tiny_model_dir, tmp_path):
    def decoding(teacher):
        return run_identity(PseudoLabelOptions(teacher=str(teacher), data=["x"], out=str(tmp_path)))["decoding"]

    assert (decoding(chunked_model_dir)["long_form"], decoding(chunked_model_dir)["chunk_seconds"]) == ("chunked", 6.5)
    assert (decoding(tiny_model_dir)["long_form"], decoding(tiny_model_dir)["chunk_seconds"]) == ("sequential", 15.0)
