"""The `dwz` commands end to end on the tiny model and real clips; bad arguments give one-line errors."""

import ast
import dataclasses
import inspect
import itertools
import json
import re
import subprocess
import sys
import textwrap
import typing
from dataclasses import MISSING

import pytest

from distil_whisper_zh.cli import COMMANDS, main
from distil_whisper_zh.metrics import corpus_cer, corpus_cer_numerals
from distil_whisper_zh.options import cli_flags, from_mapping, option_fields, parse_args
from distil_whisper_zh.text import normalize_numerals


def test_count_params_text_and_json(tiny_model_dir, capsys):
    assert main(["count-params", str(tiny_model_dir)]) == 0
    name, count = capsys.readouterr().out.strip().split("\t")
    assert name == str(tiny_model_dir) and int(count) > 3_000_000
    assert main(["count-params", "--json", str(tiny_model_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == {str(tiny_model_dir): int(count)}


def test_transcribe_files_and_folders(tiny_model_dir, small_manifest, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "transcribe",
            "--model",
            str(tiny_model_dir),
            str(small_manifest.parent / "clips"),
            "--format",
            "json",
            "--output",
            str(out),
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert [r["path"] for r in rows] == sorted(r["path"] for r in rows)  # input order, not batch order
    assert all(r["audio_seconds"] > 1.0 and isinstance(r["text"], str) for r in rows)
    single = sorted((small_manifest.parent / "clips").iterdir())[0]
    assert main(["transcribe", "--model", str(tiny_model_dir), str(single)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_evaluate_writes_the_report_of_product_md(tiny_model_dir, small_manifest, tmp_path):
    report = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--model",
            str(tiny_model_dir),
            "--model",
            str(tiny_model_dir),
            "--data",
            f"manifest:{small_manifest}",
            "--report",
            str(report),
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert {"results", "normalization", "device", "batch_size"} <= data.keys()
    assert data["batch_size"] == 2 and data["device"].startswith("cpu")
    assert len(data["results"]) == 2
    first, second = data["results"]
    for key in ("model", "dataset", "cer", "utterances", "audio_seconds", "wall_seconds", "rtf", "params", "speedup"):
        assert key in first
    assert first["utterances"] == 3 and first["speedup"] == 1.0
    assert 0.0 <= first["traditional_share"] <= 1.0
    assert first["punctuation_f1"] is None  # AISHELL references carry no punctuation
    assert second["speedup"] == pytest.approx(first["wall_seconds"] / second["wall_seconds"], rel=1e-2)
    assert first["rtf"] == pytest.approx(first["wall_seconds"] / first["audio_seconds"], rel=1e-3)
    hypotheses = [json.loads(line) for line in (report / first["hypotheses_file"]).read_text("utf-8").splitlines()]
    assert {"id", "reference", "hypothesis", "cer"} <= hypotheses[0].keys()
    assert sum(h["retries"] for h in hypotheses) == first["retries"]  # each clip's fallback passes, as counted
    rescored = corpus_cer([h["reference"] for h in hypotheses], [h["hypothesis"] for h in hypotheses])
    assert first["cer"] == pytest.approx(rescored)
    edits = first["edits_numerals"]
    rescored_numerals = corpus_cer_numerals([h["reference"] for h in hypotheses], [h["hypothesis"] for h in hypotheses])
    assert edits["reference_chars"] == sum(len(normalize_numerals(h["reference"])) for h in hypotheses)
    errors = edits["substitutions"] + edits["deletions"] + edits["insertions"]
    assert errors / edits["reference_chars"] == pytest.approx(first["cer_numerals"]) == pytest.approx(rescored_numerals)
    table = [
        line.split(" | ") for line in (report / "report.md").read_text("utf-8").splitlines() if line.startswith("| ")
    ]
    header, first_row = table[0], table[1]
    assert len(header) == len(first_row)  # every column under its own heading
    assert (
        first_row[header.index("S / D / I")]
        == f"{edits['substitutions']} / {edits['deletions']} / {edits['insertions']}"
    )
    assert first_row[header.index("RTF")] == f"{first['rtf']:.4f}"
    assert (report / "report.md").read_text("utf-8").count("| manifest") == 0  # dataset named after its folder
    assert (report / "cer_vs_speed.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["count-params", "./no-such-model"], "model './no-such-model' not found"),
        (["transcribe", "--model", "{model}", "missing.wav"], "missing.wav: no such file or folder"),
        (["evaluate", "--model", "{model}", "--data", "manifest:none.jsonl"], "none.jsonl: manifest not found"),
        (["evaluate", "--model", "{model}", "--data", "{manifest}", "--batch-size", "0"], "--batch-size must be"),
        (["evaluate", "--model", "{model}", "--data", "{manifest}", "--device", "cuda:7"], "CUDA is not available"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tiny_model_dir, small_manifest, capsys, argv, message):
    argv = [a.format(model=tiny_model_dir, manifest=small_manifest) for a in argv]
    if "cuda" in " ".join(argv) and __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "distil_whisper_zh", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("transcribe", "evaluate", "count-params", "import-teacher"):
        assert command in result.stdout


def test_evaluate_keeps_two_datasets_of_one_name_apart(tiny_model_dir, small_manifest, tmp_path):
    rows = small_manifest.read_text(encoding="utf-8").splitlines()
    rows = [r.replace('"clips/', f'"{small_manifest.parent}/clips/') for r in rows]  # absolute audio paths
    specs = []
    for folder, count in (("a", 3), ("b", 2)):  # two dev.jsonl, as `dwz split` writes them
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dev.jsonl").write_text("\n".join(rows[:count]) + "\n", encoding="utf-8")
        specs += ["--data", str(tmp_path / folder / "dev.jsonl")]
    report = tmp_path / "report"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--report", str(report), "--batch-size", "2"]
    assert main([*argv, *specs]) == 0
    results = json.loads((report / "report.json").read_text(encoding="utf-8"))["results"]
    assert [(r["dataset"], r["utterances"]) for r in results] == [("dev", 3), ("dev-2", 2)]
    assert [r["data_spec"] for r in results] == specs[1::2]  # the same stem, told apart by the spec
    assert len({r["hypotheses_file"] for r in results}) == 2


def test_version_and_error_lines_say_things_once(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("dwz 0.")
    assert main(["evaluate", "--model", "m", "--data", "d", "--report", "r", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err == "dwz evaluate: error: --batch-size must be at least 1, got 0\n"


def test_every_format_gets_the_same_text(tiny_model_dir, real_clips, tmp_path, capsys):
    clip = str(real_clips[0]["path"])
    outputs = {}
    for fmt in ("txt", "json", "srt"):
        assert main(["transcribe", "--model", str(tiny_model_dir), clip, "--format", fmt, "--no-fallback"]) == 0
        outputs[fmt] = capsys.readouterr().out
    text = outputs["txt"].strip()
    (row,) = [json.loads(line) for line in outputs["json"].splitlines()]
    assert row["text"] == text and [s["text"] for s in row["segments"]] == ([text] if text else [])
    assert row["segments"][0]["start"] == 0.0 and row["segments"][0]["end"] == row["audio_seconds"]
    assert outputs["srt"].splitlines()[2:3] == ([text] if text else [])


def test_options_are_checked_before_the_model_is_loaded(tmp_path, capsys):
    # the model does not exist: an error about it would mean it was looked at first
    assert main(["transcribe", "--model", str(tmp_path / "none"), "a.wav", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err == "dwz transcribe: error: --batch-size must be at least 1, got 0\n"
    assert main(["evaluate", "--model", "m", "--data", "foo:bar", "--report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data foo:bar: unknown prefix 'foo:'; use one of manifest:, aishell:, commonvoice:, fleurs:, hf:" in err


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("export", ["CTranslate2 weight type (default: int8)", "the CTranslate2 dir to write"]),
        ("pseudo-label", ["(default: keep)", "(default: none)"]),
        ("distill", ["(default: 0.0001)", "(default: 16)", "(default: 0.8)"]),
        ("finetune", ["(default: 0.001)", "(default: adalora)"]),
        ("count-params", ["model arguments"]),
        ("run", ["a YAML recipe"]),
    ],
)
def test_help_shows_every_default(command, shown, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", capsys.readouterr().out).split())  # help is boxed and wrapped
    for part in shown:
        assert part in text, part


REQUIRED = {  # each command's required options, as arguments and as a recipe stage would give them
    "import-teacher": (["src", "--out", "o"], {"source": "src", "out": "o"}),
    "transcribe": (["--model", "m", "a.wav"], {"model": "m", "inputs": ["a.wav"]}),
    "evaluate": (["--model", "m", "--data", "d"], {"model": ["m"], "data": ["d"]}),
    "pseudo-label": (["--teacher", "t", "--data", "d", "--out", "o"], {"teacher": "t", "data": ["d"], "out": "o"}),
    "create-student": (["--teacher", "t", "--out", "o"], {"teacher": "t", "out": "o"}),
    "distill": (
        ["--student", "s", "--teacher", "t", "--data", "d", "--out", "o"],
        {"student": "s", "teacher": "t", "data": ["d"], "out": "o"},
    ),
    "finetune": (["--model", "m", "--data", "d", "--out", "o"], {"model": "m", "data": ["d"], "out": "o"}),
    "align-heads": (["--model", "m", "--teacher", "t", "--data", "d"], {"model": "m", "teacher": "t", "data": ["d"]}),
    "run": (["r.yaml"], {"recipe": "r.yaml"}),
    "demo": ([], {}),
    "export": (["--model", "m", "--out", "o"], {"model": "m", "out": "o"}),
    "split": (["d", "--out", "o"], {"data": "d", "out": "o"}),
    "sentences": (["f.txt", "--out", "o"], {"files": ["f.txt"], "out": "o"}),
    "count-params": (["m"], {"models": ["m"]}),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_has_its_fields_default_and_help(command):
    """The command line is generated from the options dataclass: what an option left out becomes is the field's
    default (nested groups included, finetune's own learning rate too), and every option has a help text."""
    options_class = COMMANDS[command].options_class()
    argv, mapping = REQUIRED[command]
    parsed = parse_args(options_class, argv, prog=f"dwz {command}", description="")
    assert parsed == from_mapping(options_class, mapping, "test")
    for name, option in option_fields(options_class).items():
        value = parsed
        for part in option.path:
            value = getattr(value, part)
        if option.name not in mapping:  # left out: the declared default
            assert value == declared_default(options_class, option.path), name
    undocumented = [name for name in option_fields(options_class) if name not in field_help(options_class)]
    assert not undocumented, f"dwz {command}: options without a help text: {undocumented}"


def declared_default(options_class, path):
    """The default written in the dataclass for the option at `path`: a nested group's comes from the instance its
    command makes (transcribe's batch size 8, finetune's learning rate)."""
    group, owner = None, options_class
    for part in path:
        field = {f.name: f for f in dataclasses.fields(owner)}[part]
        if group is not None:
            value = getattr(group, part)
        elif field.default_factory is not MISSING:
            value = field.default_factory()
        else:
            value = field.default
        if dataclasses.is_dataclass(value):
            group, owner = value, type(value)
        else:
            return value
    raise AssertionError(path)


def field_help(options_class) -> dict[str, str]:
    """The docstring under each field of `options_class` and of its nested groups."""
    found = {}
    for owner in {option_class_of(options_class, option.path) for option in option_fields(options_class).values()}:
        body = ast.parse(textwrap.dedent(inspect.getsource(owner))).body[0].body
        for field, doc in itertools.pairwise(body):
            if isinstance(field, ast.AnnAssign) and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                found[field.target.id] = doc.value.value
    return found


def option_class_of(options_class, path):
    owner = options_class
    for part in path[:-1]:
        owner = typing.get_type_hints(owner)[part]
    return owner


def test_every_command_line_switch_is_a_field(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", capsys.readouterr().out)) - {"--help"}
    assert shown == cli_flags(COMMANDS["distill"].options_class())
