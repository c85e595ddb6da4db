"""skmsc: Mean-Shifted Contrastive Loss anomaly detection as a scikit-learn estimator."""

from ._detector import MeanShiftedContrastiveDetector
from ._version import __version__

__all__ = ["MeanShiftedContrastiveDetector", "__version__"]
