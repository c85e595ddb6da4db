"""Deploying a fitted detector without torch: one ONNX file and a small runtime class.

- :func:`export_onnx` writes a fitted :class:`~skmsc.MeanShiftedContrastiveDetector` as
  one ONNX file: uint8 images ``(N, H, W, 3)`` of a fixed size in, ``score_samples`` out
  (preprocessing, network, exact kNN against the gallery), with ``offset_`` and the
  versions in the model's metadata. It needs torch, ``onnx`` and ``onnxscript``
  (``pip install "skmsc[onnx]"``).
- :class:`ONNXDetector` scores with such a file and needs only numpy and
  ``onnxruntime``: importing it loads neither torch nor scikit-learn.

``skmsc export MODEL OUT.onnx`` runs :func:`export_onnx` on a saved model folder.
"""

from ._runtime import ONNXDetector

__all__ = ["ONNXDetector", "export_onnx"]


def __getattr__(name):
    # The exporter imports torch: only when asked for, so the runtime stays torch-free.
    if name == "export_onnx":
        from ._export import export_onnx

        return export_onnx
    raise AttributeError(f"module 'skmsc.onnx' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), "export_onnx"})
