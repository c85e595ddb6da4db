"""Saving fitted detectors without pickle: tensors in safetensors, the rest in JSON.

``joblib.dump``/``pickle`` work too, but loading a pickle can run arbitrary code, so a
pickle from an untrusted source must never be loaded. The format here cannot run code:
``load`` reads a JSON document and a safetensors file (a header plus raw tensor bytes),
checks the tensor file against the SHA-256 recorded in the JSON, checks every shape, and
rebuilds the network from its architecture name with the saved weights.

A saved detector is a folder::

    detector.json         format version, parameters, scalar fitted attributes,
                          versions, SHA-256 of the tensor file
    tensors.safetensors   train_features_, train_scores_, center_, encoder.* weights

The SHA-256 detects a truncated, corrupted or swapped tensor file. It is not a signature:
someone who can rewrite both files can make them consistent, but still cannot make
``load`` run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from ._version import __version__
from .backbones import BACKBONES

__all__ = ["load", "save"]

FORMAT = "skmsc.detector"
FORMAT_VERSION = 1
JSON_NAME = "detector.json"
TENSORS_NAME = "tensors.safetensors"
# Fitted attributes stored in the JSON (everything else is a tensor or rebuilt on load).
_SCALAR_ATTRS = (
    "image_size_", "offset_", "loss_curve_", "input_shape_", "n_features_in_",
    "versions_", "knn_algorithm_", "device_", "validation_scores_", "best_epoch_",
)
_ARRAY_ATTRS = ("train_features_", "train_scores_", "center_")
_ENCODER_PREFIX = "encoder."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_param(value):
    """A parameter as JSON, or ``None`` with a flag when JSON cannot hold it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value, True
    if isinstance(value, os.PathLike | torch.device):
        return str(value), True
    if isinstance(value, np.integer | np.floating):
        return value.item(), True
    return None, False


def save(detector, path: str | os.PathLike) -> Path:
    """Save a fitted detector to the folder ``path`` (created; existing files replaced).

    Parameters
    ----------
    detector : MeanShiftedContrastiveDetector
        A fitted detector.
    path : str or os.PathLike
        Folder to write ``detector.json`` and ``tensors.safetensors`` into.

    Returns
    -------
    path : pathlib.Path
        The folder.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.persistence import save
    >>> det = MeanShiftedContrastiveDetector().fit(np.random.default_rng(0).normal(size=(50, 4)))
    >>> folder = save(det, os.path.join(tempfile.mkdtemp(), "detector"))
    >>> sorted(p.name for p in folder.iterdir())
    ['detector.json', 'tensors.safetensors']
    """
    from safetensors.numpy import save_file
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(detector)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; save() writes a folder. Pass a folder path.")
    path.mkdir(parents=True, exist_ok=True)

    tensors = {name: np.ascontiguousarray(getattr(detector, name)) for name in _ARRAY_ATTRS}
    if detector.encoder_ is not None:
        for key, value in detector.encoder_.state_dict().items():
            tensors[_ENCODER_PREFIX + key] = value.detach().cpu().contiguous().numpy()
    tensor_path = path / TENSORS_NAME
    save_file(tensors, str(tensor_path))

    params, unsaved = {}, []
    for name, value in detector.get_params(deep=False).items():
        params[name], ok = _json_param(value)
        if not ok:
            unsaved.append(name)  # e.g. a RandomState instance: only matters for refitting
    # input_shape_ is None and n_features_in_ absent for a detector fitted on image files.
    fitted = {name: getattr(detector, name, None) for name in _SCALAR_ATTRS}
    fitted["device_"] = str(fitted["device_"])
    if fitted["input_shape_"] is not None:
        fitted["input_shape_"] = list(fitted["input_shape_"])
    fitted["offset_"] = float(fitted["offset_"])
    fitted["loss_curve_"] = [float(v) for v in fitted["loss_curve_"]]
    if fitted["validation_scores_"] is not None:
        fitted["validation_scores_"] = [float(v) for v in fitted["validation_scores_"]]
    fitted["best_epoch_"] = int(fitted["best_epoch_"] or 0)
    if fitted["n_features_in_"] is not None:
        fitted["n_features_in_"] = int(fitted["n_features_in_"])
    fitted["backbone"] = None if detector.backbone_spec_ is None else detector.backbone_spec_.name
    fitted["index_seed"] = int(detector._index_seed)
    if hasattr(detector, "feature_names_in_"):
        fitted["feature_names_in_"] = [str(n) for n in detector.feature_names_in_]
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": type(detector).__name__,
        "skmsc_version": __version__,
        "params": params,
        "unsaved_params": unsaved,
        "fitted": fitted,
        "tensors_sha256": _sha256(tensor_path),
    }
    (path / JSON_NAME).write_text(json.dumps(document, indent=2))
    return path


