"""The kNN scorer and its threshold, shared by every detector in the package.

A sample's normality score is minus the summed squared distance to its ``n_neighbors``
nearest training features. The threshold ``offset_`` is a percentile of the training
samples' *leave-one-out* scores (each scored against the others), so that
``contamination`` is the fraction of new normal samples flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbors import make_index, resolve_knn_algorithm

# Fraction of leave-one-out training scores flagged when contamination="auto".
AUTO_CONTAMINATION = 0.01


@dataclass
class FittedKNN:
    """What fitting the kNN scorer produces (stored on the estimator as ``*_`` attributes)."""

    index: object
    knn_algorithm: str
    train_scores: np.ndarray
    offset: float


def check_enough_samples(n_samples: int, n_neighbors: int) -> None:
    """A ``ValueError`` naming ``n_samples`` when the LOO scores cannot be computed."""
    if n_samples <= n_neighbors:
        raise ValueError(
            f"n_samples={n_samples} is too few: scoring sums distances to "
            f"n_neighbors={n_neighbors} other training samples, so fit needs at "
            f"least {n_neighbors + 1} samples (or a smaller n_neighbors)."
        )


def fit_knn(features, *, n_neighbors, knn_algorithm, contamination, seed) -> FittedKNN:
    """Index ``features`` and set the threshold from their leave-one-out scores."""
    algorithm = resolve_knn_algorithm(knn_algorithm, len(features))
    index = make_index(features, algorithm, random_state=seed)
    loo_distances, _ = index.kneighbors(features, n_neighbors, exclude_self=True)
    train_scores = -loo_distances.sum(axis=1)
    fraction = AUTO_CONTAMINATION if contamination == "auto" else contamination
    offset = float(np.percentile(train_scores, 100.0 * fraction))
    return FittedKNN(index, algorithm, train_scores, offset)


def knn_scores(index, features, n_neighbors) -> np.ndarray:
    """``score_samples``: minus the summed squared distance to the nearest training features."""
    distances, _ = index.kneighbors(features, n_neighbors)
    return -distances.sum(axis=1)
