"""Every check of what the user passed, with messages that name the problem and the fix.

- :func:`check_input_container`: a first look at ``X`` before scikit-learn's
  ``check_array``;
- :func:`check_image_array`: an array of images the network can take;
- :func:`check_enough_samples`: enough training samples for the leave-one-out scores;
- :func:`check_fitted_sample_shape`: an array shaped like what the estimator was fitted on;
- :func:`check_feature_range`: feature vectors whose distances float32 can hold;
- :class:`DivergenceError`: a fit whose numbers stopped being finite.
- :func:`warn_if_labelled_anomalies`: a ``y`` given to ``fit`` that marks some rows as
  anomalies (which ``fit`` would train on all the same).

``check_array`` handles arrays well, but some inputs reach it in a form whose error names
a numpy internal ("inhomogeneous shape") or silently changes meaning (a list mixing uint8
and float images becomes float64, so 0-255 pixels are then refused as out of [0, 1]).
This module catches those with messages that name the problem and the fix. It never
copies or modifies the caller's arrays.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
from scipy import sparse

__all__ = [
    "EXPECTED_INPUT", "AnomaliesInTrainingWarning", "DivergenceError",
    "caller_stacklevel", "check_enough_samples", "check_feature_range",
    "check_fitted_sample_shape", "check_image_array", "check_input_container",
    "LABELS_HELP", "explained_non_finite", "normal_mask",
    "warn_if_labelled_anomalies",
]


class DivergenceError(ValueError, FloatingPointError):
    """A fit produced NaN or infinite numbers (loss, features, centre or threshold).

    The message names the likely cause (learning_rate, weight_decay, temperature,
    precision, or features too large). The estimator is left as it was before ``fit``.
    A ``ValueError`` (as scikit-learn raises for divergence) and a ``FloatingPointError``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc import DivergenceError, MeanShiftedContrastiveDetector
    >>> X = np.random.default_rng(0).integers(0, 256, size=(8, 16, 16), dtype=np.uint8)
    >>> det = MeanShiftedContrastiveDetector(
    ...     "efficientnet_lite0", weights=None, epochs=1, batch_size=4, image_size=16,
    ...     weight_decay=1e30, random_state=0)
    >>> try:
    ...     det.fit(X)
    ... except DivergenceError as exc:
    ...     print("weight_decay=1e+30" in str(exc))
    True
    """


def _describe(x) -> str:
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"shape {tuple(x.shape)}, dtype {x.dtype}"
    return type(x).__name__


def check_input_container(X, *, min_samples: int = 1) -> None:
    """Raise ``TypeError``/``ValueError`` naming the fix if ``X`` cannot be a sample batch.

    Accepted: numpy arrays, array-likes (torch tensors, memmaps, pandas frames) and
    lists/tuples whose items all share one shape and one dtype. Arrays are left to
    ``check_array`` and :func:`check_image_array` for the finer checks.
    """
    if sparse.issparse(X):
        return  # check_array explains that sparse input is not supported
    if isinstance(X, np.ma.MaskedArray):
        _check_masked(X)
    _check_not_torch_dataset(X)
    _check_torch_tensor(X)
    if isinstance(X, str | os.PathLike):
        raise TypeError(_path_message(X))
    _check_frame_of_paths(X)
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
    if (isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 1
            and any(hasattr(x, "shape") or isinstance(x, bytes) for x in X)):
        _check_sequence(list(X), min_samples, container="1-D object array")
        raise TypeError(
            f"X is a 1-D object array of {len(X)} items: numpy cannot treat it as a batch. "
            "Pass np.stack(list(X)) if they are images of one size, or a list of image "
            "file paths."
        )
    if shape is not None and len(shape) >= 1 and shape[0] < min_samples:
        raise ValueError(
            f"X has shape {tuple(shape)}: {shape[0]} samples, at least {min_samples} needed. "
            "Pass a non-empty batch of images or feature vectors."
        )
    if isinstance(dtype, np.dtype) and dtype.kind in "USVMm":
        raise TypeError(
            f"X has dtype {dtype}, which is not numeric. Decode images to pixel arrays "
            "(e.g. with PIL or skimage.io.imread) and pass uint8 or float values."
        )
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize > 8:
        raise TypeError(
            f"X has dtype {dtype} (extended precision), which the network and the float32 "
            "features cannot hold: convert it with X.astype(np.float64)."
        )
    if isinstance(dtype, np.dtype) and dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: X has dtype {dtype}. Pass real values, e.g. "
            "np.abs(X) or X.real."
        )


def _path_message(X) -> str:
    """What to pass instead of one path (a folder, a file or neither)."""
    path = os.fspath(X)
    shown = repr(path if len(path) <= 200 else path[:200] + "...")
    if os.path.isdir(path):
        return (
            f"X is the folder {shown}, not a batch of samples: skmsc takes a list of image "
            f"files, not a folder. Pass skmsc.data.files.list_image_files({shown}), the "
            "image files in it and its sub-folders (recursive=False: that folder only)."
        )
    if os.path.isfile(path):
        return (
            f"X is the one file {shown}, not a batch of samples: pass [{shown}] to use that "
            "image, or a list of image file paths."
        )
    glob = (f" For a glob pattern pass sorted(glob.glob({shown}))."
            if any(c in path for c in "*?[") else "")
    return (
        f"X is the string {shown}, not a batch of samples (and no such file or folder "
        "exists). Pass a list of image file paths (skmsc.data.files.list_image_files(folder) "
        f"lists the images of a folder), or an array of images or feature vectors.{glob}"
    )


def _is_numeric_dtype(dtype) -> bool:
    """For the column types of pandas (numpy or extension dtypes) and polars."""
    if getattr(dtype, "kind", None) in tuple("biufc"):
        return True
    is_numeric = getattr(dtype, "is_numeric", None)  # polars
    try:
        return bool(is_numeric()) if callable(is_numeric) else False
    except TypeError:
        return False


def _check_frame_of_paths(X) -> None:
    """A ``TypeError`` naming the column to pass for a DataFrame of several columns, one
    of which holds image paths (e.g. ``path, label``): only a one-column frame is read
    as files, and the array path would fail on converting the paths to numbers."""
    columns = getattr(X, "columns", None)
    dtypes = getattr(X, "dtypes", None)
    if columns is None or dtypes is None or isinstance(X, np.ndarray):
        return
    try:
        names, types = list(columns), list(dtypes)
    except TypeError:
        return
    if len(names) < 2 or len(names) != len(types):
        return
    candidates = [n for n, t in zip(names, types, strict=True) if not _is_numeric_dtype(t)]
    paths = []
    for name in candidates[:50]:
        try:
            head = list(X[name].head(5))
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
        if head and all(isinstance(v, str | os.PathLike) or type(v).__module__.startswith(
                "PIL") for v in head):
            paths.append(name)
    if not paths:
        return
    column = paths[0]
    others = [n for n in names if n != column]
    labels = (f" If {others[0]!r} holds labels (1 = normal), pass them as y: "
              f"X[{others[0]!r}]." if len(others) == 1 else "")
    raise TypeError(
        f"X is a DataFrame with {len(names)} columns ({', '.join(map(repr, names[:6]))}"
        f"{', ...' if len(names) > 6 else ''}); image files are read from one column of "
        f"paths: pass X[{column!r}].{labels}"
    )


@contextmanager
def explained_non_finite(X):
    """Re-raise scikit-learn's "Input X contains NaN" (whose advice is about
    HistGradientBoosting) with what it means for images and feature vectors."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        if not text.startswith("Input X contains"):
            raise
        raise ValueError(_non_finite_message(
            X, "NaN" if "NaN" in text.splitlines()[0] else "infinity")) from None


