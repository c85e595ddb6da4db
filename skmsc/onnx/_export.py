"""export_onnx: a fitted detector as one ONNX file (images in, ``score_samples`` out)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from sklearn.utils.validation import check_is_fitted

from .._estimators import current_versions
from .._fileio import write_file_atomically
from .._version import __version__
from ..nn._scoring_graph import INPUT_NAME, OUTPUT_NAME, ScoringGraph, export_onnx_model
from ._runtime import FORMAT, FORMAT_VERSION, METADATA_KEY

__all__ = ["export_onnx"]

# Protocol buffers cannot hold a single file over 2 GiB; the gallery is most of it.
_MAX_GALLERY_BYTES = 1800 * 2**20


def export_onnx(detector, path, *, input_size=None, overwrite=False) -> Path:
    """Write a fitted detector's scoring path as one ONNX file.

    The graph maps uint8 images ``(N, H, W, 3)`` of one size (``N`` is free) to
    ``score_samples``: the evaluation preprocessing exactly as the detector runs it on
    the CPU (resize, centre crop, normalisation), the network in float32, the L2
    normalisation and the exact search of the ``n_neighbors`` nearest training features
    (held in the file). :class:`skmsc.onnx.ONNXDetector` scores with it using only
    numpy and onnxruntime. The file's metadata (key ``"skmsc"``, JSON) holds
    ``offset_``, the parameters that shaped the scores and the package versions.

    Parameters
    ----------
    detector : MeanShiftedContrastiveDetector
        Fitted on images (an array or files).
    path : str or os.PathLike
        The ``.onnx`` file to write.
    input_size : tuple of (int, int), default=None
        ``(height, width)`` of the images the file will take. The detector scores images
        of any size, but an ONNX graph with exact preprocessing has one input size.
        ``None``: the size a detector fitted on an array was fitted on; a detector
        fitted on image files needs it: pass the size your images will have.
    overwrite : bool, default=False
        Replace ``path`` if it exists (atomically: a failed export leaves the old file).
        Without it an existing ``path`` is refused before any work, as the command
        line's ``skmsc export`` refuses it without ``--overwrite``.

    Returns
    -------
    path : pathlib.Path

    Notes
    -----
    Scores equal the detector's within 1e-4 when it extracts features in float32
    (``precision="float32"``; ``tests/front_ends/test_onnx_export.py``). A detector whose gallery
    was extracted in bfloat16 (``precision="auto"`` on CPUs with AMX, and on GPUs) is
    exported with that gallery and a float32 network, so its scores differ by bfloat16
    rounding (a warning says so). A detector with ``knn_algorithm_="nndescent"`` is
    exported with the exact search, which finds the true nearest neighbours where the
    approximate index may miss one (a warning says so). A gallery over 1.8 GiB does
    not fit in one ONNX file: shrink it with ``gallery_size``.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> from skmsc import MeanShiftedContrastiveDetector
    >>> from skmsc.onnx import ONNXDetector, export_onnx
    >>> X = np.random.default_rng(0).integers(0, 256, size=(20, 24, 24, 3), dtype=np.uint8)
    >>> det = MeanShiftedContrastiveDetector("efficientnet_lite0", epochs=0, image_size=32,
    ...                                      precision="float32").fit(X)
    >>> path = export_onnx(det, os.path.join(tempfile.mkdtemp(), "det.onnx"))
    >>> onnx_det = ONNXDetector(path)
    >>> bool(np.allclose(onnx_det.score_samples(X), det.score_samples(X), atol=1e-4))
    True
    """
    check_is_fitted(detector, "offset_")
    if getattr(detector, "encoder_", None) is None:
        raise ValueError(
            f"This {type(detector).__name__} scores feature vectors, not images: there is "
            "no network to export. Fit a MeanShiftedContrastiveDetector on images."
        )
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(
            f"{os.fspath(path)} exists; pass overwrite=True to replace it, or choose "
            "another path."
        )
    size = _input_size(detector.input_shape_, input_size)
    gallery = detector.gallery_
    if gallery.nbytes > _MAX_GALLERY_BYTES:
        raise ValueError(
            f"The gallery holds {gallery.nbytes / 2**30:.1f} GiB of features, more than one "
            "ONNX file can hold (2 GiB). Refit with gallery_size set to shrink it."
        )
    _warn_on_inexact_export(detector)
    graph = ScoringGraph(detector.encoder_, detector.backbone_spec_, detector.image_size_,
                         size, gallery, detector.knn_scorer())
    model = export_onnx_model(graph, size)
    _set_metadata(model, _metadata(detector, size))
    import onnx

    onnx.checker.check_model(model, full_check=True)
    return _write_atomically(model.SerializeToString(), Path(path))


def _input_size(input_shape, input_size) -> tuple[int, int]:
    if input_size is not None:
        try:
            height, width = (int(v) for v in input_size)
        except (TypeError, ValueError):
            raise ValueError(f"input_size={input_size!r} is not a (height, width) pair of "
                             "integers.") from None
        if height < 1 or width < 1:
            raise ValueError(f"input_size={input_size!r} must be positive.")
        return height, width  # any size: the detector resizes arrays as it does files
    if input_shape is None:
        raise ValueError(
            "This detector was fitted on image files, which may have any size, but an "
            "exported graph takes one size: pass input_size=(height, width) (the CLI's "
            "--input-size HxW), the size of the images you will score."
        )
    return tuple(int(v) for v in input_shape[:2])


def _warn_on_inexact_export(detector) -> None:
    features = detector.precision_.get("features", "float32")
    if features != "float32":
        warnings.warn(
            f"The detector's gallery was extracted in {features}; the exported network runs "
            f"in float32, so its scores differ from the detector's by {features} rounding "
            "(about 5e-3). Fit with precision='float32' for scores equal to within 1e-4.",
            UserWarning, stacklevel=3,
        )
    if detector.knn_algorithm_ != "exact":
        warnings.warn(
            f"The detector searches its gallery with {detector.knn_algorithm_!r} (approximate); "
            "the exported graph searches it exactly, so a score can be higher (more normal) "
            "where the index missed a nearest neighbour. offset_ is kept as fitted.",
            UserWarning, stacklevel=3,
        )


def _metadata(detector, size) -> dict:
    import onnx
    import onnxscript

    shape = detector.input_shape_
    layout = "any" if shape is None else ("gray" if len(shape) == 2 or shape[2] == 1 else "rgb")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "input_size": list(size),
        "fitted_layout": layout,
        "offset": float(detector.offset_),
        "contamination": detector.contamination,
        "n_neighbors": int(detector.n_neighbors),
        "n_gallery": int(len(detector.gallery_)),
        "n_training_samples": int(len(detector.train_features_)),
        "backbone": detector.backbone_spec_.name,
        "image_size": int(detector.image_size_),
        "batch_size": int(detector.batch_size),
        "knn_search": "exact",
        "fitted_knn_algorithm": detector.knn_algorithm_,
        "fitted_precision": dict(detector.precision_),
        "fitted_versions": dict(detector.versions_),
        "versions": {**current_versions(), "onnx": onnx.__version__,
                     "onnxscript": onnxscript.__version__},
    }


def _set_metadata(model, metadata: dict) -> None:
    model.producer_name, model.producer_version = "skmsc", __version__
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)


def _write_atomically(data: bytes, path: Path) -> Path:
    """Write beside ``path`` and rename (``_fileio.write_file_atomically``: the file and
    its folder fsynced): a failure never leaves a half-written file."""
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a folder; pass the path of the .onnx file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, lambda file: file.write(data))
    return path

