"""A smaller kNN gallery: greedy coreset or k-means centres, and its leave-one-out scores.

The score of the method is a distance to the nearest training features; scoring costs
one matrix product per gallery vector, so shrinking the gallery speeds scoring up
proportionally. PatchCore keeps a greedy k-centre coreset (the training vectors that
best cover the set: each new one is the vector farthest from those already kept); the
MSC authors suggest k-means centres. Both are here.

The threshold needs *leave-one-out* scores of the training samples: each scored as a
fresh sample would be, against the gallery it would face without itself. A training
vector outside a coreset faces the coreset as it is; one inside it faces the coreset
less itself. For k-means, a sample's own centre is replaced by the mean of its cluster
without it (a cluster of one has no centre left); the other centres stay as fitted.
``benchmarks/gallery_threshold.py`` measures how many fresh normal images the threshold
then flags, against the ``contamination`` asked for: about as asked for k-means; too few
for a coreset, whose members (the training vectors farthest from the rest) score much
lower against the coreset less themselves than a new sample does, so the threshold
moves down whenever ``contamination`` is near or below the members' share.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

__all__ = ["REDUCTIONS", "ReducedGallery", "gallery_rows", "leave_one_out_distances",
           "reduce_gallery"]

#: The ways to shrink a gallery (the values of the detectors' ``gallery_reduction``).
REDUCTIONS = ("coreset", "kmeans")
# k-means iterations (Lloyd): the gallery only has to cover the features well.
_KMEANS_MAX_ITER = 50


def gallery_rows(gallery_size, n_samples: int) -> int:
    """How many gallery vectors ``gallery_size`` (None, a count or a fraction) means.

    Examples
    --------
    >>> from skmsc._gallery import gallery_rows
    >>> gallery_rows(None, 6000), gallery_rows(600, 6000), gallery_rows(0.01, 6000)
    (6000, 600, 60)
    """
    if gallery_size is None:
        return n_samples
    if isinstance(gallery_size, Integral) and not isinstance(gallery_size, bool):
        return min(int(gallery_size), n_samples)
    return min(n_samples, max(1, int(round(float(gallery_size) * n_samples))))


class ReducedGallery:
    """The vectors searched and how each training sample relates to them.

    Attributes
    ----------
    vectors : ndarray of shape (m, d), float32
    rows : ndarray of shape (m,) or None
        For a coreset, the training rows kept (in the order chosen).
    labels : ndarray of shape (n,) or None
        For k-means, each training sample's centre.
    counts : ndarray of shape (m,) or None
        For k-means, the size of each centre's cluster.
    """

    def __init__(self, vectors, rows=None, labels=None, counts=None):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.rows, self.labels, self.counts = rows, labels, counts


def reduce_gallery(features: np.ndarray, size: int, method: str, seed: int) -> ReducedGallery:
    """A gallery of ``size`` vectors standing for ``features``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc._gallery import reduce_gallery
    >>> X = np.array([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5], [9, 0]], dtype=np.float32)
    >>> sorted(reduce_gallery(X, 3, "coreset", seed=0).rows.tolist())
    [0, 2, 4]
    >>> reduce_gallery(X, 3, "kmeans", seed=0).counts.tolist()
    [2, 2, 1]
    """
    features = np.asarray(features, dtype=np.float32)
    if method == "coreset":
        rows = _greedy_coreset(features, size, seed)
        return ReducedGallery(features[rows], rows=rows)
    if method == "kmeans":
        return _kmeans(features, size, seed)
    raise ValueError(f"Unknown gallery reduction {method!r}; use one of {REDUCTIONS}.")


def _greedy_coreset(features: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Greedy k-centre selection: start at a seeded vector, then add the farthest one."""
    n = len(features)
    chosen = np.empty(size, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(n)
    sq_norms = np.einsum("nd,nd->n", features, features)
    nearest = np.full(n, np.inf, dtype=np.float64)
    for i in range(1, size):
        latest = features[chosen[i - 1]]
        # Squared distances to the vector just added, in float64 from float32 products.
        d2 = sq_norms + sq_norms[chosen[i - 1]] - 2.0 * (features @ latest).astype(np.float64)
        np.minimum(nearest, np.maximum(d2, 0.0), out=nearest)
        nearest[chosen[i - 1]] = -1.0  # never chosen twice (distances are never negative)
        chosen[i] = int(np.argmax(nearest))
    return chosen


def _kmeans(features: np.ndarray, size: int, seed: int) -> ReducedGallery:
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=size, n_init=1, max_iter=_KMEANS_MAX_ITER, random_state=seed)
    labels = kmeans.fit_predict(features)
    counts = np.bincount(labels, minlength=size)
    keep = counts > 0  # an emptied cluster has no centre worth searching
    renumber = np.cumsum(keep) - 1
    return ReducedGallery(kmeans.cluster_centers_[keep], labels=renumber[labels],
                          counts=counts[keep])


def leave_one_out_distances(index, features: np.ndarray, gallery: ReducedGallery,
                            k: int) -> np.ndarray:
    """Squared distances ``(n, k)`` of each training sample to its ``k`` nearest in the
    gallery it would face without itself (see the module docstring)."""
    distances, found = index.kneighbors(features, k + 1)
    if gallery.rows is not None:
        position = np.full(len(features), -1, dtype=np.int64)
        position[gallery.rows] = np.arange(len(gallery.rows))
        # A coreset member drops its own entry; any other sample (or a member that an
        # approximate search did not find) drops the farthest of the k + 1.
        drop = found == position[:, None]
        drop[~drop.any(axis=1), -1] = True
        return distances[~drop].reshape(len(features), k)
    # k-means: the own centre moves to the mean of its cluster without the sample, so
    # (c / (c - 1))**2 times as far in squared distance; a cluster of one has none left.
    # Moved farther, it stays among the k nearest only if it beats the k + 1 found.
    counts = gallery.counts[gallery.labels].astype(np.float64)[:, None]
    moved = distances * (counts / np.maximum(counts - 1, 1)) ** 2
    own = found == gallery.labels[:, None]
    distances = np.where(own, np.where(counts > 1, moved, np.inf), distances)
    return np.sort(distances, axis=1)[:, :k]
