import numpy as np
import pytest
import soundfile as sf
import soxr

from distil_whisper_zh.audio import SAMPLE_RATE, duration_seconds, load_audio
from distil_whisper_zh.errors import DwzError


@pytest.fixture(scope="module")
def speech(real_clips):
    samples, rate = sf.read(real_clips[0]["path"], dtype="float32")
    assert rate == SAMPLE_RATE
    return samples


@pytest.mark.parametrize(
    ("extension", "audio_format", "subtype", "rate", "channels"),
    [
        ("wav", "WAV", "PCM_16", 44_100, 2),
        ("wav", "WAV", "FLOAT", 8_000, 1),
        ("flac", "FLAC", "PCM_24", 48_000, 1),
        ("ogg", "OGG", "VORBIS", 22_050, 2),
        ("opus", "OGG", "OPUS", 48_000, 1),
        ("mp3", "MP3", "MPEG_LAYER_III", 32_000, 2),
    ],
)
def test_any_format_rate_and_channels_become_16k_mono(
    speech, tmp_path, extension, audio_format, subtype, rate, channels
):
    resampled = soxr.resample(speech, SAMPLE_RATE, rate)
    data = np.stack([resampled] * channels, axis=1) if channels > 1 else resampled
    path = tmp_path / f"clip.{extension}"
    sf.write(path, data, rate, format=audio_format, subtype=subtype)
    loaded = load_audio(path)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert abs(len(loaded) - len(speech)) < 0.06 * SAMPLE_RATE  # lossy codecs add a little padding
    assert abs(duration_seconds(path) - len(speech) / SAMPLE_RATE) < 0.06
    # The content survives: correlation of the envelopes (lossy codecs and 8 kHz change fine detail only).
    n = min(len(loaded), len(speech))
    envelope = lambda x: np.convolve(np.abs(x[:n]), np.ones(400) / 400, mode="valid")  # noqa: E731
    assert np.corrcoef(envelope(loaded), envelope(speech))[0, 1] > 0.8


def test_bytes_decode_like_files(real_clips):
    path = real_clips[0]["path"]
    np.testing.assert_array_equal(load_audio(path.read_bytes()), load_audio(path))


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(DwzError, match="nope.wav: audio file not found"):
        load_audio(tmp_path / "nope.wav")
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(DwzError, match="corrupt.flac: not an audio file soundfile can read"):
        load_audio(corrupt)
