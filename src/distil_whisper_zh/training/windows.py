"""Training windows of several clips joined, with timestamped labels: how a student learns Whisper's segments.

Every short clip's label is `<|notimestamps|>` text, yet long-form decoding moves from window to window by the
timestamp tokens the model predicts. A share of the training steps (`--timestamp-share`) therefore reads windows
of consecutive clips of the batch joined (up to 30 s), labelled the way Whisper writes timestamps:
`<|startoftranscript|><|zh|><|transcribe|><|0.00|> text1 <|t1|><|t1|> text2 <|t2|> ...<|endoftext|>`,
where each part's start and end are the known joins (Distil-Whisper trains on timestamped labels for the same
reason). Labels made with `dwz pseudo-label --timestamps` carry the teacher's segments inside each clip; their times
are used instead of one segment per clip. Which steps do so is a pure function of (seed, step), so a resumed run
sees the same batches.

Recordings are not clips laid end to end with the pauses a synthesizer leaves: a real speaker's utterances follow
each other with anything from no pause to a second of silence. `tighten` cuts each part's edge silence and puts a
pause drawn from [0, MAX_PAUSE] seconds before it (drawn from the step, so resumable), so the student learns
windows as dense as real speech as well as widely spaced ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..audio import SAMPLE_RATE
from ..decoding import MAX_NEW_TOKENS, TIME_PRECISION, WINDOW_SECONDS

FIRST_TIMESTAMP = "<|0.00|>"
NO_TIMESTAMPS = "<|notimestamps|>"
WINDOW_FILL = WINDOW_SECONDS - 1.0  # joined audio stays a second short of the window: the last end is predictable
MAX_PAUSE = 1.0  # seconds: the silence put before a joined part is drawn from [0, MAX_PAUSE]
EDGE_SILENCE_DB = 40.0  # a part's leading and trailing 20-ms frames this far below its loudest frame are cut
FRAME = SAMPLE_RATE // 50  # 20 ms
EDGE_MARGIN = 2  # frames kept beyond the first and last loud one


@dataclass
class Part:
    """One clip of a window: its samples and its text tokens (no prompt, no end-of-text), and its segments
    (start and end seconds in the clip, text tokens) when the label has segment times."""

    key: str
    audio: np.ndarray
    text_ids: list[int]
    segments: list[tuple[float, float, list[int]]] = field(default_factory=list)

    def pieces(self) -> list[tuple[float, float, list[int]]]:
        """The part's timed segments: its own, else the whole clip as one."""
        return self.segments or [(0.0, len(self.audio) / SAMPLE_RATE, self.text_ids)]


@dataclass
class Window:
    key: str
    audio: np.ndarray
    label_ids: list[int]  # prompt (without <|notimestamps|>), timestamped parts, end-of-text


def pause_rng(seed: int, step: int, keys: list[str]) -> np.random.Generator:
    """The random pauses of one micro-batch of one step: the same when a resumed run reaches it again."""
    digest = hashlib.sha256(f"{seed}:{step}:{'+'.join(keys)}:pauses".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def tighten(parts: list[Part], rng: np.random.Generator) -> list[Part]:
    """The parts with their edge silence cut and a pause of [0, MAX_PAUSE) s of silence before each; every segment
    keeps its words (times shifted, clipped to the speech kept), so the pauses lie between segments."""
    return [_paused(_trimmed(part), float(rng.uniform(0.0, MAX_PAUSE))) for part in parts]


def speech_bounds(audio: np.ndarray) -> tuple[int, int]:
    """First and last sample (exclusive) of the speech: from the first to the last 20-ms frame within
    EDGE_SILENCE_DB of the loudest one, with EDGE_MARGIN frames more on each side (soft onsets and endings)."""
    frames = len(audio) // FRAME
    if frames == 0:
        return 0, len(audio)
    power = np.mean(audio[: frames * FRAME].reshape(frames, FRAME).astype(np.float64) ** 2, axis=1)
    if power.max() == 0.0:
        return 0, len(audio)
    loud = np.flatnonzero(power >= power.max() * 10 ** (-EDGE_SILENCE_DB / 10))
    first, last = max(int(loud[0]) - EDGE_MARGIN, 0), int(loud[-1]) + 1 + EDGE_MARGIN
    return first * FRAME, min(len(audio), last * FRAME)


def _trimmed(part: Part) -> Part:
    start, end = speech_bounds(part.audio)
    offset, length = start / SAMPLE_RATE, (end - start) / SAMPLE_RATE
    segments = [
        (min(max(a - offset, 0.0), length), min(max(b - offset, 0.0), length), ids) for a, b, ids in part.pieces()
    ]
    return Part(part.key, part.audio[start:end], part.text_ids, segments)


def _paused(part: Part, pause: float) -> Part:
    silence = np.zeros(round(pause * SAMPLE_RATE), np.float32)
    shift = len(silence) / SAMPLE_RATE
    segments = [(a + shift, b + shift, ids) for a, b, ids in part.pieces()]
    return Part(part.key, np.concatenate([silence, part.audio]), part.text_ids, segments)


def timestamped_step(seed: int, step: int, share: float) -> bool:
    """Whether optimizer step `step` trains on joined, timestamped windows (a share `share` of the steps)."""
    if share <= 0:
        return False
    draw = int.from_bytes(hashlib.sha256(f"{seed}:{step}:timestamps".encode()).digest()[:8], "big") / 2**64
    return draw < share


def join_parts(parts: list[Part], prompt_ids: list[int], timestamp_begin: int, eot_id: int) -> list[Window]:
    """Consecutive parts joined into windows of at most WINDOW_FILL seconds and Whisper's token budget; a part
    that fits in no window with others stands alone (still timestamped)."""
    windows, group = [], []
    for part in parts:
        if group and not _fits([*group, part]):
            windows.append(_window(group, prompt_ids, timestamp_begin, eot_id))
            group = []
        group.append(part)
    if group:
        windows.append(_window(group, prompt_ids, timestamp_begin, eot_id))
    return windows


def _fits(parts: list[Part]) -> bool:
    seconds = sum(len(p.audio) for p in parts) / SAMPLE_RATE
    tokens = sum(len(ids) + 2 for p in parts for _, _, ids in p.pieces()) + 1
    return seconds <= WINDOW_FILL and tokens <= MAX_NEW_TOKENS


def _window(parts: list[Part], prompt_ids: list[int], timestamp_begin: int, eot_id: int) -> Window:
    ids, offset = list(prompt_ids), 0.0
    for part in parts:
        for start, end, text_ids in part.pieces():
            ids += [
                timestamp_token(offset + start, timestamp_begin),
                *text_ids,
                timestamp_token(offset + end, timestamp_begin),
            ]
        offset += len(part.audio) / SAMPLE_RATE
    audio = np.concatenate([p.audio for p in parts]).astype(np.float32)
    return Window("+".join(p.key for p in parts), audio, [*ids, eot_id])


def timestamp_token(seconds: float, timestamp_begin: int) -> int:
    """The id of Whisper's timestamp token nearest to `seconds` (20-ms steps from <|0.00|>, at most 30.00)."""
    steps = min(round(seconds / TIME_PRECISION), round(WINDOW_SECONDS / TIME_PRECISION))
    return timestamp_begin + steps