def _non_finite_message(X, what: str) -> str:
    try:
        values = np.asarray(X, dtype=np.float64)
        rows = values.reshape(len(values), -1)
        bad = int((~np.isfinite(rows)).any(axis=1).sum())
        ndim = values.ndim
    except (TypeError, ValueError):
        bad, ndim = None, 2
    if ndim >= 3:
        count = "" if bad is None else f": {bad} of {len(rows)} images have NaN or infinite pixels"
        return (
            f"The images in X contain {what}{count}. Replace missing pixels (e.g. "
            "np.nan_to_num(X)) or drop those images: "
            "X[np.isfinite(X).reshape(len(X), -1).all(axis=1)]."
        )
    count = "" if bad is None else f": {bad} of {len(rows)} samples have NaN or infinite values"
    return (
        f"X contains {what}{count}. skmsc's detectors take no missing values: fill them "
        "(e.g. sklearn.impute.SimpleImputer in a Pipeline before the detector, or "
        "np.nan_to_num(X)) or drop those samples: X[np.isfinite(X).all(axis=1)]."
    )


def _check_masked(X: np.ma.MaskedArray) -> None:
    if np.ma.getmaskarray(X).any():
        raise TypeError(
            f"X is a masked array with {int(np.ma.getmaskarray(X).sum())} masked values; "
            "skmsc cannot ignore them (the values under the mask would be used). Fill "
            "them (X.filled(value)) or drop the samples that have them."
        )


