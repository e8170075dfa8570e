"""Each dataset layout, built as a tiny fixture tree with real audio, read back."""

import json
import re

import numpy as np
import pytest
import soundfile as sf

from distil_whisper_zh.data import load_dataset_spec, parse_hf_spec
from distil_whisper_zh.errors import DwzError


def _write_wav(source, target, audio_format=None):
    target.parent.mkdir(parents=True, exist_ok=True)
    samples, rate = sf.read(source, dtype="float32")
    sf.write(target, samples, rate, format=audio_format)


def test_jsonl_manifest_keeps_fields_and_resolves_paths(small_manifest, real_clips):
    rows = [json.loads(line) for line in small_manifest.read_text(encoding="utf-8").splitlines()]
    rows[0]["speaker"] = "S0150"
    rows[1]["id"] = "custom-id"
    small_manifest.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    dataset = load_dataset_spec(f"manifest:{small_manifest}")
    assert dataset.name == small_manifest.parent.name
    assert [u.text for u in dataset.utterances] == [c["text"] for c in real_clips[:3]]
    assert dataset.utterances[0].id == real_clips[0]["path"].stem
    assert dataset.utterances[0].fields == {"speaker": "S0150"}
    assert dataset.utterances[1].id == "custom-id"
    assert dataset.utterances[0].load().shape[0] == pytest.approx(real_clips[0]["duration"] * 16000, abs=2)


@pytest.mark.parametrize("delimiter", ["\t", ","])
def test_tsv_and_csv_manifests_and_bare_paths(small_manifest, delimiter):
    rows = [json.loads(line) for line in small_manifest.read_text(encoding="utf-8").splitlines()]
    table = small_manifest.with_suffix(".tsv" if delimiter == "\t" else ".csv")
    lines = [delimiter.join(["audio", "text"])] + [delimiter.join([r["audio"], r["text"]]) for r in rows]
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = load_dataset_spec(str(table))  # a bare path is a manifest
    assert [u.text for u in dataset.utterances] == [r["text"] for r in rows]
    assert dataset.name == table.parent.name  # a file called manifest.* is named after its folder


def test_real_manifest_reads_all(aishell_rows):
    from conftest import AISHELL_S0150

    dataset = load_dataset_spec(f"manifest:{AISHELL_S0150 / 'manifest.jsonl'}")
    assert len(dataset) == len(aishell_rows) == 457
    assert dataset.name == "aishell-s0150"
    assert dataset.utterances[0].seconds() == pytest.approx(2.429)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"manifest.jsonl:2: not valid JSON"),
        ('{"audio": "clips/x.flac"}', r"manifest.jsonl:2: missing field 'text'"),
        ('{"text": "你好"}', r"manifest.jsonl:2: missing field 'audio'"),
        ('{"audio": "clips/none.flac", "text": "你好"}', r"manifest.jsonl:2: audio file .*none.flac not found"),
        ("[1, 2]", r"manifest.jsonl:2: expected a JSON object"),
    ],
)
def test_malformed_manifest_lines_are_skipped_naming_file_and_line(small_manifest, line, message):
    """A bad row is left out with its reason; the good rows are read; a manifest of bad rows only is an error."""
    first = small_manifest.read_text(encoding="utf-8").splitlines()[0]
    small_manifest.write_text(first + "\n" + line + "\n", encoding="utf-8")
    dataset = load_dataset_spec(f"manifest:{small_manifest}")
    assert len(dataset.utterances) == 1
    [skipped] = dataset.skipped
    assert re.search(message, skipped.line()) and skipped.dataset == dataset.name
    small_manifest.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(DwzError, match="no utterances found .*" + message.replace("2", "1")):
        load_dataset_spec(f"manifest:{small_manifest}")


def test_missing_and_non_utf8_manifests(small_manifest, tmp_path):
    with pytest.raises(DwzError, match="manifest not found"):
        load_dataset_spec(f"manifest:{tmp_path / 'none.jsonl'}")
    bad = tmp_path / "gbk.jsonl"
    bad.write_bytes('{"audio": "a.wav", "text": "你好"}'.encode("gbk"))
    with pytest.raises(DwzError, match=r"gbk.jsonl:1: line is not UTF-8 text \(save the manifest as UTF-8"):
        load_dataset_spec(str(bad))
    # One GBK line among UTF-8 ones: that line is skipped, the others are read.
    good = small_manifest.read_bytes()
    small_manifest.write_bytes(good + '{"audio": "a.wav", "text": "你好"}\n'.encode("gbk"))
    dataset = load_dataset_spec(str(small_manifest))
    assert len(dataset.utterances) == 3 and [s.kind for s in dataset.skipped] == ["bad_row"]


