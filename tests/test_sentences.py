import pytest

from distil_whisper_zh.cli import main
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.sentences import (
    DIGIT_STRINGS,
    SentencesOptions,
    digit_strings,
    draw_sentences,
    is_tagged,
    readable_sentences,
    sentence_id,
    untag,
)
from distil_whisper_zh.text import DIGIT_NAMES, normalize_for_cer

OPTIONS = SentencesOptions(files=["unused.txt"], out="unused.tsv", min_chars=4, max_chars=12)


def test_untag_joins_words_and_drops_compound_brackets():
    line = "迈向/v  充满/v  希望/n  [中央/n 人民/n 广播/vn 电台/n]nt  。/w"
    assert untag(line) == "迈向充满希望中央人民广播电台。"
    assert is_tagged([line, "", "江/nr  泽民/nr"])
    assert not is_tagged(["这本书很好看/推荐给大家 不错"])
    assert not is_tagged(["", "  "])


def test_only_sentences_a_voice_reads_as_written_are_kept():
    line = "价格便宜，配置过得去。电池用了3年！我在Apple店买的。书名叫《活着》。这本书很好看吧？"
    assert list(readable_sentences(line, OPTIONS)) == ["价格便宜，配置过得去", "这本书很好看吧"]


def test_long_sentences_are_cut_at_commas_and_traditional_becomes_simplified():
    line = "今年的經濟形勢總體穩定，消费持续回升，出口增长较快，就业保持稳定。"
    pieces = list(readable_sentences(line, OPTIONS))
    assert pieces == ["今年的经济形势总体稳定", "消费持续回升，出口增长较快", "就业保持稳定"]
    too_long_clause = "这是一个没有任何停顿而且长得超过了上限的句子。"
    assert list(readable_sentences(too_long_clause, OPTIONS)) == []


def test_numbers_spell_keeps_sentences_with_numbers_written_as_they_are_read():
    spell = SentencesOptions(files=["unused.txt"], out="unused.tsv", min_chars=4, max_chars=24, numbers="spell")
    tagged = "１２月/t  ３１日/t  ，/w  总书记/n  发表/v  １９９８年/t  新年/t  讲话/n  。/w"
    assert list(readable_sentences(tagged, spell, tagged=True)) == ["十二月三十一日，总书记发表一九九八年新年讲话"]
    line = "增长了１２．５％，达到３．５亿元。电话13307807050！比分３：２。共有200多人，1998-1999年"
    spelled = ["增长了百分之十二点五，达到三点五亿元", "电话一三三零七八零七零五零"]
    assert list(readable_sentences(line, spell)) == spelled  # 3:2 and 1998-1999 have more than one reading
    assert list(readable_sentences(line, OPTIONS)) == []  # the default leaves numbers out
    assert SentencesOptions(files=["f"], out="o").numbers == "drop"


def test_numbers_only_keeps_just_the_pieces_whose_numbers_were_spelled():
    only = SentencesOptions(files=["unused.txt"], out="unused.tsv", min_chars=4, max_chars=12, numbers="only")
    line = "今年的经济形势总体稳定，出口增长了１２．５％。这本书很好看吧？共有200多人参加了会议。比分３：２。"
    assert list(readable_sentences(line, only)) == ["出口增长了百分之十二点五", "共有二百多人参加了会议"]


def test_a_semicolon_or_space_between_digits_does_not_end_a_sentence():
    spell = SentencesOptions(files=["unused.txt"], out="unused.tsv", min_chars=4, max_chars=24, numbers="spell")
    # 16;9 is a ratio, not two sentences ("九屏幕好新潮" would read a number that is not there): left out as 3:2 is
    line = "比较难找，16;9屏幕好新潮。电话133 0780 7050！"
    assert list(readable_sentences(line, spell)) == ["电话一三三零七八零七零五零"]
    assert list(readable_sentences("共有1999人。2000人来了；3000人走了", spell)) == [
        "共有一千九百九十九人",
        "两千人来了",
        "三千人走了",
    ]


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_draws_evenly_from_files_deterministically_and_without_excluded_texts(tmp_path, aishell_rows):
    from conftest import AISHELL_S0150

    news = _write(tmp_path / "news.txt", [f"新闻{'一二三四五六七八九'[i]}号报道今天的天气" for i in range(9)])
    excluded_text = aishell_rows[0]["text"]
    reviews = _write(tmp_path / "reviews.txt", ["这个手机很好用。", "电池不太耐用。", f"{excluded_text}。"])
    spec = f"manifest:{AISHELL_S0150 / 'manifest.jsonl'}"
    options = SentencesOptions(files=[news, reviews], out="x", count=6, min_chars=4, max_chars=40, exclude=[spec])
    drawn = draw_sentences(options)
    assert len(drawn) == 6 and excluded_text not in drawn
    assert {"这个手机很好用", "电池不太耐用"} <= set(drawn)  # the small file gives all it has
    assert sum(s.startswith("新闻") for s in drawn) == 4
    assert draw_sentences(options) == drawn
    more = draw_sentences(
        SentencesOptions(files=[news, reviews], out="x", count=8, min_chars=4, max_chars=40, exclude=[spec])
    )
    assert set(drawn) < set(more)  # a larger count only adds sentences


