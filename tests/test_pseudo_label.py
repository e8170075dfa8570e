import json

import pytest

from distil_whisper_zh.cli import main
from distil_whisper_zh.decoding import DecodingOptions
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.pseudo_label import PseudoLabelOptions, load_labels, run_pseudo_label
from distil_whisper_zh.runtime import RuntimeOptions

FAST = DecodingOptions(fallback=False)


def _options(teacher, manifest, out, **kwargs):
    return PseudoLabelOptions(
        teacher=str(teacher),
        data=[str(manifest)],
        out=str(out),
        runtime=RuntimeOptions(batch_size=2),
        decoding=FAST,
        **kwargs,
    )


def _rows(folder):
    return [json.loads(line) for line in (folder / "labels.jsonl").read_text("utf-8").splitlines()]


def test_labels_rows_and_summary(tiny_model_dir, small_manifest, tmp_path):
    summary = run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))
    rows = _rows(tmp_path / "labels")
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 3
    for row in rows:
        assert {"id", "audio", "reference", "text", "cer", "kept"} <= row.keys()
        assert row["kept"] and row["cer"] > 0  # a random teacher disagrees with every reference
    assert summary.utterances == summary.kept == 3 and summary.dropped == 0
    assert not list((tmp_path / "labels").glob("labels.part-*"))  # merged and removed


def test_max_cer_filter_drops_disagreeing_clips(tiny_model_dir, small_manifest, tmp_path):
    summary = run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels", max_cer=0.5))
    assert summary.kept == 0 and summary.dropped == 3
    assert all(not r["kept"] for r in _rows(tmp_path / "labels"))
    with pytest.raises(DwzError, match="no kept labels"):
        load_labels(tmp_path / "labels")


def test_killed_run_continues_without_duplicates_or_losses(tiny_model_dir, small_manifest, tmp_path):
    complete = tmp_path / "complete"
    run_pseudo_label(_options(tiny_model_dir, small_manifest, complete))
    expected = _rows(complete)
    # A run killed after one row and half of the next: that is what its part file looks like.
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "run.json").write_bytes((complete / "run.json").read_bytes())  # written before the first label
    first = json.dumps(expected[1], ensure_ascii=False)
    (killed / "labels.part-0.jsonl").write_text(first + "\n" + first[: len(first) // 2], encoding="utf-8")
    run_pseudo_label(_options(tiny_model_dir, small_manifest, killed))
    assert _rows(killed) == expected


def test_unlabelled_audio_is_labelled_without_filter(tiny_model_dir, real_clips, tmp_path):
    datasets = pytest.importorskip("datasets")
    records = {"audio": [{"bytes": c["path"].read_bytes(), "path": c["path"].name} for c in real_clips[:2]]}
    dataset = datasets.Dataset.from_dict(records).cast_column("audio", datasets.Audio())
    dataset.save_to_disk(str(tmp_path / "unlabelled"))
    options = PseudoLabelOptions(
        teacher=str(tiny_model_dir),
        data=[f"hf:{tmp_path / 'unlabelled'}"],
        out=str(tmp_path / "labels"),
        max_cer=0.1,
        decoding=FAST,
    )
    summary = run_pseudo_label(options)
    assert summary.kept == 2 and summary.with_reference == 0 and summary.teacher_cer is None
    rows = _rows(tmp_path / "labels")
    assert all(r["reference"] is None and r["cer"] is None for r in rows)
    assert all((tmp_path / "labels" / "audio").rglob("*.flac"))  # in-memory audio was written out for training
    assert load_labels(tmp_path / "labels").utterances[0].load().size > 16000


def test_cli_prints_the_summary(tiny_model_dir, small_manifest, tmp_path, capsys):
    code = main(
        [
            "pseudo-label",
            "--teacher",
            str(tiny_model_dir),
            "--data",
            str(small_manifest),
            "--out",
            str(tmp_path / "l"),
            "--max-cer",
            "100",
            "--no-fallback",
            "--batch-size",
            "3",
        ]
    )
    assert code == 0
    assert "labelled 3 clips, kept 3, dropped 0" in capsys.readouterr().out
    assert (
        main(
            [
                "pseudo-label",
                "--teacher",
                str(tiny_model_dir),
                "--data",
                str(small_manifest),
                "--out",
                str(tmp_path / "l"),
                "--max-cer",
                "-1",
            ]
        )
        == 2
    )


def test_punctuation_transfer_labels_keep_reference_characters(tiny_model_dir, small_manifest, tmp_path):
    run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels", punctuation="transfer"))
    for row in _rows(tmp_path / "labels"):
        kept_characters = "".join(c for c in row["text"] if not __import__("unicodedata").category(c).startswith("P"))
        assert kept_characters == row["reference"]


def test_ctranslate2_backend_needs_a_ctranslate2_teacher(tiny_model_dir, small_manifest, tmp_path, capsys):
    argv = ["pseudo-label", "--teacher", str(tiny_model_dir), "--data", str(small_manifest), "--out", str(tmp_path)]
    assert main([*argv, "--backend", "ctranslate2"]) == 2
    assert "is not a CTranslate2 dir (no model.bin); export it first" in capsys.readouterr().err
    assert main([*argv, "--compute-type", "int8", "--no-fallback"]) == 2
    assert "--compute-type is a CTranslate2 option" in capsys.readouterr().err
    assert not (tmp_path / "labels.jsonl").exists()


def test_a_rerun_with_other_options_is_refused_not_mixed(tiny_model_dir, small_manifest, tmp_path):
    run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))
    with pytest.raises(DwzError, match=r"labels made by another teacher or other options \(numerals 'keep' -> 'spell'"):
        run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels", numerals="spell"))
    rows = _rows(tmp_path / "labels")
    assert len(rows) == 3 and json.loads((tmp_path / "labels" / "run.json").read_text())["numerals"] == "keep"


