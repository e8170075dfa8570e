"""Audio-level views of a training clip: one recording made into many (speed, noise, babble, room, phone, codec).

`--audio-augment speed,noise,...` makes every cached view (`--augment-views N`) start from an augmented copy of
the clip's audio, drawn from the clip's id and the view number (so a rebuilt cache is the same cache); the
SpecAugment masks of augment.py are then applied to its features as before. View 0 stays the clean recording.
Each named augmentation is applied to a view with probability `APPLY_PROBABILITY`; speed perturbation picks one
of the Kaldi/ESPnet factors 0.9, 1.0, 1.1. The signal processing is done by soxr (resampling), pyroomacoustics
(room impulse responses), scipy (the telephone band) and libsndfile (Opus); this module only draws and chains.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from ..audio import SAMPLE_RATE
from ..errors import DwzError

AUGMENTATIONS = ("speed", "noise", "babble", "reverb", "telephone", "codec")
APPLY_PROBABILITY = 0.5  # each named augmentation (except speed, drawn from its factors) is applied to half the views
SPEED_FACTORS = (0.9, 1.0, 1.1)  # Kaldi's speed perturbation (Ko et al. 2015): tempo and pitch together
NOISE_SNR_DB = (5.0, 25.0)  # white noise at a signal-to-noise ratio drawn from this range
BABBLE_SNR_DB = (5.0, 20.0)  # other clips of the training set, summed, at an SNR drawn from this range
BABBLE_TALKERS = 3
RT60_SECONDS = (0.2, 0.8)  # reverberation time of the simulated room
TELEPHONE_RATE = 8_000  # narrowband telephony: resampled to 8 kHz and band-limited to 300-3400 Hz
TELEPHONE_BAND_HZ = (300.0, 3400.0)
OPUS_COMPRESSION = 1.0  # libsndfile's Opus at its highest compression: about 12 kbit/s for 16-kHz speech
AUGMENT_VERSION = 1  # part of a cached view's key: raise it when an augmentation changes what it computes


@dataclass(frozen=True)
class AudioAugmentation:
    """Which audio augmentations the views draw from (empty: views are SpecAugment only)."""

    names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.names if name not in AUGMENTATIONS]
        if unknown:
            raise DwzError(f"--audio-augment {unknown[0]!r}: choose from {', '.join(AUGMENTATIONS)}")

    def key(self) -> str:
        """What a cached view's name depends on."""
        return f"audio {','.join(sorted(self.names))} v{AUGMENT_VERSION}" if self.names else ""


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Kaldi-style speed perturbation: the samples are read as if recorded at `factor` times the rate."""
    if factor == 1.0:
        return audio
    return soxr.resample(audio, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


def mix_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`audio` plus `noise` (repeated or cut to its length) scaled to `snr_db` below the audio's power."""
    noise = np.resize(noise, len(audio))
    power, noise_power = float(np.mean(audio**2)), float(np.mean(noise**2))
    if power == 0.0 or noise_power == 0.0:
        return audio
    scale = np.sqrt(power / (noise_power * 10 ** (snr_db / 10)))
    return (audio + scale * noise).astype(np.float32)


def reverberate(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip played in a random shoebox room (pyroomacoustics' image source method), RT60 in `RT60_SECONDS`."""
    import pyroomacoustics as pra

    size = rng.uniform([3.0, 3.0, 2.5], [8.0, 6.0, 3.5])
    rt60 = rng.uniform(*RT60_SECONDS)
    absorption, max_order = pra.inverse_sabine(rt60, size)
    room = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 12))
    room.add_source(rng.uniform(0.5, size - 0.5), signal=audio)
    room.add_microphone(rng.uniform(0.5, size - 0.5))
    room.simulate()
    wet = room.mic_array.signals[0][: len(audio)]
    peak = np.max(np.abs(wet)) or 1.0
    return (wet * (np.max(np.abs(audio)) / peak)).astype(np.float32)  # the dry clip's peak level


def telephone(audio: np.ndarray) -> np.ndarray:
    """Narrowband telephony: 8 kHz sampling and a 300-3400 Hz band pass, back at 16 kHz."""
    from scipy.signal import butter, sosfilt

    narrow = soxr.resample(audio, SAMPLE_RATE, TELEPHONE_RATE)
    band = butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    return soxr.resample(sosfilt(band, narrow), TELEPHONE_RATE, SAMPLE_RATE).astype(np.float32)[: len(audio)]


def opus_pass(audio: np.ndarray) -> np.ndarray:
    """Encoded to low-bitrate Opus and decoded again (libsndfile), at the same length."""
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="OGG", subtype="OPUS", compression_level=OPUS_COMPRESSION)
    buffer.seek(0)
    decoded, rate = sf.read(buffer, dtype="float32")
    decoded = soxr.resample(decoded, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else decoded
    return np.resize(decoded, len(audio)).astype(np.float32)


def augment_audio(
    audio: np.ndarray,
    seed: int,
    policy: AudioAugmentation,
    babble_source: Callable[[np.random.Generator], Sequence[np.ndarray]] | None = None,
) -> np.ndarray:
    """One augmented copy of 16-kHz `audio`, the same for the same seed: speed first (it changes the length),
    then room, babble, noise, telephone band and codec, each drawn with `APPLY_PROBABILITY`.
    `babble_source(rng)` returns other clips to mix in (e.g. other training clips)."""
    rng = np.random.default_rng(seed)
    names = set(policy.names)
    if "speed" in names:
        audio = speed_perturb(audio, float(rng.choice(SPEED_FACTORS)))
    steps = {
        "reverb": lambda x: reverberate(x, rng),
        "babble": lambda x: mix_at_snr(x, _babble(babble_source, rng, len(x)), rng.uniform(*BABBLE_SNR_DB)),
        "noise": lambda x: mix_at_snr(x, rng.standard_normal(len(x)).astype(np.float32), rng.uniform(*NOISE_SNR_DB)),
        "telephone": telephone,
        "codec": opus_pass,
    }
    for name, step in steps.items():
        drawn = rng.random() < APPLY_PROBABILITY  # drawn for every step, so one option does not shift another's
        if name in names and drawn:
            audio = step(audio)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _babble(source, rng: np.random.Generator, length: int) -> np.ndarray:
    if source is None:
        raise DwzError("--audio-augment babble needs other clips to mix in")
    talkers = [np.resize(clip, length) for clip in source(rng)]
    return np.sum(talkers, axis=0).astype(np.float32) if talkers else np.zeros(length, np.float32)
