"""The folder format of saved estimators: tensors in safetensors, the rest in JSON.

``joblib.dump``/``pickle`` work too, but loading a pickle can run arbitrary code, so a
pickle from an untrusted source must never be loaded. The format here cannot run code:
reading parses a JSON document and a safetensors file (a header plus raw tensor bytes),
and checks that the two belong together.

This module only formats. What goes into the files, and the checks that the contents fit
together, belong to each estimator (``save``/``load`` methods, in ``skmsc._estimators``);
:func:`load` here only reads the class name and hands over to that class.

A saved estimator is a folder::

    detector.json         format version, class, parameters, scalar fitted attributes,
                          versions, SHA-256 of the tensor file
    tensors.safetensors   the fitted arrays (and network weights, under ``encoder.``);
                          its metadata holds the SHA-256 of the JSON document

Binding. The JSON records the SHA-256 of the tensor file, and the tensor file's metadata
the SHA-256 of the JSON document (canonical form, without that field), so the two files
of one save load together and nothing else does: files from two saves, a truncated,
corrupted or swapped tensor file, or an edited JSON are refused. The hashes are not a
signature: someone who can rewrite both files can make them agree, but still cannot make
``load`` run code, and every value is checked again by the estimator that loads it.

Writing is atomic (:func:`skmsc._fileio.replace_folder`): the new folder is built beside
the target, fsynced and swapped in whole, so an error, an interrupt, a full disk or a
crash during ``save`` leaves the previous model loading exactly as before, and concurrent
saves to one folder end with one whole model. Files get the permissions of any new file
(the umask applies). ``save`` replaces only a folder that is empty or holds a saved model;
it refuses a folder with other files in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save_file

from ._fileio import (
    give_default_mode,
    new_file,
    open_regular_file,
    readable_folder,
    replace_folder,
)
from ._version import __version__

# write/read/Saved/check are the format the estimators use; users call save and load.
__all__ = ["JSON_NAME", "TENSORS_NAME", "load", "save"]

FORMAT = "skmsc.detector"
#: Written by this version; 2 added the tensor file's binding to the JSON document.
FORMAT_VERSION = 2
#: Versions this skmsc reads (version 1 files have the JSON-to-tensors hash only).
READABLE_FORMAT_VERSIONS = (1, 2)
#: File of the JSON document in a saved folder.
JSON_NAME = "detector.json"
#: File of the tensors in a saved folder.
TENSORS_NAME = "tensors.safetensors"
#: Largest JSON document read: ours are a few kB (feature names at most some MB).
MAX_JSON_BYTES = 64 * 2**20
# Key of the JSON document's hash in the tensor file's metadata.
_DOCUMENT_HASH_KEY = "skmsc_document_sha256"
# Attempts at reading a folder that a concurrent save replaces meanwhile.
_READ_ATTEMPTS = 5


@dataclass
class Saved:
    """What :func:`read` returns: the JSON document's parts and the tensors."""

    class_name: str
    params: dict
    unsaved_params: list
    fitted: dict
    tensors: dict


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def document_sha256(document: dict) -> str:
    """SHA-256 of the JSON document in canonical form, leaving out ``tensors_sha256``."""
    body = {k: v for k, v in document.items() if k != "tensors_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def json_param(value):
    """A parameter as JSON, and whether JSON can hold it (``None, False`` otherwise)."""
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None, False  # JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value, True
    if isinstance(value, np.integer | np.floating):
        return value.item(), True
    if isinstance(value, os.PathLike) or type(value).__name__ == "device":  # torch.device
        return str(value), True
    return None, False


def check_replaceable(path: Path) -> None:
    """A ``ValueError`` unless ``save`` may create or replace the folder ``path``.

    It may if ``path`` does not exist, is an empty folder, or holds a saved model (only
    the files ``save`` writes); never a file or a folder holding other files, which
    replacing the folder would delete.
    """
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; save() writes a folder. Pass a folder path.")
    others = sorted(set(os.listdir(path)) - {JSON_NAME, TENSORS_NAME})
    if others:
        listed = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        raise ValueError(
            f"{str(path)!r} holds files that save() did not write ({listed}). save() "
            "replaces the whole folder, so it refuses to delete them: save to a new or "
            "empty folder, or to a folder written by save()."
        )


def write(path, *, class_name: str, params: dict, fitted: dict, tensors: dict) -> Path:
    """Write the folder ``path`` atomically (created, or replaced whole).

    Parameters
    ----------
    path : str or os.PathLike
        A new path, an empty folder, or a folder written by :func:`write`.
    class_name : str
        The estimator's class, which :func:`load` hands the folder to.
    params : dict
        ``get_params(deep=False)``; values JSON cannot hold are listed as unsaved.
    fitted : dict
        JSON-ready fitted attributes (finite numbers only).
    tensors : dict of str to ndarray

    Returns
    -------
    path : pathlib.Path
        The folder written (absolute).
    """
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
    }
    try:
        binding = document_sha256(document)
    except ValueError as exc:  # allow_nan=False: NaN or infinity among the values
        raise ValueError(f"Cannot save a non-finite fitted value: {exc}") from exc
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}

    def fill(folder: Path) -> None:
        json_path = new_file(folder, JSON_NAME)
        tensor_path = folder / TENSORS_NAME
        try:
            save_file(arrays, str(tensor_path), metadata={_DOCUMENT_HASH_KEY: binding})
        except SafetensorError as exc:  # e.g. a full disk: an OSError, as any failed write
            code = re.search(r"os error (\d+)", str(exc))
            raise OSError(int(code.group(1)) if code else None,
                          f"cannot write {tensor_path}: {exc}") from exc
        give_default_mode(tensor_path, json_path)  # safetensors writes 0600
        document["tensors_sha256"] = _sha256_file(tensor_path)
        with open(json_path, "w") as file:
            file.write(json.dumps(document, indent=2, allow_nan=False))

    return replace_folder(path, fill, check_replaceable)


