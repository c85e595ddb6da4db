"""skmsc: Mean-Shifted Contrastive Loss anomaly detection as a scikit-learn estimator."""

from ._version import __version__

__all__ = ["MeanShiftedContrastiveDetector", "__version__"]


def __getattr__(name):
    # Imported on first use, so that `skmsc.cli` can set OpenMP's environment before
    # torch loads (the detector imports torch).
    if name == "MeanShiftedContrastiveDetector":
        from ._detector import MeanShiftedContrastiveDetector

        return MeanShiftedContrastiveDetector
    raise AttributeError(f"module 'skmsc' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), "MeanShiftedContrastiveDetector"])
