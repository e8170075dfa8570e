"""`dwz run RECIPE.yaml`: the stages of a whole run from one YAML file, re-runnable.

A recipe is a list of stages; each names a `dwz` command and gives that command's options under their CLI names
(`max-cer: 0.2` is `--max-cer 0.2`; a list repeats the flag or fills a multi-value option; `true` is a switch).
`{out}` in any string is the recipe's `out` folder. A stage that finished with the same options is skipped;
training stages that did not finish are resumed (`--resume` is added), pseudo-labelling continues by itself.
A `command: shell` stage runs its `run:` string with bash (e.g. to make a corpus with an external tool); it is
skipped like any other stage once it succeeded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import DwzError

RESUMABLE = {"distill", "finetune"}
STATE_DIR = ".dwz-run"
SHELL = "shell"


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


def stage_argv(stage: Stage, out: Path, parser: argparse.ArgumentParser) -> list[str]:
    """The `dwz` argument list of a stage, checked against that command's parser (["shell", script] for shell)."""
    if stage.command == SHELL:
        if set(stage.options) != {"run"} or not isinstance(stage.options["run"], str):
            raise DwzError(f"stage {stage.name}: a shell stage has exactly one option, `run:` (a bash command)")
        return [SHELL, _substitute(stage.options["run"], out)]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if stage.command not in subparsers.choices:
        raise DwzError(f"stage {stage.name}: unknown command {stage.command!r}")
    command = subparsers.choices[stage.command]
    by_flag = {flag: action for action in command._actions for flag in action.option_strings}
    positional = [a for a in command._actions if not a.option_strings and a.dest != "help"]
    argv = [stage.command]
    for key, value in stage.options.items():
        value = _substitute(value, out)
        if key == "args":  # positional arguments
            argv += [str(v) for v in (value if isinstance(value, list) else [value])]
            continue
        flag = f"--{key.replace('_', '-')}"
        action = by_flag.get(flag)
        if action is None:
            raise DwzError(f"stage {stage.name}: dwz {stage.command} has no option {flag}")
        argv += _flag_values(flag, action, value)
    if positional and "args" not in stage.options and any(a.nargs in ("+", None) for a in positional):
        raise DwzError(f"stage {stage.name}: dwz {stage.command} needs positional `args:`")
    return argv


def _flag_values(flag: str, action: argparse.Action, value: Any) -> list[str]:
    if isinstance(action, argparse._StoreTrueAction):
        return [flag] if value else []
    if value is None or value == "":  # an empty value leaves the option at its default
        return []
    if isinstance(value, list):
        if action.nargs in ("+", "*"):
            return [flag, *map(str, value)]
        return [part for item in value for part in (flag, str(item))]
    return [flag, str(value)]


def run_recipe(recipe: Recipe, parser: argparse.ArgumentParser, run_command, until: str | None = None) -> list[str]:
    """Run the stages in order (up to and including `until`, if given); `run_command(argv)` executes one dwz
    command. Returns the names it ran.

    A stage is skipped when it finished before with the same arguments and no earlier stage ran again (its
    inputs would have changed). A training stage that started with the same arguments but did not finish is
    resumed; one whose arguments changed starts afresh.
    """
    state_dir = recipe.out / STATE_DIR
    state_dir.mkdir(parents=True, exist_ok=True)
    plans = [(stage, stage_argv(stage, recipe.out, parser)) for stage in recipe.stages]  # all checked up front
    names = [stage.name for stage in recipe.stages]
    if until is not None:
        if until not in names:
            raise DwzError(f"--until {until!r}: the recipe's stages are {', '.join(names)}")
        plans = plans[: names.index(until) + 1]
    ran: list[str] = []
    for stage, argv in plans:
        argv = [a for a in argv if a != "--resume"]
        done, started = state_dir / f"{stage.name}.json", state_dir / f"{stage.name}.started.json"
        if not ran and _same(done, argv):
            print(f"[dwz run] {stage.name}: done before, skipped", flush=True)
            continue
        resume = stage.command in RESUMABLE and _same(started, argv) and not ran
        command = [*argv, "--resume"] if resume else argv
        done.unlink(missing_ok=True)
        started.write_text(json.dumps(argv))
        print(f"[dwz run] {stage.name}: dwz {' '.join(command)}", flush=True)
        run_shell(stage.name, argv[1]) if argv[0] == SHELL else run_command(command)
        done.write_text(json.dumps(argv))
        ran.append(stage.name)
    return ran


def _same(marker: Path, argv: list[str]) -> bool:
    """Whether `marker` records this command line, thread counts aside (they change speed, not results)."""
    return marker.is_file() and _without_threads(json.loads(marker.read_text())) == _without_threads(argv)


def _without_threads(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--threads":
            skip = True
        elif not arg.startswith("--threads="):
            kept.append(arg)
    return kept


def run_shell(name: str, script: str) -> None:
    result = subprocess.run(["bash", "-c", script], check=False)
    if result.returncode != 0:
        raise DwzError(f"stage {name}: the shell command failed with exit code {result.returncode}: {script}")
