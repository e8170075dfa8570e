import numpy as np
import pytest

from distil_whisper_zh.audio import SAMPLE_RATE
from distil_whisper_zh.data import Utterance
from distil_whisper_zh.decoding import (
    MAX_NEW_TOKENS,
    Attempt,
    DecodingOptions,
    WhisperDecoder,
    batches_by_length,
    capped,
    decode_with_fallback,
    has_digit_stutter,
    has_phrase_repeat,
    has_short_loop,
    is_loop,
    repeated_characters,
    text_compression_ratio,
    timestamp_spans,
    token_cap,
    transcribe_utterances,
)
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.models import load_whisper


@pytest.fixture(scope="module")
def tiny_decoder(tiny_model_dir):
    return WhisperDecoder(load_whisper(str(tiny_model_dir)), DecodingOptions())


def test_token_cap_grows_with_duration_and_is_bounded():
    assert token_cap(1.0) == 25
    assert token_cap(2.0) < token_cap(10.0) < token_cap(29.0)
    assert token_cap(600.0) == token_cap(30.0) <= MAX_NEW_TOKENS


def test_compression_ratio_flags_loops():
    assert text_compression_ratio("补博" * 100) > 2.4
    assert text_compression_ratio("今天天气很好我们去公园散步吧") < 1.5
    assert text_compression_ratio("") == 0.0


# a distilled student's outputs on S0150 test clips (results/cpu-base-zh-6x4), each too short for zlib to see
STUDENT_SHORT_LOOPS = [
    "想听歌曲文文文文文的幸福。",
    "经五成真陈晨晨晨晨晨晨晨晨春",
    "一三九五、一五八三五九三五九三五九三",
    "一三三三零七八零七零七零七零七零五零",
    "一三零七三七三七三七零五三二一",
]
NOT_LOOPS = [
    "对对对对",
    "哈哈哈",
    "措施措施",
    "涨到10000元",
    "第1名第2名第3名",
    "一零零八六",
    "一三三零七八零七零五零",
]


def test_short_loops_are_found_where_the_compression_ratio_misses_them():
    for text in STUDENT_SHORT_LOOPS:
        assert has_short_loop(text), text
        assert text_compression_ratio(text) < 2.4, text
    assert has_short_loop("晨,晨,晨,晨,晨")  # punctuation between the repeats does not hide a loop
    for text in NOT_LOOPS:
        assert not has_short_loop(text), text


# outputs of the one-voice students on S0150 (results/number-rows) that no test above flagged
STUDENT_PHRASE_REPEATS = [
    "但是人会对地方形成更大的微射更大的微射作用",
    "在西方主要发达国家和国家和国际金融组织",
    "三星电子机化在今年下版年下版年",
]
STUDENT_DIGIT_STUTTERS = ["购房者主要集中在25252535三十五到35岁之间", "伊伊-33333、4二九三七三五"]
REAL_NUMBERS = [
    "涨到10000元",
    "1000000人",
    "1,000,000",
    "2008年到2012年",
    "股票代码600600",
    "电话13300780705",
    "第1名第2名第3名",
]


def test_phrases_said_twice_and_digit_stutters_are_loops_too():
    for text in STUDENT_PHRASE_REPEATS:
        assert has_phrase_repeat(text) and is_loop(text) and not has_short_loop(text), text
    for text in STUDENT_DIGIT_STUTTERS:
        assert has_digit_stutter(text) and is_loop(text) and not has_short_loop(text), text
    assert not has_phrase_repeat("是这样的。这样的话")  # a phrase ends at punctuation
    assert has_phrase_repeat("谢谢你谢谢你")  # real speech does it too: kept when every pass says it (below)
    for text in REAL_NUMBERS + NOT_LOOPS:
        assert not is_loop(text), text


def _fake_generate(texts, calls):
    """A `generate` that writes `texts[row, temperature]` (characters as token ids), and the text of a pass' tokens."""
    vocabulary = sorted(set("".join(texts.values())))

    def generate(rows, temperature):
        calls.append((rows, temperature))
        return [Attempt([vocabulary.index(c) for c in texts[row, temperature]]) for row in rows]

    return generate, lambda ids: "".join(vocabulary[i] for i in ids)


def test_fallback_redecodes_short_loops_and_counts_the_retries():
    texts = {  # (row, temperature) -> what a model wrote
        (0, 0.0): "想听歌曲稳稳的幸福",
        (1, 0.0): "想听歌曲文文文文文的幸福",
        (1, 0.2): "想听歌曲文文文文文文文的幸福",
        (1, 0.4): "想听歌曲稳稳的幸福",
    }
    calls = []
    generate, text_of = _fake_generate(texts, calls)
    kept, retries = decode_with_fallback(generate, 2, text_of, DecodingOptions())
    assert calls == [([0, 1], 0.0), ([1], 0.2), ([1], 0.4)]
    assert retries == [0, 2]
    assert [text_of(attempt.tokens) for attempt in kept] == ["想听歌曲稳稳的幸福"] * 2
    kept, retries = decode_with_fallback(generate, 2, text_of, DecodingOptions(fallback=False))
    assert retries == [0, 0] and text_of(kept[1].tokens) == "想听歌曲文文文文文的幸福"