def _check_torch_tensor(X) -> None:
    """Tensors numpy cannot convert: say how to convert them (no torch import here)."""
    if not type(X).__module__.startswith("torch") or not hasattr(X, "detach"):
        return
    if str(X.dtype) in ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"):
        raise TypeError(f"X is a torch tensor of dtype {X.dtype}, which numpy cannot hold: "
                        "pass X.float() (or X.to(torch.uint8) for 0-255 pixels).")
    if getattr(X, "device", None) is not None and X.device.type != "cpu":
        raise TypeError(f"X is a torch tensor on {X.device}: pass X.cpu().")
    if getattr(X, "requires_grad", False):
        raise TypeError("X is a torch tensor that requires grad: pass X.detach().")


def _check_nested_lengths(X: Sequence, where: str = "X") -> None:
    """A ``ValueError`` naming the first item whose length differs in nested lists."""
    items = [x for x in X if isinstance(x, list | tuple)]
    if not items:
        return
    if len(items) != len(X) or len({len(x) for x in items}) > 1:
        lengths = [len(x) if isinstance(x, list | tuple) else type(x).__name__ for x in X]
        raise ValueError(
            f"X is a nested list whose items differ in length ({where}: "
            f"{lengths[:6]}{' ...' if len(lengths) > 6 else ''}): samples must all have the "
            "same shape. Pad or resize them, or pass a numpy array."
        )
    _check_nested_lengths(list(itertools.islice((y for x in items for y in x), 10**6)),
                          f"{where}[...]")


def _torch_data_class(X) -> str | None:
    """The torch.utils.data class ``X`` is an instance of (Dataset, DataLoader...), if any;
    found by name, so this module needs no torch."""
    for cls in type(X).__mro__:
        if cls.__module__.startswith("torch.utils.data"):
            return cls.__name__
    return None


def _check_not_torch_dataset(X) -> None:
    kind = _torch_data_class(X)
    if kind is None:
        return
    samples = getattr(X, "samples", None)
    if isinstance(samples, list) and samples and isinstance(samples[0], tuple):
        how = ("It lists its files: pass them, e.g. det.fit([path for path, _ in "
               "dataset.samples]).")
    else:
        how = ("Pass its image files as a list of paths, or its images as one uint8 array "
               "(n, height, width[, 3]) made from a dataset without transforms, e.g. "
               "np.stack([np.asarray(dataset[i][0]) for i in range(len(dataset))]).")
    raise TypeError(
        f"X is a torch {kind} ({type(X).__name__}). skmsc decodes, resizes and normalises "
        f"images itself (its transforms must match the backbone's), so it takes the raw "
        f"images, not tensors a torch pipeline made. {how}"
    )


