"""Run by test_multiprocess.py under `torchrun --nproc_per_node 2`: pseudo-label, then distill a few steps.

Each process writes a fingerprint of its student weights so the test can check they stayed identical.
"""

import hashlib
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from distil_whisper_zh.decoding import DecodingOptions
from distil_whisper_zh.distill import Distiller, DistillOptions
from distil_whisper_zh.pseudo_label import PseudoLabelOptions, run_pseudo_label
from distil_whisper_zh.runtime import RuntimeOptions
from distil_whisper_zh.training.options import TrainingOptions


def main(teacher: str, student: str, manifest: str, out: str) -> None:
    torch.set_num_threads(1)
    out_dir = Path(out)
    run_pseudo_label(
        PseudoLabelOptions(
            teacher=teacher,
            data=[manifest],
            out=str(out_dir / "labels"),
            runtime=RuntimeOptions(batch_size=2, device="cpu"),
            decoding=DecodingOptions(fallback=False),
        )
    )
    distiller = Distiller(
        DistillOptions(
            student=student,
            teacher=teacher,
            data=[str(out_dir / "labels")],
            out=str(out_dir / "student"),
            training=TrainingOptions(
                batch_size=1, max_steps=3, warmup_steps=0, learning_rate=1e-3, save_every=100, device="cpu"
            ),
        )
    )
    distiller.run()
    digest = hashlib.sha256()
    for name, tensor in sorted(distiller.model.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    rank = PartialState().process_index
    (out_dir / f"weights-rank{rank}.sha256").write_text(digest.hexdigest())


if __name__ == "__main__":
    main(*sys.argv[1:])
