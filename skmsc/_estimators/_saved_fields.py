"""Reading fitted attributes back from a saved folder, each checked against its type and range.

A saved folder may be damaged, edited or forged with matching hashes, so ``load`` trusts
none of its values: each ``_restore_state`` reads them through these functions, which
raise a ``ValueError`` naming the field and what was expected. A model either scores
exactly as it was saved or does not load.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = ["SavedFieldError", "saved_array", "saved_float", "saved_int", "saved_str",
           "saved_value", "require"]


class SavedFieldError(ValueError):
    """A saved fitted attribute is missing, of the wrong type, or out of range."""


def require(condition: bool, field: str, message: str) -> None:
    """A :class:`SavedFieldError` about ``field`` unless ``condition``."""
    if not condition:
        raise SavedFieldError(f"Saved fitted attribute {field!r} is invalid: {message}.")


def saved_value(fitted: dict, field: str):
    """``fitted[field]``, or an error naming the missing field."""
    require(field in fitted, field, "it is missing (incomplete or damaged save)")
    return fitted[field]


def saved_int(fitted: dict, field: str, low: int | None = None, high: int | None = None,
              value=None) -> int:
    """An integer (not a bool, not a float) in ``[low, high]``."""
    value = saved_value(fitted, field) if value is None else value
    require(isinstance(value, Integral) and not isinstance(value, bool), field,
            f"expected an integer, got {value!r}")
    require((low is None or value >= low) and (high is None or value <= high), field,
            f"expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def saved_float(fitted: dict, field: str, low: float | None = None,
                high: float | None = None, value=None) -> float:
    """A finite number (not a bool) in ``[low, high]``."""
    value = saved_value(fitted, field) if value is None else value
    require(isinstance(value, Real) and not isinstance(value, bool)
            and math.isfinite(value), field, f"expected a finite number, got {value!r}")
    require((low is None or value >= low) and (high is None or value <= high), field,
            f"expected a number in [{low}, {high}], got {value!r}")
    return float(value)


def saved_str(fitted: dict, field: str, choices=None) -> str:
    """A string, one of ``choices`` if given."""
    value = saved_value(fitted, field)
    require(isinstance(value, str), field, f"expected a string, got {value!r}")
    if choices is not None:
        require(value in choices, field, f"expected one of {sorted(choices)}, got {value!r}")
    return value


def saved_array(tensors: dict, field: str, *, ndim: int, dtype=np.float32,
                shape: tuple | None = None) -> np.ndarray:
    """A finite array of ``ndim`` dimensions and ``dtype`` (``shape``: ``None`` = any)."""
    require(field in tensors, field, "the tensor is missing (incomplete or damaged save)")
    array = tensors[field]
    require(array.ndim == ndim and array.dtype == dtype, field,
            f"expected a {ndim}-D {np.dtype(dtype).name} array, got {array.ndim}-D "
            f"{array.dtype}")
    if shape is not None:
        require(array.shape == shape, field, f"expected shape {shape}, got {array.shape}")
    require(bool(np.isfinite(array).all()), field, "it holds NaN or infinity")
    return array