def _check_sequence(X: Sequence, min_samples: int, container: str | None = None) -> None:
    if len(X) < min_samples:
        raise ValueError(
            f"X is an empty {container or type(X).__name__}: {len(X)} samples, at least "
            f"{min_samples} needed. Pass a non-empty batch of images or feature vectors."
        )
    if any(isinstance(x, bytes) for x in X):
        raise TypeError(
            "X holds bytes objects. If they are file paths, pass them as str "
            "([os.fsdecode(p) for p in paths]); if they are encoded images, decode them "
            "first (e.g. with PIL.Image.open(io.BytesIO(data)))."
        )
    arrays = [x for x in X if hasattr(x, "shape") and hasattr(x, "dtype")]
    if not arrays:
        _check_nested_lengths(X)
        return  # nested lists of numbers: check_array converts or explains
    if len(arrays) != len(X):
        kinds = sorted({type(x).__name__ for x in X})
        raise TypeError(
            f"X mixes arrays with other objects ({', '.join(kinds)}). Pass a list of "
            "arrays of one shape and dtype, or one stacked numpy array."
        )
    first = arrays[0]
    if isinstance(first.dtype, np.dtype) and first.dtype.kind == "c":
        raise ValueError(
            f"Complex data not supported: X is a list of arrays of dtype {first.dtype}. "
            "Pass real values, e.g. [np.abs(x) for x in X] or [x.real for x in X]."
        )
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


EXPECTED_INPUT = (
    "Expected images as an array of shape (n_samples, height, width, 3) (RGB) or "
    "(n_samples, height, width) (grayscale), dtype uint8 (0-255) or float in [0, 1]; "
    "or a 2-D array (n_samples, n_features) of feature vectors."
)


#: Largest maximum of an integer image array that warns: 0-255 pixels that never exceed
#: it (12 % brightness) are more likely another range (0-15, 0-16, 0-31) than dark images.
SMALL_INTEGER_MAX = 31


def check_image_array(X: np.ndarray) -> None:
    """Raise a ``ValueError`` naming the problem if ``X`` is not an image batch we accept.

    Warns (``UserWarning``) when integer images never exceed :data:`SMALL_INTEGER_MAX`:
    they are probably in a small range (e.g. 0-16) that would be read as 0-255."""
    if X.ndim not in (3, 4):
        raise ValueError(f"X has {X.ndim} dimensions, shape {X.shape}. {EXPECTED_INPUT}")
    if X.ndim == 4 and X.shape[-1] != 3:
        if X.shape[1] in (1, 3):
            hint = "It looks channels-first: pass np.moveaxis(X, 1, -1)."
        elif X.shape[-1] == 4:
            hint = "It has 4 channels (RGBA?): drop alpha with X[..., :3]."
        elif X.shape[-1] == 1:
            hint = "It has one channel: pass X[..., 0] for grayscale."
        else:
            hint = f"It has {X.shape[-1]} channels."
        raise ValueError(f"X has shape {X.shape}. {hint} {EXPECTED_INPUT}")
    if X.dtype.kind not in "uif":
        hint = " For binary masks pass X.astype(np.uint8) * 255." if X.dtype.kind == "b" else ""
        raise ValueError(f"X has dtype {X.dtype}.{hint} {EXPECTED_INPUT}")
    if X.size == 0:
        raise ValueError(f"X has shape {X.shape} with no pixels. {EXPECTED_INPUT}")
    low, high = X.min(), X.max()
    if X.dtype.kind in "ui" and 0 < high <= SMALL_INTEGER_MAX and low >= 0:
        warnings.warn(
            f"X is an integer image array whose values span [{low}, {high}], far below "
            f"255: integer pixels are read as 0-255, so these images look nearly black "
            f"(e.g. load_digits().images, 0-16). Scale them to 0-255, e.g. "
            f"(X * (255 / {high})).astype(np.uint8), or pass floats in [0, 1], e.g. "
            f"X / {high}. If they really are that dark, ignore this warning.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    if X.dtype == np.uint8:
        return
    # min/max propagate NaN, and are infinite if any pixel is: one pass finds both.
    if X.dtype.kind == "f" and not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            "X contains NaN or infinity. Replace missing pixels (e.g. np.nan_to_num(X)) "
            "or drop those images."
        )
    if X.dtype.kind == "f" and (low < 0 or high > 1):
        raise ValueError(
            f"Float images must lie in [0, 1]; X spans [{low:g}, {high:g}]. "
            "Divide 0-255 images by 255, or pass them as uint8."
        )
    if X.dtype.kind in "ui" and (low < 0 or high > 255):
        raise ValueError(
            f"Integer images must lie in 0-255; X spans [{low}, {high}]. "
            "Rescale them to floats in [0, 1] (e.g. X / X.max())."
        )


