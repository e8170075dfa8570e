"""Property-based checks of the normaliser and CER (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from distil_whisper_zh.metrics import corpus_cer, edit_counts
from distil_whisper_zh.text import normalize_for_cer, to_simplified

CHINESE = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=20)
MARKS = st.text(alphabet="，。！？、；：“”《》,.!? ", max_size=5)


@settings(max_examples=200, deadline=None)
@given(CHINESE, CHINESE)
def test_cer_is_never_negative_and_zero_only_for_equal_text(reference, hypothesis):
    cer = corpus_cer([reference], [hypothesis])
    assert cer >= 0
    assert (cer == 0) == (normalize_for_cer(reference) == normalize_for_cer(hypothesis))


@settings(max_examples=200, deadline=None)
@given(CHINESE)
def test_identical_text_scores_zero(text):
    assert corpus_cer([text], [text]) == 0


@settings(max_examples=200, deadline=None)
@given(CHINESE, MARKS, MARKS)
def test_cer_ignores_punctuation_and_whitespace(text, before, after):
    middle = len(text) // 2
    punctuated = before + text[:middle] + after + text[middle:]
    assert corpus_cer([text], [punctuated]) == 0


@settings(max_examples=200, deadline=None)
@given(CHINESE)
def test_cer_ignores_the_script(text):
    simplified = to_simplified(text)
    assert corpus_cer([simplified], [text]) == 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=15), st.text(max_size=15))
def test_edit_counts_are_bounded(reference, hypothesis):
    counts = edit_counts(reference, hypothesis)
    assert counts.errors <= max(len(reference), len(hypothesis))
    assert counts.reference_chars == len(reference)


def test_simplified_conversion_is_idempotent_where_opencc_is_not():
    # OpenCC's t2s maps 薴 to 苧 and 苧 to 苎 (found by the property above): one conversion must be the last
    assert to_simplified("薴") == to_simplified(to_simplified("薴")) == "苎"
    assert corpus_cer([to_simplified("薴")], ["薴"]) == 0
