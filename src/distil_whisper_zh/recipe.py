"""`dwz run RECIPE.yaml`: the stages of a whole run from one YAML file, re-runnable.

A recipe is a list of stages; each names a `dwz` command and gives that command's options by their command-line
names (`max-cer: 0.2` is `--max-cer 0.2`; a list fills a list option; `true`/`false` set a switch). Each stage
becomes the command's options dataclass directly (`options.from_mapping`): an unknown key or a value of the wrong
type is an error naming the stage, before any stage runs. `{out}` in any string is the recipe's `out` folder.
A stage that finished with the same options is skipped (options that change only speed, like threads, do not
count); training stages that did not finish are resumed, pseudo-labelling continues by itself. A `command: shell`
stage runs its `run:` string with bash (e.g. to make a corpus with an external tool); it is skipped like any other
stage once it succeeded.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tyro.conf import Positional

from .errors import DwzError
from .options import defaults, from_mapping, identity
from .training.identity import same_run, upgraded

RESUMABLE = {"distill", "finetune"}
FINISHED = "finished"  # a done marker's place in the order the stages of the out folder finished in
STATE_DIR = ".dwz-run"
SHELL = "shell"


@dataclass
class RunOptions:
    """Options of `dwz run`."""

    recipe: Positional[str]
    """a YAML recipe (e.g. recipes/cpu-base-zh.yaml)"""
    out: str | None = None
    """override the recipe's out folder"""
    until: str | None = None
    """stop after this stage"""


@dataclass
class Stage:
    name: str
    command: str
    options: dict[str, Any]


@dataclass
class Recipe:
    out: Path
    stages: list[Stage]


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Parse and check a recipe; `overrides` replace top-level keys (e.g. out)."""
    path = Path(path)
    if not path.is_file():
        raise DwzError(f"{path}: recipe not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise DwzError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise DwzError(f"{path}: a recipe is a mapping with `out:` and `stages:`")
    raw.update(overrides or {})
    if "out" not in raw or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise DwzError(f"{path}: a recipe needs `out:` and a non-empty `stages:` list")
    stages = []
    for number, entry in enumerate(raw["stages"], start=1):
        if not isinstance(entry, dict) or "command" not in entry:
            raise DwzError(f"{path}: stage {number} needs a `command:` (one of the dwz commands)")
        options = {k: v for k, v in entry.items() if k not in ("name", "command")}
        stages.append(Stage(str(entry.get("name", f"{number}-{entry['command']}")), entry["command"], options))
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise DwzError(f"{path}: stage names must be unique, got {names}")
    return Recipe(Path(str(raw["out"])), stages)


def _substitute(value: Any, out: Path) -> Any:
    if isinstance(value, str):
        return value.replace("{out}", str(out))
    if isinstance(value, list):
        return [_substitute(v, out) for v in value]
    return value


@dataclass
class StagePlan:
    """A stage ready to run: its command's options (a dataclass), or the bash script of a shell stage."""

    name: str
    command: str
    options: Any

    def identity(self) -> dict[str, Any]:
        """What the stage computes: its command and options, without those that change only how it runs; a
        training stage stopped early (--stop-after-steps) is not done, so the stop counts here."""
        if self.command == SHELL:
            return {"command": SHELL, "options": self.options}
        what = {"command": self.command, "options": identity(self.options)}
        if self.command in RESUMABLE:
            what["stops_after"] = self.options.training.stop_after_steps
        return what

    def same_as(self, recorded: Any) -> bool:
        """Whether a stage marker records this stage. Options the marker predates count as their defaults (a
        toolkit update that adds options does not rerun finished stages)."""
        what = self.identity()
        if not isinstance(recorded, dict) or recorded.get("command") != self.command:
            return False
        recorded = {key: value for key, value in recorded.items() if key != FINISHED}
        if self.command == SHELL:
            return recorded == what
        options = recorded.get("options")
        if isinstance(options, dict) and self.command in RESUMABLE:
            options = upgraded(options)  # in today's terms, as a training run's own checkpoint is read
        return (
            isinstance(options, dict)
            and same_run(options, what["options"], defaults(type(self.options)))
            and recorded.get("stops_after") == what.get("stops_after")
        )

    def resumed(self) -> Any:
        """The options with `resume` set (a training stage that started with these same options)."""
        training = dataclasses.replace(self.options.training, resume=True)
        return dataclasses.replace(self.options, training=training)