def test_repeated_characters_count_what_repetition_adds():
    assert repeated_characters("刚刚刚刚刚过半") == 4
    assert repeated_characters("更大的微射更大的微射作用") == 5
    assert repeated_characters("一三九二五八零零零零零零零四五七") == 6
    assert repeated_characters("想听歌曲稳稳的幸福") == 1  # a real reduplication counts too: passes are compared
    assert repeated_characters("今天天气很好") == 1 and repeated_characters("设定三十一度") == 0
    assert repeated_characters("之前针对居民派发了消费券" * 5) == 48  # a long phrase looping is the most repetition


def test_a_clip_that_loops_at_every_temperature_keeps_the_pass_that_repeats_least():
    temperatures = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    texts = {(0, t): "谢谢你谢谢你" for t in temperatures}  # real speech, said at every temperature: greedy kept
    texts |= {(1, t): "之前刚刚刚刚刚刚刚针对居民" + "还" * i for i, t in enumerate(temperatures)}
    texts[1, 0.6] = "之前刚刚刚刚刚针对居民派发了"  # the fewest repeated characters
    texts[1, 1.0] = "之前刚刚刚刚刚针对居民派发"  # as few, but later
    generate, text_of = _fake_generate(texts, [])
    kept, retries = decode_with_fallback(generate, 2, text_of, DecodingOptions())
    assert retries == [5, 5]
    assert [text_of(a.tokens) for a in kept] == ["谢谢你谢谢你", "之前刚刚刚刚刚针对居民派发了"]


def test_batches_are_longest_first(tmp_path):
    utterances = [
        Utterance(id=str(i), audio=np.zeros(int(s * SAMPLE_RATE), np.float32))
        for i, s in enumerate([1.0, 3.0, 2.0, 5.0, 4.0])
    ]
    batches = batches_by_length(utterances, batch_size=2)
    assert [[u.id for u in b] for b in batches] == [["3", "4"], ["1", "2"], ["0"]]
    with pytest.raises(DwzError, match="--batch-size must be at least 1"):
        batches_by_length(utterances, 0)


def test_decode_returns_one_transcript_per_input_within_the_cap(tiny_decoder):
    audios = [
        np.random.default_rng(i).normal(0, 0.1, int(s * SAMPLE_RATE)).astype(np.float32)
        for i, s in enumerate([1.0, 2.5])
    ]
    transcripts = tiny_decoder.decode(audios)
    assert len(transcripts) == 2
    for transcript in transcripts:
        assert transcript.num_tokens <= token_cap(2.5)
        assert transcript.hit_token_cap == (transcript.num_tokens >= token_cap(2.5))


def test_long_audio_is_decoded_whole_not_truncated(tiny_decoder):
    long_audio = np.random.default_rng(0).normal(0, 0.1, 65 * SAMPLE_RATE).astype(np.float32)
    features = tiny_decoder.features([long_audio])
    assert features["input_features"].shape[-1] == 6500  # 65 s of 10 ms frames, not 3000
    (transcript,) = tiny_decoder.decode([long_audio])
    assert transcript.segments  # timestamped window-by-window decoding: text comes with segment times
    assert not transcript.hit_token_cap  # the cap is per 30-s window there, never the whole recording's


def test_results_come_back_for_every_utterance(tiny_decoder):
    utterances = [Utterance(id=f"u{i}", audio=np.zeros(SAMPLE_RATE * (i + 1), np.float32)) for i in range(3)]
    seen = {d.utterance.id: d.audio_seconds for d in transcribe_utterances(tiny_decoder, utterances, batch_size=2)}
    assert seen == {"u0": 1.0, "u1": 2.0, "u2": 3.0}


def test_unknown_language_is_refused(tiny_model_dir):
    with pytest.raises(DwzError, match="no such language token"):
        WhisperDecoder(load_whisper(str(tiny_model_dir)), DecodingOptions(language="xx"))
    with pytest.raises(DwzError, match="--num-beams must be at least 1"):
        DecodingOptions(num_beams=0)


def test_timestamp_spans_pair_each_segment_with_its_opening_and_closing_timestamp():
    begin = 100  # <|0.00|>
    ids = [100, 5, 6, 110, 110, 7, 120, 121, 8]  # <|0.00|> a b <|0.20|><|0.20|> c <|0.40|><|0.42|> d (not closed)
    assert list(timestamp_spans(ids, begin)) == [(0, 3), (4, 6), (7, None)]  # d, not closed, runs to the end
    assert list(timestamp_spans(ids[:8], begin)) == [(0, 3), (4, 6)]  # ends on a timestamp: nothing after it
    assert list(timestamp_spans([5, 6], begin)) == []  # no timestamps: no segment


def test_the_token_cap_counts_text_tokens_only():
    eos = 50
    ids = [60, 1, 2, 70, 70, 3, 4, 80, 50]  # timestamps (60, 70, 80) and end-of-text do not count
    assert capped(ids, 3, eos) == [60, 1, 2, 70, 70, 3]
    assert capped(ids, 4, eos) == ids and capped(ids, None, eos) == ids
