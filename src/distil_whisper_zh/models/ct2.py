"""Read a CTranslate2 Whisper `model.bin` with numpy and map it onto transformers' Whisper.

The file format (version 6, spec "WhisperSpec"): uint32 version; spec name (uint16 length incl. NUL);
uint32 revision; uint32 variable count; per variable: name, uint8 rank, uint32 dims[rank], uint8 dtype,
uint32 byte count, raw bytes; then uint32 alias count and (alias, target) name pairs.
No tensor needs a transpose: linear layers are (out, in) and convolutions (out, in, 3) on both sides.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DwzError

SUPPORTED_VERSIONS = (5, 6)
CT2_GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU; Whisper uses exact (erf) GELU
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


@dataclass
class CT2Model:
    """Variables of a CTranslate2 model file, keyed by name (aliases resolved)."""

    spec: str
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def weight(self, name: str) -> np.ndarray:
        """A float32 weight; int8/int16-quantized ones are divided by their per-row `<name>_scale`."""
        value = self.get(name)
        scale_name = f"{name}_scale"
        if scale_name in self.variables or scale_name in self.aliases:
            scale = self.get(scale_name).astype(np.float32)
            return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
        return value.astype(np.float32)

    def scalar(self, name: str) -> int | str:
        value = self.get(name)
        if value.dtype == np.int8 and value.ndim == 1:  # strings are stored as int8 characters
            return value.tobytes().decode("utf-8").rstrip("\0")
        return value.item()


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise DwzError(
                f"{self.path}: CTranslate2 model file is truncated (needed {size} bytes at offset "
                f"{self.pos}, file has {len(self.data)}). Re-download or re-convert the model."
            )
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        length = self.take("<H")
        raw = self.take(f"<{length}s")
        return raw.rstrip(b"\0").decode("utf-8")

    def array(self, dtype_code: int, dims: tuple[int, ...]) -> np.ndarray:
        nbytes = self.take("<I")
        if self.pos + nbytes > len(self.data):
            raise DwzError(
                f"{self.path}: CTranslate2 model file is truncated inside a tensor "
                f"(offset {self.pos}, {nbytes} bytes wanted, file has {len(self.data)})."
            )
        buffer = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        dtype = CT2_DTYPES.get(dtype_code)
        if dtype is None:
            raise DwzError(f"{self.path}: unknown CTranslate2 dtype code {dtype_code}")
        if dtype == "bfloat16":  # numpy has no bfloat16: widen the upper half of a float32
            raw = np.frombuffer(buffer, dtype=np.uint16).astype(np.uint32) << 16
            return raw.view(np.float32).reshape(dims)
        return np.frombuffer(buffer, dtype=dtype).reshape(dims)


def read_ct2_model(path: str | Path) -> CT2Model:
    """Parse `path` (a `model.bin`) into named numpy arrays."""
    path = Path(path)
    if not path.is_file():
        raise DwzError(f"{path}: no CTranslate2 model file here")
    reader = _Reader(path.read_bytes(), path)
    version = reader.take("<I")
    if version not in SUPPORTED_VERSIONS:
        raise DwzError(f"{path}: CTranslate2 binary version {version} is not supported ({SUPPORTED_VERSIONS})")
    spec = reader.string()
    reader.take("<I")  # revision
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.take("<I")):
        name = reader.string()
        rank = reader.take("<B")
        dims = tuple(reader.take(f"<{rank}I")) if rank > 1 else ((reader.take("<I"),) if rank else ())
        dtype_code = reader.take("<B")
        variables[name] = reader.array(dtype_code, dims)
    aliases = {}
    for _ in range(reader.take("<I")):
        alias = reader.string()
        aliases[alias] = reader.string()
    if spec != "WhisperSpec":
        raise DwzError(f"{path}: a CTranslate2 {spec!r} model, not a Whisper model")
    return CT2Model(spec=spec, variables=variables, aliases=aliases)


def _count_layers(ct2: CT2Model, stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for name in ct2.variables if (m := pattern.match(name)))


def whisper_config_kwargs(ct2: CT2Model) -> dict:
    """Architecture sizes of a WhisperConfig, read off the tensors and scalars of the CT2 file."""
    embeddings = ct2.get("decoder/embeddings/weight")
    fc1 = ct2.get("encoder/layer_0/ffn/linear_0/weight")
    activation = ct2.scalar("decoder/activation") if "decoder/activation" in ct2.variables else None
    if activation not in (None, CT2_GELU):
        raise DwzError(f"unexpected activation {activation!r} in CTranslate2 Whisper model")
    return dict(
        vocab_size=embeddings.shape[0],
        d_model=embeddings.shape[1],
        num_mel_bins=ct2.get("encoder/conv1/weight").shape[1],
        encoder_layers=_count_layers(ct2, "encoder"),
        decoder_layers=_count_layers(ct2, "decoder"),
        encoder_attention_heads=int(ct2.scalar("encoder/num_heads")),
        decoder_attention_heads=int(ct2.scalar("decoder/num_heads")),
        encoder_ffn_dim=fc1.shape[0],
        decoder_ffn_dim=ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=ct2.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=ct2.get("decoder/position_encodings/encodings").shape[0],
    )


def _linear(out: dict, prefix: str, ct2: CT2Model, source: str) -> None:
    out[f"{prefix}.weight"] = ct2.weight(f"{source}/weight")
    out[f"{prefix}.bias"] = ct2.weight(f"{source}/bias")


def _layer_norm(out: dict, prefix: str, ct2: CT2Model, source: str) -> None:
    out[f"{prefix}.weight"] = ct2.weight(f"{source}/gamma")
    out[f"{prefix}.bias"] = ct2.weight(f"{source}/beta")


def _split_rows(array: np.ndarray, parts: int) -> list[np.ndarray]:
    return np.split(array, parts, axis=0)


def _self_attention(out: dict, prefix: str, ct2: CT2Model, source: str) -> None:
    """Fused (3d, d) qkv -> q/k/v projections; Whisper's k_proj has no bias (CT2 stores zeros there)."""
    q_w, k_w, v_w = _split_rows(ct2.weight(f"{source}/linear_0/weight"), 3)
    q_b, _, v_b = _split_rows(ct2.weight(f"{source}/linear_0/bias"), 3)
    out.update({f"{prefix}.q_proj.weight": q_w, f"{prefix}.q_proj.bias": q_b, f"{prefix}.k_proj.weight": k_w})
    out.update({f"{prefix}.v_proj.weight": v_w, f"{prefix}.v_proj.bias": v_b})
    _linear(out, f"{prefix}.out_proj", ct2, f"{source}/linear_1")