def _reject_constant(name: str):
    raise ValueError(f"it holds {name}, which is not a JSON number")


def _parse_document(text: str, json_path: str) -> dict:
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"{json_path!r} is nested too deeply to be a saved skmsc "
                         "detector: the file is damaged or hostile.") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, too many digits
        raise ValueError(f"{json_path!r} is not valid JSON ({exc}): the file is "
                         "damaged or not from skmsc.save(); save the detector again.") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{json_path!r} is not a saved skmsc detector.")
    version = document.get("format_version")
    if version == 1:
        document.setdefault("class", "MeanShiftedContrastiveDetector")  # early saves
    if isinstance(version, bool) or version not in READABLE_FORMAT_VERSIONS:
        saved_by = document.get("skmsc_version")
        saved_by = (f"skmsc {saved_by}" if isinstance(saved_by, str) and len(saved_by) < 40
                    else "an unknown skmsc version")
        raise ValueError(
            f"{json_path!r} was saved by {saved_by} in format version {version!r}; this "
            f"skmsc {__version__} writes format version {FORMAT_VERSION} and reads versions "
            f"{list(READABLE_FORMAT_VERSIONS)}. Load it with {saved_by} and save it "
            "again with this one, or refit with this skmsc."
        )
    for key, kind in [("params", dict), ("fitted", dict), ("tensors_sha256", str),
                      ("class", str), ("unsaved_params", list)]:
        if not isinstance(document.get(key, [] if key == "unsaved_params" else None), kind):
            raise ValueError(f"{json_path!r} lacks a valid {key!r} entry.")
    return document


def _tensor_metadata(blob: bytes, tensor_path: Path) -> dict:
    """The ``__metadata__`` of a safetensors file (``{}`` if it has none)."""
    size = int.from_bytes(blob[:8], "little") if len(blob) >= 8 else -1
    try:
        if not 0 < size <= len(blob) - 8:
            raise ValueError(f"a header of {size} bytes in a file of {len(blob)}")
        header = json.loads(blob[8 : 8 + size])
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
    except (ValueError, RecursionError) as exc:
        raise ValueError(
            f"{str(tensor_path)!r} is not a valid safetensors file: {exc}"
        ) from None
    metadata = header.get("__metadata__")
    return metadata if isinstance(metadata, dict) else {}


