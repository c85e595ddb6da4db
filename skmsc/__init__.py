"""skmsc: Mean-Shifted Contrastive Loss anomaly detection as a scikit-learn estimator."""

from importlib import import_module as _import_module

from ._version import __version__

__all__ = [
    "AnomaliesInTrainingWarning",
    "ConformalGuaranteeWarning",
    "DivergenceError",
    "InconsistentVersionWarning",
    "KNNDetector",
    "MeanShiftedContrastiveDetector",
    "MeanShiftedFeatures",
    "SlowFitWarning",
    "__version__",
]

# Public names are imported on first use, so that `skmsc.cli` can set OpenMP's
# environment before torch loads (the estimators import torch). A declared table, name ->
# module: tests/project/test_import_rule.py checks it, and that no other import of skmsc's
# own modules is made in a function (but the command line's).
_LAZY = {
    "AnomaliesInTrainingWarning": "._checks",
    "ConformalGuaranteeWarning": "._estimators",
    "DivergenceError": "._checks",
    "InconsistentVersionWarning": "._estimators",
    "KNNDetector": "._estimators",
    "MeanShiftedContrastiveDetector": "._estimators",
    "MeanShiftedFeatures": "._estimators",
    "SlowFitWarning": ".nn._eta",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
