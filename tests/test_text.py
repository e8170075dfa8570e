import pytest

from distil_whisper_zh.metrics import EditCounts, corpus_cer, corpus_cer_numerals, edit_counts
from distil_whisper_zh.text import has_traditional, normalize_for_cer, normalize_numerals, spell_numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("調高溫度，哈根達斯！", "调高温度哈根达斯"),  # Traditional -> Simplified, full-width punctuation gone
        ("ＡＢＣ１２３", "abc123"),  # full-width -> half-width, lower case
        ("你好 ， 世界 。", "你好世界"),  # whitespace and punctuation removed
        ("“引号”《书名》", "引号书名"),
        ("Hello, World", "helloworld"),
        ("", ""),
    ],
)
def test_normalize_for_cer(text, expected):
    assert normalize_for_cer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("设定29度", "设定二十九度"),
        ("10个", "十个"),
        ("105元", "一百零五元"),
        ("1,000元", "一千元"),
        ("3.5公斤", "三点五公斤"),
        ("50%的人", "百分之五十的人"),
        ("2019年", "二零一九年"),  # years are read digit by digit
        ("2019个", "两千零一十九个"),  # but the same digits as an amount are a number, read 两千
        ("赔2000元", "赔两千元"),
        ("220万", "二百二十万"),
        ("他有2个孩子住了2年", "他有两个孩子住了两年"),  # a lone 2 counting things is 两
        ("第2个2月2日", "第二个二月二日"),  # but not an ordinal or a date
        ("1，200人", "一千二百人"),  # a full-width thousands separator too
        ("13812345678", "一三八一二三四五六七八"),  # phone numbers digit by digit
        ("010号", "零一零号"),  # a leading zero means digits, not an amount
        ("没有数字", "没有数字"),
    ],
)
def test_spell_numbers(text, expected):
    assert spell_numbers(text) == expected


def test_spell_numbers_can_leave_punctuation_as_written():
    assert spell_numbers("增长１２．５％，达到３亿：") == "增长百分之十二点五,达到三亿:"
    assert spell_numbers("增长１２．５％，达到３亿：", keep_punctuation=True) == "增长百分之十二点五，达到三亿："


def test_a_number_said_in_groups_is_read_digit_by_digit_when_the_groups_make_a_phone_number():
    """The teacher writes phone numbers in groups (S0150 W0092, W0108, W0095); ranges and short groups stay."""
    assert spell_numbers("133 0780 7050") == "一三三零七八零七零五零"
    assert spell_numbers("137-00972714") == "一三七零零九七二七一四"
    assert spell_numbers("拨打1392 5800457") == "拨打一三九二五八零零四五七"
    assert spell_numbers("010-12345678") == "零一零一二三四五六七八"
    assert spell_numbers("400-820-6666") == "四零零八二零六六六六"
    assert spell_numbers("１３３　０７８０　７０５０", keep_punctuation=True) == "一三三零七八零七零五零"
    # ranges and lists stay numbers of their own
    assert spell_numbers("25-35岁") == "二十五-三十五岁"
    assert spell_numbers("月薪5000-8000元") == "月薪五千-八千元"
    assert spell_numbers("1000-2000米") == "一千-两千米"
    assert spell_numbers("100 200 300 400") == "一百 二百 三百 四百"
    assert spell_numbers("第3 4名") == "第三 四名"


def test_normalize_numerals_unifies_both_sides():
    assert normalize_numerals("设定29度。") == normalize_numerals("设定二十九度")
    assert normalize_numerals("幺三八一二三四五六七八") == normalize_numerals("13812345678") == "一三八一二三四五六七八"
    assert normalize_numerals("两个") == normalize_numerals("2个")


def test_has_traditional():
    assert has_traditional("調高溫度")
    assert not has_traditional("调高温度")
    assert not has_traditional("hello 123")


def test_edit_counts_by_hand():
    assert edit_counts("abcd", "abxd") == EditCounts(substitutions=1, reference_chars=4)
    assert edit_counts("abcd", "abd") == EditCounts(deletions=1, reference_chars=4)
    assert edit_counts("abc", "abcde") == EditCounts(insertions=2, reference_chars=3)
    assert edit_counts("", "ab") == EditCounts(insertions=2)
    assert edit_counts("ab", "") == EditCounts(deletions=2, reference_chars=2)
    assert edit_counts("", "").cer == 0.0


def test_corpus_cer_is_total_edits_over_total_reference_chars():
    references = ["设定二十九度", "调高温度"]  # 6 + 4 characters
    hypotheses = ["设定29多", "調高溫度。"]  # the second is exact after t2s and punctuation removal
    # 设定二十九度 vs 设定29多: 二->2, 十->9, 九->多 substituted and 度 deleted: 4 edits
    assert corpus_cer(references, hypotheses) == pytest.approx(4 / 10)
    # with numbers spelled out, 设定二十九多 vs 设定二十九度: one substitution
    assert corpus_cer_numerals(references, hypotheses) == pytest.approx(1 / 10)


def test_corpus_cer_checks_lengths():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_cer(["a", "b"], ["a"])
