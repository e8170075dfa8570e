import json

from distil_whisper_zh.cli import main
from distil_whisper_zh.split import in_dev


def test_split_is_deterministic_and_complete(aishell_rows, tmp_path, capsys):
    from conftest import AISHELL_S0150

    spec = f"manifest:{AISHELL_S0150 / 'manifest.jsonl'}"
    assert main(["split", spec, "--out", str(tmp_path / "a"), "--dev-fraction", "0.25"]) == 0
    assert main(["split", spec, "--out", str(tmp_path / "b"), "--dev-fraction", "0.25"]) == 0
    assert (tmp_path / "a" / "dev.jsonl").read_text() == (tmp_path / "b" / "dev.jsonl").read_text()
    train = [json.loads(line) for line in (tmp_path / "a" / "train.jsonl").read_text("utf-8").splitlines()]
    dev = [json.loads(line) for line in (tmp_path / "a" / "dev.jsonl").read_text("utf-8").splitlines()]
    assert len(train) + len(dev) == len(aishell_rows)
    assert not {r["id"] for r in train} & {r["id"] for r in dev}
    assert 0.15 < len(dev) / len(aishell_rows) < 0.35
    assert dev[0]["audio"].startswith("/") and dev[0]["speaker"] == "S0150"  # absolute paths, fields kept
    assert "train: " in capsys.readouterr().out


def test_membership_depends_on_the_id_only():
    assert in_dev("BAC009S0150W0001", 0.2, "dwz") == in_dev("BAC009S0150W0001", 0.2, "dwz")
    share = sum(in_dev(f"id{i}", 0.2, "dwz") for i in range(2000)) / 2000
    assert 0.17 < share < 0.23
    assert main(["split", "x.jsonl", "--out", "o", "--dev-fraction", "1.5"]) == 2


def test_bad_rows_are_listed_in_skipped_jsonl(tmp_path, capsys):
    from conftest import AISHELL_S0150

    rows = [json.loads(line) for line in (AISHELL_S0150 / "manifest.jsonl").read_text("utf-8").splitlines()[:4]]
    for row in rows:
        row["audio"] = str(AISHELL_S0150 / row["audio"])
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + [
        json.dumps({"id": "gone", "audio": str(tmp_path / "gone.wav"), "text": "没有"}),
        json.dumps({"id": "notext", "audio": rows[0]["audio"]}),
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["split", str(manifest), "--out", str(tmp_path / "s")]) == 0
    skipped = [json.loads(line) for line in (tmp_path / "s" / "skipped.jsonl").read_text("utf-8").splitlines()]
    assert len(skipped) == 2 and any("gone.wav" in (s["path"] or "") for s in skipped)
    assert json.loads((tmp_path / "s" / "split.json").read_text())["skipped"] == 2
    assert "skipped 2 bad input(s)" in capsys.readouterr().err
