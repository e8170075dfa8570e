"""train_log.jsonl (one row per logged step, appended) and loss.png, shared by distill and finetune."""

from __future__ import annotations

import math
from pathlib import Path

from ..jsonl import append_jsonl, read_jsonl, write_jsonl_atomic

LOG_FILE = "train_log.jsonl"
PLOT_FILE = "loss.png"


class TrainingLog:
    def __init__(self, folder: Path, resume_step: int):
        """Open the log; rows after `resume_step` (written after the checkpoint we resume from) are dropped."""
        self.path = folder / LOG_FILE
        rows = [row for row in read_jsonl(self.path) if row["step"] <= resume_step]
        write_jsonl_atomic(self.path, rows)
        self.handle = self.path.open("a", encoding="utf-8")

    def write(self, row: dict) -> None:
        append_jsonl(self.handle, row)

    def close(self) -> None:
        self.handle.close()


def plot_training_curve(log_path: Path, out_path: Path) -> None:
    """Loss (total, CE, KL) against step, and dev CER on a second axis when it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(log_path)
    if not rows:
        return
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for key, style in (("loss", "-"), ("ce", "--"), ("kl", ":")):
        points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]
        if points:
            axes.plot(*zip(*points, strict=True), style, label=key)
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    evaluated = [(r["step"], 100 * r["eval_cer"]) for r in rows if r.get("eval_cer") is not None]
    if evaluated:
        cer_axes = axes.twinx()
        cer_axes.plot(*zip(*evaluated, strict=True), "o-", color="tab:red", label="dev CER (%)")
        cer_axes.set_ylabel("dev CER (%)")
        cer_axes.legend(loc="upper center", fontsize=8)
    axes.legend(loc="upper right", fontsize=8)
    axes.set_title("training curve")
    figure.tight_layout()
    figure.savefig(out_path, dpi=120)
    plt.close(figure)
