"""The folder format of saved estimators: tensors in safetensors, the rest in JSON.

``joblib.dump``/``pickle`` work too, but loading a pickle can run arbitrary code, so a
pickle from an untrusted source must never be loaded. The format here cannot run code:
reading parses a JSON document and a safetensors file (a header plus raw tensor bytes)
and checks the tensor file against the SHA-256 recorded in the JSON.

This module only formats. What goes into the files, and the checks that the contents fit
together, belong to each estimator (``save``/``load`` methods, in ``skmsc._estimators``);
:func:`load` here only reads the class name and hands over to that class.

A saved estimator is a folder::

    detector.json         format version, class, parameters, scalar fitted attributes,
                          versions, SHA-256 of the tensor file
    tensors.safetensors   the fitted arrays (and network weights, under ``encoder.``)

The SHA-256 detects a truncated, corrupted or swapped tensor file. It is not a signature:
someone who can rewrite both files can make them consistent, but still cannot make
``load`` run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ._version import __version__

# write/read/Saved/check are the format the estimators use; users call save and load.
__all__ = ["JSON_NAME", "TENSORS_NAME", "load", "save"]

FORMAT = "skmsc.detector"
FORMAT_VERSION = 1
#: File of the JSON document in a saved folder.
JSON_NAME = "detector.json"
#: File of the tensors in a saved folder.
TENSORS_NAME = "tensors.safetensors"


@dataclass
class Saved:
    """What :func:`read` returns: the JSON document's parts and the tensors."""

    class_name: str
    params: dict
    unsaved_params: list
    fitted: dict
    tensors: dict


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def json_param(value):
    """A parameter as JSON, and whether JSON can hold it (``None, False`` otherwise)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value, True
    if isinstance(value, np.integer | np.floating):
        return value.item(), True
    if isinstance(value, os.PathLike) or type(value).__name__ == "device":  # torch.device
        return str(value), True
    return None, False


def write(path, *, class_name: str, params: dict, fitted: dict, tensors: dict) -> Path:
    """Write the folder ``path`` (created; existing files replaced).

    Parameters
    ----------
    path : str or os.PathLike
    class_name : str
        The estimator's class, which :func:`load` hands the folder to.
    params : dict
        ``get_params(deep=False)``; values JSON cannot hold are listed as unsaved.
    fitted : dict
        JSON-ready fitted attributes.
    tensors : dict of str to ndarray

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; save() writes a folder. Pass a folder path.")
    path.mkdir(parents=True, exist_ok=True)
    tensor_path = path / TENSORS_NAME
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tensor_path))
    saved_params, unsaved = {}, []
    for name, value in params.items():
        saved_params[name], ok = json_param(value)
        if not ok:
            unsaved.append(name)  # e.g. a RandomState instance: only matters for refitting
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": class_name,
        "skmsc_version": __version__,
        "params": saved_params,
        "unsaved_params": unsaved,
        "fitted": fitted,
        "tensors_sha256": _sha256(tensor_path),
    }
    (path / JSON_NAME).write_text(json.dumps(document, indent=2))
    return path


def _read_document(path: Path) -> dict:
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


def _read_tensors(path: Path, expected_sha256: str) -> dict[str, np.ndarray]:
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


def read(path) -> Saved:
    """Read and check the folder ``path`` written by :func:`write`; no code can run.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    saved : Saved
    """
    path = Path(path)
    document = _read_document(path)
    tensors = _read_tensors(path, document["tensors_sha256"])
    return Saved(
        class_name=str(document.get("class", "MeanShiftedContrastiveDetector")),
        params=document["params"], unsaved_params=list(document.get("unsaved_params", [])),
        fitted=document["fitted"], tensors=tensors,
    )


def check(condition: bool, message: str) -> None:
    """A ``ValueError`` about an inconsistent save unless ``condition``."""
    if not condition:
        raise ValueError(f"Inconsistent saved detector: {message}.")


#: Estimator classes that :func:`load` hands folders to, by name (filled by the estimators
#: as they are defined, so that this module never imports them).
LOADERS: dict[str, type] = {}


def save(estimator, path) -> Path:
    """Save a fitted skmsc estimator to the folder ``path``: ``estimator.save(path)``.

    Parameters
    ----------
    estimator : MeanShiftedContrastiveDetector, KNNDetector or MeanShiftedFeatures
        A fitted estimator.
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
    return estimator.save(path)


def load(path):
    """Load an estimator written by :func:`save`, of the class the folder names.

    Parameters
    ----------
    path : str or os.PathLike
        The folder given to :func:`save`.

    Returns
    -------
    estimator : MeanShiftedContrastiveDetector, KNNDetector or MeanShiftedFeatures
        Fitted; a network is on the saved device if this machine has it, else on the CPU.

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
    name = _read_document(Path(path)).get("class", "MeanShiftedContrastiveDetector")
    package = sys.modules[__package__]
    if name not in LOADERS and name in getattr(package, "__all__", ()):
        # skmsc imports its public estimators on first use, and they register here.
        getattr(package, name)
    if name not in LOADERS:
        raise ValueError(
            f"{str(path)!r} holds a {name!r}, which this skmsc cannot load; load it with "
            f"one of {sorted(LOADERS)} after importing it from skmsc."
        )
    return LOADERS[name].load(path)