def check_enough_samples(n_samples: int, n_neighbors: int) -> None:
    """A ``ValueError`` naming ``n_samples`` when the LOO scores cannot be computed."""
    if n_samples <= n_neighbors:
        raise ValueError(
            f"n_samples={n_samples} is too few: scoring sums distances to "
            f"n_neighbors={n_neighbors} other training samples, so fit needs at "
            f"least {n_neighbors + 1} samples (or a smaller n_neighbors)."
        )


def check_feature_range(features: np.ndarray) -> None:
    """A ``ValueError`` unless the float32 ``features`` and their squared distances are finite.

    Distances are searched in float32: with values beyond about 1e18 their squares
    overflow and the nearest neighbours found would be wrong without a word.
    """
    if features.size == 0:
        return
    low, high = float(features.min()), float(features.max())  # NaN propagates
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(
            "X has values beyond float32's range (about 3.4e38) once converted to the "
            "float32 the detector computes in: scale the features down (e.g. "
            "sklearn.preprocessing.StandardScaler)."
        )
    largest = max(-low, high)
    limit = np.sqrt(np.finfo(np.float32).max / (4.0 * features.shape[-1]))
    if largest > limit:
        raise ValueError(
            f"X has values up to {largest:.3g}: too large for float32 distances between "
            f"{features.shape[-1]}-d vectors (at most {limit:.3g}). Scale the features "
            "down (e.g. sklearn.preprocessing.StandardScaler)."
        )


def _check_not_one_image(X: np.ndarray) -> None:
    """For an image detector (which scores images of any size): refuse an array that reads
    as one image rather than a batch."""
    if X.ndim == 2:
        raise ValueError(
            f"X has shape {X.shape}: one grayscale image, not a batch of images. For a "
            "single image pass X[None]."
        )
    if X.ndim == 3 and X.shape[-1] in (3, 4):
        raise ValueError(
            f"X has shape {X.shape}, which reads as one image with {X.shape[-1]} channels, "
            f"not a batch of {X.shape[0]} grayscale images {X.shape[-1]} pixels wide. For a "
            "single image pass X[None] (or [path] for a file). For grayscale images that "
            "narrow, pass them as RGB: np.repeat(X[..., None], 3, axis=-1)."
        )


def check_fitted_sample_shape(X: np.ndarray, input_shape, *, has_network: bool) -> None:
    """A ``ValueError`` when ``X`` (an array) cannot be scored by an estimator fitted on
    samples of shape ``input_shape``.

    An image detector (``has_network``) scores image arrays of any size and either channel
    layout, as it scores files: each image is resized and centre-cropped to ``image_size``.
    Only an array that reads as one image rather than a batch is refused, with the
    ``X[None]`` hint. A detector fitted on feature vectors takes 2-D arrays only."""
    if has_network:
        _check_not_one_image(X)
        return
    if X.ndim != 2:
        raise ValueError(
            f"X has shape {X.shape}, but this detector was fitted on feature vectors of "
            f"shape {input_shape}: pass a 2-D array (n_samples, "
            f"{input_shape[0]}), or refit on images to score images."
        )


#: How labels are read wherever skmsc takes them (searches, splitters, scorers, score).
LABELS_HELP = "Labels must be 1 for normal samples and 0 or -1 for anomalies."