def _read_regular(name, folder_fd, display: Path, limit: int | None = None) -> bytes:
    """The bytes of one file of a saved folder; FileNotFoundError if it is not there."""
    try:
        file = open_regular_file(name, dir_fd=folder_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"cannot read {str(display)!r}: {exc}") from exc
    with file:
        size = os.fstat(file.fileno()).st_size
        if limit is not None and size > limit:
            raise ValueError(f"{str(display)!r} is {size} bytes, more than a saved skmsc "
                             f"detector's JSON can be ({limit}): not a skmsc save.")
        return file.read()


def _read_folder(folder: Path, with_tensors: bool) -> tuple[bytes, bytes | None]:
    """(JSON bytes, tensor bytes) of one saved folder.

    Both files are read through one descriptor of the folder (where the system allows),
    so that a save swapping in a new folder meanwhile cannot mix two saves.
    """
    json_path, tensor_path = folder / JSON_NAME, folder / TENSORS_NAME
    by_descriptor = os.open in os.supports_dir_fd
    try:
        folder_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) \
            if by_descriptor else None
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{str(json_path)!r} does not exist: pass the folder "
                                "written by save().") from None
    try:
        names = (JSON_NAME, TENSORS_NAME) if by_descriptor else (json_path, tensor_path)
        try:
            text = _read_regular(names[0], folder_fd, json_path, MAX_JSON_BYTES)
        except FileNotFoundError:
            raise FileNotFoundError(f"{str(json_path)!r} does not exist: pass the folder "
                                    "written by save().") from None
        blob = None
        if with_tensors:
            try:
                blob = _read_regular(names[1], folder_fd, tensor_path)
            except FileNotFoundError:
                raise FileNotFoundError(f"{str(tensor_path)!r} does not exist: the save "
                                        "is incomplete.") from None
        return text, blob
    finally:
        if folder_fd is not None:
            os.close(folder_fd)


def _identity(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_dev, st.st_ino


def _read_files(path: Path, *, with_tensors: bool = True) -> tuple[dict, bytes | None]:
    """The parsed JSON document and the tensor bytes of ``path``, from one save.

    If a concurrent save replaced the folder and deleted the old one's files while they
    were being read, the read starts again on the new folder.
    """
    for attempt in range(_READ_ATTEMPTS):
        folder = readable_folder(path)
        opened = _identity(folder)
        try:
            raw, blob = _read_folder(folder, with_tensors)
            break
        except FileNotFoundError:
            replaced = opened and _identity(readable_folder(path)) not in ((), opened)
            if attempt + 1 == _READ_ATTEMPTS or not replaced:
                raise
    json_path = str(folder / JSON_NAME)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{json_path!r} is not valid JSON ({exc}): the file is damaged or "
                         "not from skmsc.save(); save the detector again.") from exc
    return _parse_document(text, json_path), blob


def _read_document(path: Path) -> dict:
    return _read_files(path, with_tensors=False)[0]


def _check_binding(document: dict, blob: bytes, path: Path) -> None:
    tensor_path = path / TENSORS_NAME
    actual = hashlib.sha256(blob).hexdigest()
    expected = document["tensors_sha256"]
    if actual != expected:
        raise ValueError(
            f"{str(tensor_path)!r} does not match the SHA-256 recorded in {JSON_NAME} "
            f"(expected {expected[:16]}..., found {actual[:16]}...): the file was "
            "truncated, corrupted or replaced. Do not use it; save the detector again."
        )
    if document["format_version"] >= 2:
        recorded = _tensor_metadata(blob, tensor_path).get(_DOCUMENT_HASH_KEY)
        if recorded != document_sha256(document):
            raise ValueError(
                f"{str(path / JSON_NAME)!r} is not the document {TENSORS_NAME} was saved "
                "with: the JSON was edited, or the files come from different saves. Do "
                "not use it; save the detector again."
            )


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
    document, blob = _read_files(path)
    _check_binding(document, blob, path)
    try:
        tensors = load_tensors(blob)
    except (SafetensorError, ValueError, OSError, TypeError) as exc:
        raise ValueError(
            f"{str(path / TENSORS_NAME)!r} is not a valid safetensors file: {exc}"
        ) from exc
    return Saved(
        class_name=document["class"],
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
    name = _read_document(Path(path))["class"]
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