def _cross_attention(out: dict, prefix: str, ct2: CT2Model, source: str) -> None:
    """linear_0 is the query; linear_1 is fused (2d, d) key/value; linear_2 the output."""
    _linear(out, f"{prefix}.q_proj", ct2, f"{source}/linear_0")
    k_w, v_w = _split_rows(ct2.weight(f"{source}/linear_1/weight"), 2)
    _, v_b = _split_rows(ct2.weight(f"{source}/linear_1/bias"), 2)
    out.update({f"{prefix}.k_proj.weight": k_w, f"{prefix}.v_proj.weight": v_w, f"{prefix}.v_proj.bias": v_b})
    _linear(out, f"{prefix}.out_proj", ct2, f"{source}/linear_2")


def _layer(out: dict, prefix: str, ct2: CT2Model, source: str, cross: bool) -> None:
    _self_attention(out, f"{prefix}.self_attn", ct2, f"{source}/self_attention")
    _layer_norm(out, f"{prefix}.self_attn_layer_norm", ct2, f"{source}/self_attention/layer_norm")
    if cross:
        _cross_attention(out, f"{prefix}.encoder_attn", ct2, f"{source}/attention")
        _layer_norm(out, f"{prefix}.encoder_attn_layer_norm", ct2, f"{source}/attention/layer_norm")
    _linear(out, f"{prefix}.fc1", ct2, f"{source}/ffn/linear_0")
    _linear(out, f"{prefix}.fc2", ct2, f"{source}/ffn/linear_1")
    _layer_norm(out, f"{prefix}.final_layer_norm", ct2, f"{source}/ffn/layer_norm")


def whisper_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """Name-for-name transformers `WhisperForConditionalGeneration` weights (proj_out is tied, not listed)."""
    sizes = whisper_config_kwargs(ct2)
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(out, f"model.encoder.{conv}", ct2, f"encoder/{conv}")
    out["model.encoder.embed_positions.weight"] = ct2.weight("encoder/position_encodings/encodings")
    for i in range(sizes["encoder_layers"]):
        _layer(out, f"model.encoder.layers.{i}", ct2, f"encoder/layer_{i}", cross=False)
    _layer_norm(out, "model.encoder.layer_norm", ct2, "encoder/layer_norm")
    out["model.decoder.embed_tokens.weight"] = ct2.weight("decoder/embeddings/weight")
    out["model.decoder.embed_positions.weight"] = ct2.weight("decoder/position_encodings/encodings")
    for i in range(sizes["decoder_layers"]):
        _layer(out, f"model.decoder.layers.{i}", ct2, f"decoder/layer_{i}", cross=True)
    _layer_norm(out, "model.decoder.layer_norm", ct2, "decoder/layer_norm")
    return out