def test_aishell_layout(real_clips, tmp_path):
    root = tmp_path / "data_aishell"
    lines = []
    for i, clip in enumerate(real_clips[:3]):
        split = "test" if i < 2 else "train"
        _write_wav(clip["path"], root / "wav" / split / "S0150" / f"{clip['id']}.wav")
        lines.append(f"{clip['id']} {' '.join(clip['text'])}")  # AISHELL puts spaces between words
    _write_wav(real_clips[3]["path"], root / "wav" / "test" / "S0150" / "NO_TRANSCRIPT.wav")
    (root / "transcript").mkdir()
    (root / "transcript" / "aishell_transcript_v0.8.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    test = load_dataset_spec(f"aishell:{root}:test")
    assert test.name == "aishell-test"
    assert [u.text for u in test.utterances] == [c["text"] for c in real_clips[:2]]
    assert test.utterances[0].fields["speaker"] == "S0150"
    assert len(load_dataset_spec(f"aishell:{root}:train")) == 1
    assert len(load_dataset_spec(f"aishell:{root}")) == 2  # default split: test
    with pytest.raises(DwzError, match="no split folder"):
        load_dataset_spec(f"aishell:{root}:dev")


def test_commonvoice_layout_with_mp3(real_clips, tmp_path):
    root = tmp_path / "cv-corpus" / "zh-CN"
    rows = ["client_id\tpath\tsentence\tup_votes"]
    for clip in real_clips[:2]:
        name = f"common_voice_zh-CN_{clip['id']}.mp3"
        _write_wav(clip["path"], root / "clips" / name, audio_format="MP3")
        rows.append(f"abc\t{name}\t{clip['text']}。\t2")
    (root / "dev.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    dataset = load_dataset_spec(f"commonvoice:{root}:dev")
    assert [u.text for u in dataset.utterances] == [c["text"] + "。" for c in real_clips[:2]]
    assert dataset.utterances[0].fields == {"client_id": "abc", "up_votes": "2"}
    assert dataset.utterances[0].load().size > 16000


def test_fleurs_layout(real_clips, tmp_path):
    root = tmp_path / "cmn_hans_cn"
    lines = []
    for i, clip in enumerate(real_clips[:2]):
        name = f"{1000 + i}.wav"
        _write_wav(clip["path"], root / "audio" / "test" / name)
        samples = sf.info(root / "audio" / "test" / name).frames
        lines.append("\t".join([str(i), name, clip["text"] + "。", clip["text"], "p h", str(samples), "FEMALE"]))
    (root / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    dataset = load_dataset_spec(f"fleurs:{root}:test")
    assert dataset.name == "fleurs-test"
    assert dataset.utterances[0].text == real_clips[0]["text"] + "。"  # the raw (punctuated) transcription
    assert dataset.utterances[0].seconds() == pytest.approx(real_clips[0]["duration"], abs=1e-3)
    (root / "test.tsv").write_text("only\ttwo\n", encoding="utf-8")
    with pytest.raises(DwzError, match="test.tsv:1: expected 7 tab-separated columns"):
        load_dataset_spec(f"fleurs:{root}:test")


@pytest.fixture
def hf_audio_dataset(real_clips):
    datasets = pytest.importorskip("datasets")
    records = {
        "id": [c["id"] for c in real_clips[:3]],
        "audio": [{"bytes": c["path"].read_bytes(), "path": c["path"].name} for c in real_clips[:3]],
        "sentence": [c["text"] for c in real_clips[:3]],
    }
    # Stored as the hub stores audio ({bytes, path}); cast, not encoded, so torchcodec is never needed.
    return datasets.Dataset.from_dict(records).cast_column("audio", datasets.Audio())


def test_hf_dataset_saved_to_disk(hf_audio_dataset, real_clips, tmp_path):
    import datasets

    datasets.DatasetDict({"test": hf_audio_dataset}).save_to_disk(str(tmp_path / "saved"))
    dataset = load_dataset_spec(f"hf:{tmp_path / 'saved'}:test")
    assert [u.text for u in dataset.utterances] == [c["text"] for c in real_clips[:3]]
    assert [u.id for u in dataset.utterances] == [c["id"] for c in real_clips[:3]]
    expected, _ = sf.read(real_clips[0]["path"], dtype="float32")
    np.testing.assert_array_equal(dataset.utterances[0].load(), expected)


def test_hf_dataset_folder_of_parquet(hf_audio_dataset, real_clips, tmp_path):
    folder = tmp_path / "repo" / "data"
    folder.mkdir(parents=True)
    hf_audio_dataset.to_parquet(str(folder / "test-00000-of-00001.parquet"))
    dataset = load_dataset_spec(f"hf:{tmp_path / 'repo'}:test")
    assert len(dataset) == 3
    assert dataset.utterances[2].seconds() == pytest.approx(real_clips[2]["duration"], abs=1e-3)
    with pytest.raises(DwzError, match="cannot load split 'train'"):
        load_dataset_spec(f"hf:{tmp_path / 'repo'}:train")


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("google/fleurs:cmn_hans_cn:test", ("google/fleurs", "cmn_hans_cn", "test")),
        ("google/fleurs:cmn_hans_cn", ("google/fleurs", "cmn_hans_cn", "test")),
        ("some/dataset:validation", ("some/dataset", None, "validation")),
        ("some/dataset", ("some/dataset", None, "test")),
        ("google/fleurs:cmn_hans_cn:train[:100]", ("google/fleurs", "cmn_hans_cn", "train[:100]")),
        ("some/dataset:test[:10%]", ("some/dataset", None, "test[:10%]")),
    ],
)
def test_parse_hf_spec(rest, expected):
    assert parse_hf_spec(rest) == expected


def test_unknown_dirs_are_errors(tmp_path):
    with pytest.raises(DwzError, match="is not a directory"):
        load_dataset_spec(f"aishell:{tmp_path / 'none'}:test")