def normal_mask(y, *, normal_label=1) -> np.ndarray:
    """The boolean mask of the normal samples of ``y``, checked; see
    :func:`skmsc.model_selection.is_normal`, the public name of this rule."""
    if y is None:
        raise ValueError(f"y is required to tell normal samples from anomalies. {LABELS_HELP}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D; got shape {y.shape}. {LABELS_HELP}")
    if not (isinstance(normal_label, int | np.integer) and normal_label == 1):
        if not np.isscalar(normal_label):
            raise TypeError(f"normal_label must be one label (an int, str or bool), got "
                            f"{type(normal_label).__name__}.")
        normal = y == normal_label
        if len(y) and not normal.any():
            raise ValueError(
                f"normal_label={normal_label!r} does not occur in y, whose labels are "
                f"{np.unique(y).tolist()[:10]}: pass the label of the normal samples."
            )
        return normal
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y has dtype {y.dtype}. {LABELS_HELP}")
    unexpected = np.setdiff1d(np.unique(y), [-1, 0, 1])
    if unexpected.size:
        raise ValueError(f"y holds the labels {unexpected.tolist()}. {LABELS_HELP}")
    return y == 1


class AnomaliesInTrainingWarning(UserWarning):
    """``fit`` was given labels saying some training rows are anomalies.

    The detectors learn what is normal from every row of ``X``; ``y`` is not used to
    leave rows out. The usual cause is scikit-learn's ``GridSearchCV(refit=True)``, which
    refits the best candidate on all rows: use
    :class:`skmsc.model_selection.OneClassGridSearchCV` instead, or fit on ``X[y == 1]``.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from skmsc import AnomaliesInTrainingWarning, KNNDetector
    >>> X, y = np.random.default_rng(0).normal(size=(6, 2)), [1, 1, 1, 1, 0, 0]
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = KNNDetector().fit(X, y)
    >>> [type(w.message).__name__ for w in caught]
    ['AnomaliesInTrainingWarning']
    """


# Warnings about a fit point at the caller's line, outside skmsc and the libraries it runs
# in (e.g. the user's search.fit, not GridSearchCV's refit or torch's decorators inside it).
_LIBRARIES = ("skmsc", "sklearn", "torch")


def _library_dirs() -> tuple[str, ...]:
    modules = [sys.modules.get(name) for name in _LIBRARIES]
    return tuple(os.path.dirname(m.__file__) + os.sep for m in modules
                 if m is not None and getattr(m, "__file__", None))


def caller_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` (called by the caller of this function) that
    names the first frame outside skmsc, scikit-learn and torch."""
    libraries = _library_dirs()
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(libraries):
        frame, level = frame.f_back, level + 1
    return level


def warn_if_labelled_anomalies(y, n_samples: int, estimator_name: str) -> None:
    """Warn when ``y`` (given to ``fit``) marks rows as anomalies that ``fit`` trains on.

    Only labels in skmsc's convention count (1 normal; 0, -1 or False anomaly, with at
    least one of each); any other ``y`` is ignored silently, as scikit-learn's outlier
    detectors ignore it.
    """
    if y is None:
        return
    try:
        labels = np.asarray(y)
    except (TypeError, ValueError):  # ragged or odd objects: not labels in our convention
        return
    if labels.ndim != 1 or len(labels) != n_samples or labels.dtype.kind not in "biuf":
        return
    values = set(np.unique(labels).tolist())
    if not values <= {-1, 0, 1} or 1 not in values or values == {1}:
        return
    n_anomalies = int(np.sum(labels != 1))
    warnings.warn(
        f"{estimator_name}.fit got y marking {n_anomalies} of {n_samples} rows as anomalies "
        "(label 0 or -1), but fit trains on every row of X: y does not leave rows out. "
        "Fit on the normal rows only, X[y == 1]. In a parameter search use "
        "skmsc.model_selection.OneClassGridSearchCV (or OneClassRandomizedSearchCV), whose "
        "refit trains on the normal rows; scikit-learn's GridSearchCV(refit=True) refits "
        "on all of X.",
        AnomaliesInTrainingWarning,
        stacklevel=caller_stacklevel(),
    )
