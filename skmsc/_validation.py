"""First look at what the user passed as ``X``, before scikit-learn's ``check_array``.

``check_array`` handles arrays well, but some inputs reach it in a form whose error names
a numpy internal ("inhomogeneous shape") or silently changes meaning (a list mixing uint8
and float images becomes float64, so 0-255 pixels are then refused as out of [0, 1]).
This module catches those with messages that name the problem and the fix. It never
copies or modifies the caller's arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

__all__ = ["check_input_container"]


def _describe(x) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"shape {tuple(x.shape)}, dtype {x.dtype}"
    return type(x).__name__


def check_input_container(X, *, min_samples: int = 1) -> None:
    """Raise ``TypeError``/``ValueError`` naming the fix if ``X`` cannot be a sample batch.

    Accepted: numpy arrays, array-likes (torch tensors, memmaps, pandas frames) and
    lists/tuples whose items all share one shape and one dtype. Arrays are left to
    ``check_array`` and :func:`skmsc._images.check_image_array` for the finer checks.
    """
    if sparse.issparse(X):
        return  # check_array explains that sparse input is not supported
    if X is None or isinstance(X, str | bytes | dict) or np.isscalar(X):
        raise TypeError(
            f"X must be an array of samples (images or feature vectors), got "
            f"{type(X).__name__}. Pass e.g. a numpy array of shape (n_samples, height, "
            "width[, 3]) or (n_samples, n_features)."
        )
    if isinstance(X, Sequence):
        _check_sequence(X, min_samples)
        return
    shape = getattr(X, "shape", None)
    dtype = getattr(X, "dtype", None)
    if shape is not None and len(shape) >= 1 and shape[0] < min_samples:
        raise ValueError(
            f"X has shape {tuple(shape)}: {shape[0]} samples, at least {min_samples} needed. "
            "Pass a non-empty batch of images or feature vectors."
        )
    if isinstance(dtype, np.dtype) and dtype.kind in "USV":
        raise TypeError(
            f"X has dtype {dtype}, which is not numeric. Decode images to pixel arrays "
            "(e.g. with PIL or skimage.io.imread) and pass uint8 or float values."
        )
    if isinstance(dtype, np.dtype) and dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: X has dtype {dtype}. Pass real values, e.g. "
            "np.abs(X) or X.real."
        )


def _check_sequence(X: Sequence, min_samples: int) -> None:
    if len(X) < min_samples:
        raise ValueError(
            f"X is an empty {type(X).__name__}: {len(X)} samples, at least {min_samples} "
            "needed. Pass a non-empty batch of images or feature vectors."
        )
    arrays = [x for x in X if hasattr(x, "shape") and hasattr(x, "dtype")]
    if not arrays:
        return  # nested lists of numbers: check_array converts or explains
    if len(arrays) != len(X):
        kinds = sorted({type(x).__name__ for x in X})
        raise TypeError(
            f"X mixes arrays with other objects ({', '.join(kinds)}). Pass a list of "
            "arrays of one shape and dtype, or one stacked numpy array."
        )
    first = arrays[0]
    for i, x in enumerate(arrays[1:], start=1):
        if tuple(x.shape) != tuple(first.shape):
            raise ValueError(
                f"X is a list of samples of different shapes: item 0 has {_describe(first)}, "
                f"item {i} has {_describe(x)}. Resize all images to one size before "
                "stacking them (e.g. skimage.transform.resize), or fit one detector per size."
            )
        if x.dtype != first.dtype:
            raise ValueError(
                f"X is a list of samples of different dtypes: item 0 has {_describe(first)}, "
                f"item {i} has {_describe(x)}. Mixing them would rescale some images: "
                "convert all to uint8 (0-255) or all to float in [0, 1] first."
            )
