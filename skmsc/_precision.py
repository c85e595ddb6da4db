"""Arithmetic precision of the network: float32, or bfloat16/float16 mixed precision.

Mixed precision runs the convolutions and matrix products under ``torch.autocast`` in a
16-bit type while the weights, the optimiser and everything after the network (features,
centre, kNN) stay float32. It is only worth it where the hardware computes 16-bit types
natively: CUDA GPUs, and CPUs with AVX512-BF16 or AMX (elsewhere bfloat16 on the CPU is
emulated and slower than float32). Measured speed-ups and ROC-AUC changes are in
``docs/performance.md``.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "autocast", "cpu_has_native_bfloat16", "resolve_precision"]

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX tiles)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str, device: torch.device, *, training: bool) -> str:
    """``"float32"``, ``"bfloat16"`` or ``"float16"``: what ``precision`` means on ``device``.

    ``"auto"`` is bfloat16 on CUDA devices that support it. On CPUs with native bfloat16
    it is bfloat16 for feature extraction but float32 for fine-tuning: there PyTorch's
    bfloat16 backward pass measured several times slower than float32
    (``docs/performance.md``). Elsewhere (MPS, older CPUs and GPUs) it is float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {PRECISIONS}.")
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    if device.type == "cpu" and not training and cpu_has_native_bfloat16():
        return "bfloat16"
    return "float32"


def autocast(precision: str, device: torch.device):
    """A context running the network in ``precision`` (a resolved name) on ``device``."""
    dtype = _DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling, needed by float16 only (its narrow range underflows small gradients)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "float16")
