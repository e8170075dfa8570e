import pytest

from distil_whisper_zh.punctuation import MarkCounts, punctuation_counts, split_marks, transfer_punctuation


@pytest.mark.parametrize(
    ("reference", "teacher", "expected"),
    [
        # identical characters: marks copied, ASCII marks made full-width, Traditional aligned to Simplified
        ("今天天气很好我们去公园散步吧", "今天天氣很好,我們去公園散步吧。", "今天天气很好，我们去公园散步吧。"),
        # substitutions around a mark: the mark stays after the aligned character
        ("今天天气很好我们去公园", "今天天汽很号，我门去公园。", "今天天气很好，我们去公园。"),
        # the teacher dropped characters (deletions): marks still land on the right reference characters
        ("北京上海广州深圳", "北京、上海、深圳。", "北京、上海、广州深圳。"),
        # the teacher inserted characters before a mark: the mark follows the preceding reference character
        ("你好世界", "您好啊，世界，真的。", "你好，世界。"),
        # numbers written differently: characters come from the reference, the final mark is kept
        ("设定二十九度", "设定29度。", "设定二十九度。"),
        # nothing to transfer
        ("我不知道", "我不知道", "我不知道"),
        ("", "你好。", ""),
        ("你好", "", "你好"),
        # a reference that already has punctuation is left alone
        ("你好，世界。", "你好世界", "你好，世界。"),
    ],
)
def test_transfer_punctuation(reference, teacher, expected):
    assert transfer_punctuation(reference, teacher) == expected


def test_split_marks():
    parsed = split_marks("“你好，”世界！")
    assert parsed.chars == list("你好世界")
    assert parsed.marks_after == ["", "，”", "", "！"]
    assert parsed.leading == "“"


def test_punctuation_f1():
    assert punctuation_counts("你好，世界。", "你好，世界。") == MarkCounts(2, 2, 2)
    assert punctuation_counts("你好，世界。", "你好,世界!").f1 == pytest.approx(0.5)  # ，matched, ！≠。
    assert punctuation_counts("你好，世界。", "你好世界").f1 == 0.0
    assert punctuation_counts("你好，世界。", "妳好，世界。") == MarkCounts(2, 2, 2)  # script does not matter
    assert MarkCounts().f1 == 1.0
