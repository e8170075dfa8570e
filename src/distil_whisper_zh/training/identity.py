"""What a training run is: the options that decide what it computes, saved with each checkpoint, so a rerun of
the same command continues it and a run with other options starts afresh."""

from __future__ import annotations

from dataclasses import MISSING

RUN_FILE = "run.json"  # in a checkpoint: the options of the run that wrote it


def run_differences(saved: dict, current: dict, defaults: dict) -> list[str]:
    """The options (dotted names) in which a checkpoint's run identity `saved` is not `current`. An option the
    saved run predates (missing there) counts as its default, so a toolkit update that adds options does not
    restart a killed run; an option the saved run had and this one lacks is a difference too."""
    found = sorted(set(saved) - set(current))
    for key, value in current.items():
        default = defaults.get(key, MISSING)
        if key not in saved:
            if default != value:
                found.append(key)
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            inner = run_differences(saved[key], value, default if isinstance(default, dict) else {})
            found += [f"{key}.{name}" for name in inner]
        elif saved[key] != value:
            found.append(key)
    return found


def same_run(saved: dict, current: dict, defaults: dict) -> bool:
    """Whether a checkpoint's run identity `saved` is `current` (see `run_differences`)."""
    return not run_differences(saved, current, defaults)


def upgraded(saved: dict) -> dict:
    """A run identity written by an earlier version in today's terms: `freeze_encoder` became `train_encoder`,
    `eval_data` moved into the training options, and options that never changed what a run computes (`strict`)
    are no longer recorded (such a killed run still continues). For a while numeral folds were on unless
    `keep_teacher_numerals`; today they are off unless `fold_teacher_numerals`."""
    saved = {**saved}
    training = {**saved.get("training", {})}
    if "freeze_encoder" in training:
        training["train_encoder"] = not training.pop("freeze_encoder")
    training.pop("strict", None)
    if "eval_data" in saved:
        training["eval_data"] = saved.pop("eval_data")
    if training or "training" in saved:
        saved["training"] = training
    if "keep_teacher_numerals" in saved:
        saved["fold_teacher_numerals"] = not saved.pop("keep_teacher_numerals")
    return saved
