"""skmsc: Mean-Shifted Contrastive Loss anomaly detection as a scikit-learn estimator."""

from ._detector import MeanShiftedContrastiveDetector
from ._estimator_info import InconsistentVersionWarning
from ._features import MeanShiftedFeatures
from ._knn_detector import KNNDetector
from ._version import __version__

__all__ = [
    "InconsistentVersionWarning",
    "KNNDetector",
    "MeanShiftedContrastiveDetector",
    "MeanShiftedFeatures",
    "__version__",
]
