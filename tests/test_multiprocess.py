"""The scale-out path: two processes (gloo on CPU, as `accelerate launch` runs them on GPUs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distil_whisper_zh.decoding import DecodingOptions
from distil_whisper_zh.pseudo_label import PseudoLabelOptions, run_pseudo_label
from distil_whisper_zh.runtime import RuntimeOptions
from distil_whisper_zh.student import CreateStudentOptions, create_student

pytestmark = pytest.mark.slow


def test_two_processes_shard_labels_and_keep_weights_identical(tiny_model_dir, small_manifest, tmp_path):
    student = tmp_path / "student-init"
    create_student(CreateStudentOptions(teacher=str(tiny_model_dir), out=str(student), decoder_layers=1))
    out = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DWZ_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        str(Path(__file__).with_name("multiprocess_job.py")),
        str(tiny_model_dir),
        str(student),
        str(small_manifest),
        str(out),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    single = tmp_path / "one"
    run_pseudo_label(
        PseudoLabelOptions(
            teacher=str(tiny_model_dir),
            data=[str(small_manifest)],
            out=str(single),
            runtime=RuntimeOptions(batch_size=2),
            decoding=DecodingOptions(fallback=False),
        )
    )
    sharded = (out / "labels" / "labels.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(r)["text"] for r in sharded] == [
        json.loads(r)["text"] for r in (single / "labels.jsonl").read_text("utf-8").splitlines()
    ]
    fingerprints = {(out / f"weights-rank{rank}.sha256").read_text() for rank in (0, 1)}
    assert len(fingerprints) == 1  # DDP kept both replicas identical
    rows = [json.loads(line) for line in (out / "student" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
