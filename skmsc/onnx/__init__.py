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

from importlib import import_module as _import_module

from ._runtime import ONNXDetector

__all__ = ["ONNXDetector", "export_onnx"]

# The exporter imports torch: it is imported when first asked for, so that the runtime
# stays torch-free. A declared table, name -> module (tests/project/test_import_rule.py).
_LAZY = {"export_onnx": "._export"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