def plan_stage(stage: Stage, out: Path, commands: Mapping[str, type]) -> StagePlan:
    """The stage's options, built and checked (`commands`: each command's options dataclass)."""
    if stage.command == SHELL:
        if set(stage.options) != {"run"} or not isinstance(stage.options["run"], str):
            raise DwzError(f"stage {stage.name}: a shell stage has exactly one option, `run:` (a bash command)")
        return StagePlan(stage.name, SHELL, _substitute(stage.options["run"], out))
    if stage.command not in commands:
        raise DwzError(f"stage {stage.name}: unknown command {stage.command!r} (commands: {', '.join(commands)})")
    values = {key: _substitute(value, out) for key, value in stage.options.items()}
    options = from_mapping(commands[stage.command], values, f"stage {stage.name} (dwz {stage.command})")
    return StagePlan(stage.name, stage.command, options)


def run_recipe(
    recipe: Recipe,
    commands: Mapping[str, type],
    run_command: Callable[[str, Any], None],
    until: str | None = None,
) -> list[str]:
    """Run the stages in order (up to and including `until`, if given); `run_command(command, options)` executes
    one dwz command. Returns the names it ran.

    A stage is skipped when it finished before with the same options, after every earlier stage last finished,
    and no earlier stage runs again now (otherwise its inputs may have changed: also when an earlier stage ran in
    another `dwz run`, e.g. one with --until). A training stage that started with the same options but did not
    finish is resumed; one whose options changed starts afresh.
    """
    state_dir = recipe.out / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    plans = [plan_stage(stage, recipe.out, commands) for stage in recipe.stages]  # all checked up front
    names = [plan.name for plan in plans]
    if until is not None:
        if until not in names:
            raise DwzError(f"--until {until!r}: the recipe's stages are {', '.join(names)}")
        plans = plans[: names.index(until) + 1]
    ran: list[str] = []
    inputs_finished = 0  # when the latest of the stages before this one finished
    for plan in plans:
        done, started = state_dir / f"{plan.name}.json", state_dir / f"{plan.name}.started.json"
        what = plan.identity()
        recorded = _recorded(done)
        if not ran and plan.same_as(recorded) and _finished(recorded) >= inputs_finished:
            print(f"[dwz run] {plan.name}: done before, skipped", flush=True)
            inputs_finished = _finished(recorded)
            continue
        resume = plan.command in RESUMABLE and plan.same_as(_recorded(started)) and not ran
        done.unlink(missing_ok=True)
        started.write_text(json.dumps(what, indent=1))
        print(f"[dwz run] {plan.name}: dwz {plan.command}{' (resumed)' if resume else ''}", flush=True)
        if plan.command == SHELL:
            print(f"[dwz run] {plan.options}", flush=True)
            run_shell(plan.name, plan.options)
        else:
            run_command(plan.command, plan.resumed() if resume else plan.options)
        done.write_text(json.dumps({**what, FINISHED: _last_finished(state_dir) + 1}, indent=1))
        ran.append(plan.name)
    return ran


def _finished(recorded: Any) -> int:
    """Where a done marker stands in the order stages finished in (0: a marker from before the order was kept)."""
    return recorded.get(FINISHED, 0) if isinstance(recorded, dict) else 0


def _last_finished(state_dir: Path) -> int:
    markers = (path for path in state_dir.glob("*.json") if not path.name.endswith(".started.json"))
    return max((_finished(_recorded(path)) for path in markers), default=0)


def _recorded(marker: Path) -> Any:
    """What a stage marker records (None when there is none, or it is from an older toolkit)."""
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError:
        return None


def run_shell(name: str, script: str) -> None:
    result = subprocess.run(["bash", "-c", script], check=False)
    if result.returncode != 0:
        raise DwzError(f"stage {name}: the shell command failed with exit code {result.returncode}: {script}")
