"""What a training run is: the options that decide what it computes, saved with each checkpoint, so a rerun of
the same command continues it and a run with other options starts afresh."""

from __future__ import annotations

from dataclasses import MISSING

RUN_FILE = "run.json"  # in a checkpoint: the options of the run that wrote it


def same_run(saved: dict, current: dict, defaults: dict) -> bool:
    """Whether a checkpoint's run identity `saved` is `current`. An option the saved run predates (missing there)
    counts as its default, so a toolkit update that adds options does not restart a killed run; any other
    difference, or an option the saved run had and this one lacks, is another run."""
    if set(saved) - set(current):
        return False
    for key, value in current.items():
        default = defaults.get(key, MISSING)
        if key not in saved:
            if default != value:
                return False
        elif isinstance(value, dict) and isinstance(saved[key], dict):
            if not same_run(saved[key], value, default if isinstance(default, dict) else {}):
                return False
        elif saved[key] != value:
            return False
    return True


def upgraded(saved: dict) -> dict:
    """A run identity written by an earlier version in today's terms, so its killed run still continues:
    `freeze_encoder` became `train_encoder`, `eval_data` moved into the training options, and options that never
    changed what a run computes (`strict`) are no longer recorded; a distillation that predates numeral folds
    kept the teacher's digits."""
    saved = {**saved}
    training = {**saved.get("training", {})}
    if "freeze_encoder" in training:
        training["train_encoder"] = not training.pop("freeze_encoder")
    training.pop("strict", None)
    if "eval_data" in saved:
        training["eval_data"] = saved.pop("eval_data")
    if training or "training" in saved:
        saved["training"] = training
    if "keep_teacher_script" in saved and "keep_teacher_numerals" not in saved:
        saved["keep_teacher_numerals"] = True  # a distillation from before numeral folds took digits as they were
    return saved
