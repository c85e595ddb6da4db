"""Where and in what arithmetic the network runs: the torch device and the precision.

Device: ``"auto"`` is CUDA, else Apple MPS, else the CPU; a device that is absent is a
clear error before any work.

Precision: float32, or bfloat16/float16 mixed precision.

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

__all__ = [
    "DEVICE_TYPES", "PRECISIONS", "autocast", "cpu_has_native_bfloat16", "grad_scaler",
    "loadable_device", "parse_device", "resolve_device", "resolve_precision",
]

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Device types skmsc runs on ("meta", "xla", ... would fail deep inside torch).
DEVICE_TYPES = ("cpu", "cuda", "mps")
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

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn import resolve_precision
    >>> resolve_precision("auto", torch.device("cpu"), training=True)
    'float32'
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
    """A context running the network in ``precision`` (a resolved name) on ``device``.

    Examples
    --------
    >>> import torch
    >>> from skmsc.nn import autocast
    >>> layer = torch.nn.Linear(4, 2)
    >>> with autocast("bfloat16", torch.device("cpu")):
    ...     out = layer(torch.rand(3, 4))
    >>> out.dtype
    torch.bfloat16
    """
    dtype = _DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling, needed by float16 only (its narrow range underflows small gradients)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "float16")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` means CUDA if present, else Apple MPS, else CPU; absent devices are errors.

    Examples
    --------
    >>> from skmsc.nn import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = parse_device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu' or device='auto'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)."
            )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} was requested but MPS is not available.")
    return resolved


def parse_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` of a type skmsc runs on, else a ``ValueError``.

    Examples
    --------
    >>> from skmsc.nn._runtime import parse_device
    >>> parse_device("cuda:1")
    device(type='cuda', index=1)
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda', 'cuda:N' "
            "or 'mps'."
        ) from exc
    if resolved.type not in DEVICE_TYPES:
        raise ValueError(
            f"device={device!r} is not supported: skmsc runs on 'cpu', 'cuda', 'cuda:N' or "
            "'mps' (or 'auto')."
        )
    return resolved


def loadable_device(device: torch.device) -> torch.device:
    """The saved ``device`` if this machine has it, else the CPU (for loading a model)."""
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        return torch.device("cpu")
    return device