def test_a_clip_made_again_is_labelled_again(tiny_model_dir, small_manifest, tmp_path):
    run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))
    before = {r["id"]: r for r in _rows(tmp_path / "labels")}
    clips = sorted((small_manifest.parent / "clips").iterdir())
    clips[0].write_bytes(clips[1].read_bytes())  # same file name and id, other audio
    run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))
    after = {r["id"]: r for r in _rows(tmp_path / "labels")}
    changed = [i for i in after if after[i]["audio_stamp"] != before[i]["audio_stamp"]]
    assert len(after) == 3 and len(changed) == 1
    (remade,) = changed
    twin = next(i for i in after if i != remade and after[i]["audio"].endswith(clips[1].name))
    assert after[remade]["teacher_raw"] == after[twin]["teacher_raw"]  # labelled from the new audio


def test_labels_of_the_previous_version_are_still_added_to():
    from distil_whisper_zh.pseudo_label import upgraded_labels_run

    old = {"teacher": "t", "decoding": {"language": "zh", "temperature_fallback": True, "simplified": True}}
    decoding = {"language": "zh", "fallback": True, "keep_script": False}
    decoding |= {"long_form": "sequential", "chunk_seconds": 15}  # options it predates, at their defaults
    assert upgraded_labels_run(old) == {"teacher": "t", "timestamps": False, "fallback_rule": 1, "decoding": decoding}


def test_labels_a_fallback_of_another_rule_made_are_not_added_to(tiny_model_dir, small_manifest, tmp_path):
    run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))
    record = tmp_path / "labels" / "run.json"
    saved = json.loads(record.read_text())
    record.write_text(json.dumps({k: v for k, v in saved.items() if k != "fallback_rule"}))  # made before the rule
    with pytest.raises(DwzError, match="fallback_rule 1 -> 2"):
        run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))


def test_timestamps_keep_segments_whose_text_is_the_label(tiny_model_dir, small_manifest, tmp_path):
    """--timestamps: every row has `segments`, pieces of its own label text in order inside the clip; the option is
    part of the run's identity (labels without segments are not added to)."""
    run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels", timestamps=True))
    assert any(row["segments"] for row in _rows(tmp_path / "labels"))
    for row in _rows(tmp_path / "labels"):
        segments = row["segments"]
        assert "".join(text for _, _, text in segments) == (row["text"] if segments else "")
        times = [t for start, end, _ in segments for t in (start, end)]
        assert times == sorted(times) and all(0 <= t <= row["duration"] for t in times)
    with pytest.raises(DwzError, match="timestamps True -> False"):
        run_pseudo_label(_options(tiny_model_dir, small_manifest, tmp_path / "labels"))
