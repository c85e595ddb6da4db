"""Fitted attributes as they are saved: declared once, read back checked.

Each estimator class declares its fitted attributes once, as a ``_FITTED_FIELDS`` tuple
of :class:`FittedField` (name, how it is saved, how a saved value is checked, and its
value for older saves that lack it). ``SkmscEstimatorMixin`` saves, restores and unpickles
every declared field of every level generically; ``tests/persistence/test_persistence.py`` checks
that every public fitted attribute (``*_``) is declared and round-trips.

A saved folder may be damaged, edited or forged with matching hashes, so ``load`` trusts
none of its values: each field's ``restore`` reads them through the functions below, which
raise a ``ValueError`` naming the field and what was expected. A model either scores
exactly as it was saved or does not load.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["OMIT", "FittedField", "SavedFieldError", "saved_array", "saved_float",
           "saved_int", "saved_str", "saved_value", "require"]

#: Returned by a field's ``save`` (nothing written) or ``restore`` (attribute not set).
OMIT = type("Omit", (), {"__repr__": lambda self: "OMIT"})()


@dataclass(frozen=True)
class FittedField:
    """One fitted attribute, declared once: saved, restored and unpickled from this.

    Parameters
    ----------
    name : str
        The attribute (``offset_``; a private one such as ``_index_seed`` too).
    restore : callable ``(estimator, fitted, tensors) -> value``
        Reads the saved value from the JSON-ready ``fitted`` dict or the ``tensors``
        dict, checks it (with the ``saved_*`` functions below; it may compare with the
        fields restored before it, in declaration order, base classes first) and returns
        it, or :data:`OMIT` to leave the attribute unset.
    save : callable ``estimator -> value``, default=None
        The value to save: JSON-ready, an array, a dict of arrays (``tensor`` fields
        spanning several arrays) or :data:`OMIT`. ``None``: the attribute as it is.
    key : str, default=None
        The name it is saved under; ``None``: ``name``.
    tensor : bool, default=False
        Saved in the tensors file (arrays) rather than the JSON document.
    older : callable ``estimator -> value``, default=None
        The value for a save or pickle made before the field existed (``None``: the
        field is required). ``restore`` still checks it on ``load``.
    """

    name: str
    restore: Callable[[Any, dict, dict], Any]
    save: Callable[[Any], Any] | None = None
    key: str | None = None
    tensor: bool = False
    older: Callable[[Any], Any] | None = None

    @property
    def saved_as(self) -> str:
        return self.key or self.name


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
