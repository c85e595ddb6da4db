"""The scikit-learn layer: parameters, validation in ``fit``, fitted attributes, save/load.

- :class:`MeanShiftedContrastiveDetector`: images in, anomaly scores out;
- :class:`MeanShiftedFeatures`: the network half, as a transformer;
- :class:`KNNDetector`: the kNN half, on feature vectors.

All three are importable from :mod:`skmsc` itself, which is where to import them from.
"""

from ._base import AUTO_CONTAMINATION, ConformalGuaranteeWarning, InconsistentVersionWarning
from ._detector import MeanShiftedContrastiveDetector
from ._features import MeanShiftedFeatures
from ._knn_detector import KNNDetector

__all__ = [
    "AUTO_CONTAMINATION",
    "ConformalGuaranteeWarning",
    "InconsistentVersionWarning",
    "KNNDetector",
    "MeanShiftedContrastiveDetector",
    "MeanShiftedFeatures",
]