def _load_document(path: Path) -> dict:
    json_path = path / JSON_NAME
    if not json_path.is_file():
        raise FileNotFoundError(
            f"{str(json_path)!r} does not exist: pass the folder written by save()."
        )
    try:
        document = json.loads(json_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(json_path)!r} is not valid JSON ({exc}): the file is "
                         "damaged or not from skmsc.save(); save the detector again.") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{str(json_path)!r} is not a saved skmsc detector.")
    if document.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{str(json_path)!r} has format version {document.get('format_version')!r}; "
            f"this skmsc ({__version__}) reads version {FORMAT_VERSION}. Load it with the "
            "skmsc version that saved it and save it again."
        )
    for key, kind in [("params", dict), ("fitted", dict), ("tensors_sha256", str)]:
        if not isinstance(document.get(key), kind):
            raise ValueError(f"{str(json_path)!r} lacks a valid {key!r} entry.")
    return document


def _load_tensors(path: Path, expected_sha256: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    tensor_path = path / TENSORS_NAME
    if not tensor_path.is_file():
        raise FileNotFoundError(f"{str(tensor_path)!r} does not exist: the save is incomplete.")
    actual = _sha256(tensor_path)
    if actual != expected_sha256:
        raise ValueError(
            f"{str(tensor_path)!r} does not match the SHA-256 recorded in {JSON_NAME} "
            f"(expected {expected_sha256[:16]}..., found {actual[:16]}...): the file was "
            "truncated, corrupted or replaced. Do not use it; save the detector again."
        )
    try:
        return load_file(str(tensor_path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise ValueError(f"{str(tensor_path)!r} is not a valid safetensors file: {exc}") from exc


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"Inconsistent saved detector: {message}.")


def load(path: str | os.PathLike):
    """Load a detector written by :func:`save`; no code from the files can run.

    Parameters
    ----------
    path : str or os.PathLike
        The folder given to :func:`save`.

    Returns
    -------
    detector : MeanShiftedContrastiveDetector
        Fitted, on the saved device if this machine has it, else on the CPU.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.persistence import load, save
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> det = MeanShiftedContrastiveDetector().fit(X)
    >>> loaded = load(save(det, os.path.join(tempfile.mkdtemp(), "detector")))
    >>> bool(np.array_equal(loaded.score_samples(X), det.score_samples(X)))
    True
    """
    from ._detector import MeanShiftedContrastiveDetector

    path = Path(path)
    document = _load_document(path)
    tensors = _load_tensors(path, document["tensors_sha256"])
    fitted = document["fitted"]

    detector = MeanShiftedContrastiveDetector()
    try:
        detector.set_params(**document["params"])
        detector._validate_params()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Saved parameters are not valid: {exc}") from exc

    for name in _ARRAY_ATTRS:
        _check(name in tensors, f"tensor {name} is missing")
    features, scores, center = (tensors[name] for name in _ARRAY_ATTRS)
    _check(features.ndim == 2 and features.dtype == np.float32,
           "train_features_ is not 2-D float32")
    _check(scores.shape == (len(features),), "train_scores_ does not match train_features_")
    _check(center.shape == (features.shape[1],), "center_ does not match train_features_")
    _check(len(features) > detector.n_neighbors, "fewer training samples than n_neighbors + 1")
    try:
        # Saved before the safeguard existed: the last epoch was kept.
        fitted.setdefault("validation_scores_", None)
        fitted.setdefault("best_epoch_", len(fitted.get("loss_curve_", [])))
        state = {name: fitted[name] for name in _SCALAR_ATTRS}
        if state["input_shape_"] is not None:
            state["input_shape_"] = tuple(int(v) for v in state["input_shape_"])
        if state["n_features_in_"] is None:
            del state["n_features_in_"]
        state["offset_"] = float(state["offset_"])
        state["_index_seed"] = int(fitted["index_seed"])
        backbone = fitted["backbone"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"Saved fitted attributes are incomplete or malformed: {exc!r}") from exc
    _check(state["knn_algorithm_"] in ("exact", "nndescent"), "unknown knn_algorithm_")
    encoder_state = {
        key[len(_ENCODER_PREFIX):]: torch.from_numpy(value)
        for key, value in tensors.items() if key.startswith(_ENCODER_PREFIX)
    }
    if backbone is None:
        _check(not encoder_state and state["input_shape_"] is not None
               and len(state["input_shape_"]) == 1,
               "feature-vector detector with network weights or image shape")
        state["encoder_"] = None
        state["backbone_spec_"] = None
    else:
        _check(backbone in BACKBONES, f"unknown backbone {backbone!r}")
        spec = BACKBONES[backbone]
        _check(features.shape[1] == spec.feature_dim, "feature size does not match the backbone")
        state["encoder_"] = encoder_state
        state["backbone_spec_"] = spec
    if "feature_names_in_" in fitted:
        state["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=object)
    state.update(train_features_=features, train_scores_=scores.astype(np.float64),
                 center_=center)
    try:
        # __setstate__ rebuilds the network (weights=None, then these weights, strict
        # key and shape matching) and the kNN index, exactly as for a joblib load.
        detector.__setstate__({**detector.__dict__, **state})
    except RuntimeError as exc:
        raise ValueError(
            f"The saved network weights do not fit backbone {backbone!r}: {exc}"
        ) from exc
    return detector
