"""The scikit-learn layer: parameters, validation in ``fit``, fitted attributes, save/load.

- :class:`MeanShiftedContrastiveDetector`: images in, anomaly scores out;
- :class:`MeanShiftedFeatures`: the network half, as a transformer;
- :class:`KNNDetector`: the kNN half, on feature vectors.

All three are importable from :mod:`skmsc` itself, which is where to import them from.
The front ends (``cli``, ``onnx``, ``plotting``, ...) import this package, never its
modules (``tests/project/test_architecture.py``): what they need besides the estimators is listed
here.
"""

from ._base import (
    AUTO_CONTAMINATION,
    ConformalGuaranteeWarning,
    InconsistentVersionWarning,
    current_versions,
)
from ._detector import MeanShiftedContrastiveDetector
from ._features import MeanShiftedFeatures
from ._knn_detector import KNNDetector
from ._maps import DEFAULT_MAP_METHOD

__all__ = [
    "AUTO_CONTAMINATION",
    "DEFAULT_MAP_METHOD",
    "ConformalGuaranteeWarning",
    "InconsistentVersionWarning",
    "KNNDetector",
    "MeanShiftedContrastiveDetector",
    "MeanShiftedFeatures",
    "current_versions",
]
