"""skmsc: Mean-Shifted Contrastive Loss anomaly detection as a scikit-learn estimator."""

from ._version import __version__

__all__ = [
    "AnomaliesInTrainingWarning",
    "ConformalGuaranteeWarning",
    "InconsistentVersionWarning",
    "KNNDetector",
    "MeanShiftedContrastiveDetector",
    "MeanShiftedFeatures",
    "SlowFitWarning",
    "__version__",
]

# Public names are imported on first use, so that `skmsc.cli` can set OpenMP's
# environment before torch loads (the estimators import torch).
_LAZY = {
    "AnomaliesInTrainingWarning": "._checks",
    "ConformalGuaranteeWarning": "._estimators",
    "InconsistentVersionWarning": "._estimators",
    "KNNDetector": "._estimators",
    "MeanShiftedContrastiveDetector": "._estimators",
    "MeanShiftedFeatures": "._estimators",
    "SlowFitWarning": ".nn._eta",
}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skmsc' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
