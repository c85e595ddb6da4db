"""ONNXDetector: scoring with an exported detector, with numpy and onnxruntime only.

This module must never import torch or scikit-learn (``tests/front_ends/test_onnx_export.py``
checks it in a fresh process): it is what runs where they are not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._version import __version__

__all__ = ["ONNXDetector", "RUNTIMES"]

#: Metadata key of the exported file, and the format it holds.
METADATA_KEY = "skmsc"
FORMAT = "skmsc.onnx-scorer"
FORMAT_VERSION = 1


#: The runtimes that can run an exported file.
RUNTIMES = ("onnxruntime", "openvino")


class ONNXDetector:
    """Scores images with a detector exported by :func:`skmsc.onnx.export_onnx`.

    The same scores and signs as the detector: ``score_samples`` higher for more normal
    images, ``decision_function = score_samples - offset_`` negative for anomalies,
    ``predict`` +1 normal, -1 anomaly. Needs only numpy and ``onnxruntime`` (or
    ``openvino``).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file written by :func:`~skmsc.onnx.export_onnx` (or
        ``skmsc export``).
    runtime : {"onnxruntime", "openvino"}, default="onnxruntime"
        What runs the file. OpenVINO (PyPI ``openvino``) scored 1.3 times as fast as
        onnxruntime at 224 px on this project's CPU, with the same float32 scores
        (``docs/performance.md``, section 7).
    precision : {"float32", "auto"}, default="float32"
        ``"float32"`` gives the detector's float32 scores. ``"auto"`` (OpenVINO only) lets
        OpenVINO compute in bfloat16 on CPUs that have it natively: faster (1.46 times
        OpenVINO's float32 at 224 px here), with scores that move by bfloat16 rounding, as
        the detector's ``precision="auto"`` does.
    providers : list of str, default=None
        onnxruntime execution providers, in order of preference; ``None`` is
        ``["CPUExecutionProvider"]``. Not used by OpenVINO.
    batch_size : int, default=None
        Images per call of the graph (bounds memory); ``None`` uses the detector's.

    Attributes
    ----------
    offset_ : float
        The detector's threshold.
    input_size_ : tuple of (int, int)
        ``(height, width)`` of the images the file takes.
    metadata_ : dict
        Everything the file records: parameters, the fitted layout, versions.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.onnx import ONNXDetector, export_onnx
    >>> X = np.random.default_rng(0).integers(0, 256, size=(20, 24, 24, 3), dtype=np.uint8)
    >>> det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=32,
    ...                                      precision="float32").fit(X)
    >>> onnx_det = ONNXDetector(export_onnx(det, os.path.join(tempfile.mkdtemp(), "d.onnx")))
    >>> onnx_det.input_size_, bool((onnx_det.predict(X) == det.predict(X)).all())
    ((24, 24), True)
    """

    def __init__(self, path, *, runtime="onnxruntime", precision="float32", providers=None,
                 batch_size=None):
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime={runtime!r} is not one of {RUNTIMES}.")
        if precision not in ("float32", "auto") or (precision == "auto"
                                                   and runtime != "openvino"):
            raise ValueError(f"precision={precision!r} is not available: onnxruntime runs "
                             "the file in float32; precision='auto' needs runtime='openvino'.")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer.")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist: pass the .onnx file "
                                    "written by skmsc export.")
        load = _load_onnxruntime if runtime == "onnxruntime" else _load_openvino
        self._run, text = load(path, precision=precision, providers=providers)
        self.metadata_ = _parse_metadata(text, path)
        self.offset_ = float(self.metadata_["offset"])
        self.input_size_ = tuple(int(v) for v in self.metadata_["input_size"])
        self.runtime, self.precision, self.batch_size = runtime, precision, batch_size

    def score_samples(self, X) -> np.ndarray:
        """Normality scores: minus the summed squared distance to the nearest normals.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            uint8 images (or integers in 0-255) of size ``input_size_``; grayscale ones
            are replicated to RGB, as the detector does.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            Higher means more normal.
        """
        images = self._images(X)
        step = self.batch_size or int(self.metadata_.get("batch_size", 64))
        parts = [self._run(images[start : start + step])
                 for start in range(0, len(images), step)]
        return np.concatenate(parts).astype(np.float64, copy=False)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for anomalies.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            As in :meth:`score_samples`.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for normal images, -1 for anomalies.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, 3])
            As in :meth:`score_samples`.

        Returns
        -------
        labels : ndarray of shape (n_samples,) of int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def _images(self, X) -> np.ndarray:
        """``X`` as a contiguous uint8 ``(n, H, W, 3)`` array, or an error naming the fix."""
        X = np.asarray(X)
        height, width = self.input_size_
        if X.dtype.kind not in "ui":
            raise TypeError(
                f"ONNXDetector takes uint8 images (0-255), got dtype {X.dtype}: the file "
                "reproduces the detector's preprocessing of uint8 pixels. Convert float "
                "images in [0, 1] with np.round(X * 255).astype(np.uint8)."
            )
        layout = self.metadata_.get("fitted_layout", "any")
        allowed = {"gray": [3], "rgb": [4], "any": [3, 4]}[layout]
        if X.ndim not in allowed or (X.ndim == 4 and X.shape[3] != 3) or len(X) == 0:
            expected = {"gray": f"(n, {height}, {width})",
                        "rgb": f"(n, {height}, {width}, 3)",
                        "any": f"(n, {height}, {width}) or (n, {height}, {width}, 3)"}[layout]
            raise ValueError(f"X has shape {X.shape}; this model takes {expected} images "
                             "with n >= 1, as the detector was fitted on.")
        if X.shape[1:3] != (height, width):
            raise ValueError(
                f"X holds {X.shape[1]}x{X.shape[2]} images; this model was exported for "
                f"{height}x{width}. Resize them first, or export again with "
                f"input_size=({X.shape[1]}, {X.shape[2]}) (detectors fitted on files)."
            )
        if X.dtype != np.uint8:
            if X.min() < 0 or X.max() > 255:
                raise ValueError(f"X holds values in [{X.min()}, {X.max()}]; integer "
                                 "images must lie in 0-255.")
            X = X.astype(np.uint8)
        if X.ndim == 3:
            X = np.repeat(X[..., None], 3, axis=3)
        return np.ascontiguousarray(X)


def _load_onnxruntime(path: Path, *, precision, providers):
    """(run(batch) -> scores, metadata text) with onnxruntime."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError("ONNXDetector needs onnxruntime: pip install onnxruntime (or "
                          "pip install 'skmsc[onnx]').") from exc
    try:
        session = onnxruntime.InferenceSession(
            str(path), providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # onnxruntime raises its own types for bad files
        raise ValueError(f"{str(path)!r} is not a readable ONNX model: {exc}") from exc
    name = session.get_inputs()[0].name
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return (lambda batch: session.run(None, {name: batch})[0]), text


def _load_openvino(path: Path, *, precision, providers):
    """(run(batch) -> scores, metadata text) with OpenVINO on the CPU."""
    try:
        import openvino
    except ImportError as exc:
        raise ImportError("runtime='openvino' needs OpenVINO: pip install openvino.") from exc
    core = openvino.Core()
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # OpenVINO raises its own types for bad files
        raise ValueError(f"{str(path)!r} is not a readable ONNX model: {exc}") from exc
    try:
        text = model.get_rt_info(["framework", METADATA_KEY]).astype(str)
    except Exception:  # no such entry: not written by skmsc export
        text = None
    config = {"INFERENCE_PRECISION_HINT": "f32"} if precision == "float32" else {}
    compiled = core.compile_model(model, "CPU", config)
    return (lambda batch: compiled(batch)[0]), text


def _parse_metadata(text, path: Path) -> dict:
    try:
        metadata = json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} was not written by skmsc export: its metadata "
                         f"lacks a valid {METADATA_KEY!r} entry.")
    if metadata.get("format_version") != FORMAT_VERSION:
        versions = metadata.get("versions")
        saved_by = versions.get("skmsc") if isinstance(versions, dict) else None
        saved_by = (f"skmsc {saved_by}" if isinstance(saved_by, str) and len(saved_by) < 40
                    else "an unknown skmsc version")
        raise ValueError(
            f"{str(path)!r} was exported by {saved_by} in format version "
            f"{metadata.get('format_version')!r}; this skmsc {__version__} reads format "
            f"version {FORMAT_VERSION}. Export it again with this skmsc."
        )
    return metadata
