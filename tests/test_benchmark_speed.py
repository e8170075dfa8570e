"""benchmarks/speed.py in its --quick smoke mode on the tiny model and real clips: the JSON and the table."""

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("faster_whisper")
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_results_and_table(speed, tiny_model_dir, small_manifest, tmp_path):
    out, markdown = tmp_path / "speed.json", tmp_path / "BENCHMARKS.md"
    argv = ["--quick", "--teacher", str(tiny_model_dir), "--student-decoder-layers", "1", "--device", "cpu"]
    speed.main([*argv, "--data", str(small_manifest), "--out", str(out), "--markdown", str(markdown)])
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["device"] == "cpu" and results["quick"] is True
    assert {"torch", "transformers", "ctranslate2"} <= results["versions"].keys()
    rows = results["decoder_speedup"]
    assert [(r["batch_size"], r["new_tokens"]) for r in rows] == [(1, 4), (2, 4)] * 2
    for r in rows:
        assert r["speedup"] == pytest.approx(r["teacher_seconds"] / r["student_seconds"], rel=0.01)
    assert [r["model"] for r in results["runtimes"]] == ["teacher", "student"]
    assert all(r["ctranslate2_int8_seconds"] > 0 and r["clips"] == 2 for r in results["runtimes"])
    spec = results["speculative"]
    assert spec["assistant_shares_encoder"] and spec["identical_texts"] == spec["clips"] == 2
    table = markdown.read_text(encoding="utf-8")
    assert "| 2 | " in table and "quick smoke run" in table
    assert "## GPU (float16, SDPA)" in table and "| not measured |" in table


def test_forced_decoding_writes_exactly_the_asked_tokens(speed):
    import torch

    model = speed.random_whisper(speed.TINY, 1, torch.device("cpu"), torch.float32)
    out = speed.forced_decode(model, torch.randn(3, 1500, 64), tokens=5)
    assert out.shape == (3, 4 + 5)
    assert (out[:, 4:] != speed.EOS).all()


def test_end_to_end_benchmark_rows_and_section(tiny_model_dir, small_manifest, tmp_path):
    spec = importlib.util.spec_from_file_location("end_to_end_benchmark", SCRIPT.with_name("end_to_end.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, markdown = tmp_path / "e2e.json", tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n\nkept\n", encoding="utf-8")
    argv = ["--teacher", str(tiny_model_dir), "--student", str(tiny_model_dir), "--data", str(small_manifest)]
    results = module.main([*argv, "--batch-sizes", "1", "2", "--out", str(out), "--markdown", str(markdown)])
    rows = results["rows"]
    roles = [
        ("teacher", "transformers"),
        ("student", "transformers"),
        ("teacher", "ctranslate2"),
        ("student", "ctranslate2"),
    ]
    assert [(r["role"], r["backend"], r["batch_size"]) for r in rows] == [(*rb, b) for b in (1, 2) for rb in roles]
    assert all(r["utterances"] == 3 and r["model_seconds"] > 0 and r["feature_seconds"] > 0 for r in rows)
    assert [r["speedup"] for r in rows if r["role"] == "teacher" and r["backend"] == "transformers"] == [1.0, 1.0]
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nkept\n") and text.count("| student | CTranslate2 int8 |") == 2
    module.write_markdown(results, markdown)  # regenerating replaces the section, never duplicates it
    assert markdown.read_text(encoding="utf-8") == text