def test_cli_writes_tts_input_lines(tmp_path, capsys):
    source = _write(tmp_path / "corpus.txt", ["今天天气很好，我们去公园散步吧。", "明天可能会下雨"])
    out = tmp_path / "out" / "sentences.tsv"
    assert main(["sentences", source, "--out", str(out), "--count", "5", "--min-chars", "6"]) == 0
    lines = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(text for _, text in lines) == ["今天天气很好，我们去公园散步吧", "明天可能会下雨"]
    assert all(key == sentence_id(text) and key.startswith("snt-") for key, text in lines)
    assert "2 sentences -> " in capsys.readouterr().out


def test_bad_inputs_name_the_file(tmp_path, capsys):
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DwzError, match=r"latin1\.txt: not UTF-8 text"):
        draw_sentences(SentencesOptions(files=[str(binary)], out="x"))
    english = _write(tmp_path / "english.txt", ["no Chinese here at all"])
    with pytest.raises(DwzError, match=r"english\.txt: no sentence of 8-24 readable characters"):
        draw_sentences(SentencesOptions(files=[english], out="x"))
    assert main(["sentences", str(tmp_path / "gone.txt"), "--out", str(tmp_path / "o.tsv")]) == 2
    assert "gone.txt: no such text file" in capsys.readouterr().err
    with pytest.raises(DwzError, match="--min-chars"):
        SentencesOptions(files=[english], out="x", min_chars=30)


def test_digit_strings_are_numbers_read_digit_by_digit_drawn_from_the_seed(tmp_path, capsys):
    drawn = digit_strings(40, "dwz")
    assert drawn == digit_strings(40, "dwz") != digit_strings(40, "other") and len(set(drawn)) == 40
    phrases = {phrase for _, _, kind_phrases in DIGIT_STRINGS for phrase in kind_phrases}
    numbers = [text.removeprefix(next((p for p in phrases if text.startswith(p)), "")) for text in drawn]
    assert all(set(number) <= set(DIGIT_NAMES.values()) for number in numbers)
    assert sorted({len(n) for n in numbers}) == [5, 6, 11]  # service, postcode; mobile and landline
    assert sum(n != t for n, t in zip(numbers, drawn, strict=True)) in range(10, 31)  # about half after a phrase
    mobiles = [n for n in numbers if len(n) == 11 and n[0] == "一"]
    assert mobiles and all(n[1] in "三四五六七八九" for n in mobiles)
    assert drawn[0] not in digit_strings(40, "dwz", excluded={normalize_for_cer(drawn[0])})
    out = tmp_path / "digits.tsv"
    assert main(["sentences", "--out", str(out), "--count", "0", "--digit-strings", "7"]) == 0  # no text file needed
    assert [line.split("\t")[1] for line in out.read_text(encoding="utf-8").splitlines()] == digit_strings(7, "dwz")
    source = _write(tmp_path / "corpus.txt", ["今天天气很好，我们去公园散步吧。"])
    assert main(["sentences", source, "--out", str(out), "--count", "1", "--digit-strings", "2"]) == 0
    lines = [line.split("\t")[1] for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == ["今天天气很好，我们去公园散步吧", *digit_strings(2, "dwz")]  # the sentences, then the numbers
    assert main(["sentences", source, "--out", str(out), "--count", "0", "--digit-strings", "2"]) == 0
    assert out.read_text(encoding="utf-8").count("\n") == 2
    with pytest.raises(DwzError, match="--digit-strings 10001: at most 10000"):
        digit_strings(10_001, "dwz")
    assert main(["sentences", "--out", str(out), "--count", "0"]) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert main(["sentences", "--out", str(out)]) == 2
    assert "give at least one text file (or --count 0 with --digit-strings)" in capsys.readouterr().err
