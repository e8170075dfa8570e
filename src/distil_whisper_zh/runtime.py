"""Process-wide settings: where caches live, how many CPU threads torch may use, which device to run on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DwzError
from .options import neutral


@dataclass(frozen=True)
class RuntimeOptions:
    """Where and how fast a decoding command runs (transcribe, evaluate, pseudo-label)."""

    batch_size: int = 16
    """clips per batch"""
    device: str = "auto"
    """auto (CUDA if present), cpu, cuda, cuda:1, ..."""
    dtype: str = "auto"
    """auto (float16 on CUDA, float32 on CPU), float32, float16, bfloat16"""
    threads: int | None = neutral()
    """CPU threads for torch (None: $DWZ_NUM_THREADS, else half the cores)"""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DwzError(f"--batch-size must be at least 1, got {self.batch_size}")


def cache_dir() -> Path:
    """`$DWZ_CACHE_DIR`, else `$XDG_CACHE_HOME/distil-whisper-zh`, else `~/.cache/distil-whisper-zh`."""
    if os.environ.get("DWZ_CACHE_DIR"):
        return Path(os.environ["DWZ_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return base / "distil-whisper-zh"


def visible_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_num_threads() -> int:
    """Half the visible cores (at least one).

    Decoding is a long chain of small matrix products; on a shared 2-core machine two busy torch threads
    fighting another process ran 20x slower than one, so we leave a core free unless told otherwise.
    """
    return max(1, visible_cores() // 2)


def configure_threads(num_threads: int | None) -> int:
    """Set torch's intra-op threads (`$DWZ_NUM_THREADS`, the argument, or the default) and return it."""
    if num_threads is None and os.environ.get("DWZ_NUM_THREADS"):
        num_threads = int(os.environ["DWZ_NUM_THREADS"])
    num_threads = num_threads or default_num_threads()
    if num_threads < 1:
        raise DwzError(f"--threads must be at least 1, got {num_threads}")
    torch.set_num_threads(num_threads)
    return num_threads


def resolve_device(device: str) -> torch.device:
    """`auto` picks CUDA when present; an explicit `cuda` without a GPU is an error, not a silent CPU run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DwzError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise DwzError(f"--device {device!r} is not a device torch knows ({error})") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto`: float16 on CUDA, float32 on CPU (half precision on CPU is slower, not faster)."""
    choices = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in choices:
        raise DwzError(f"--dtype {dtype!r}: choose one of auto, {', '.join(choices)}")
    return choices[dtype]


def wants_cpu(device: str) -> bool:
    """Whether accelerate should run on CPU: asked for, or no GPU. With `cpu=True` accelerate also joins
    torchrun-started CPU processes (gloo), which it otherwise ignores."""
    return device == "cpu" or not torch.cuda.is_available()


MIXED_PRECISIONS = ("auto", "no", "fp16", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 matrices in hardware: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX (there oneDNN's bf16 kernels ran a decoder training step 2.5x faster than float32;
    without them torch emulates bf16, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_mixed_precision(requested: str, device: torch.device) -> str:
    """The autocast precision of training: `auto` = bf16 where `device` computes it natively, else none.
    fp16 needs CUDA (accelerate's gradient scaler); bf16 on a CPU without native support is refused, since
    it would be slower than float32 while rounding every product."""
    if requested not in MIXED_PRECISIONS:
        raise DwzError(f"--mixed-precision {requested!r}: choose one of {', '.join(MIXED_PRECISIONS)}")
    if requested == "auto":
        return "bf16" if native_bf16(device) else "no"
    if requested == "fp16" and device.type != "cuda":
        raise DwzError("--mixed-precision fp16 needs a CUDA GPU; on a CPU use bf16 (or auto)")
    if requested == "bf16" and not native_bf16(device):
        where = "GPU" if device.type == "cuda" else "CPU (no AVX512-BF16 or AMX)"
        raise DwzError(f"--mixed-precision bf16: this {where} has no native bfloat16; use no (or auto)")
    return requested
