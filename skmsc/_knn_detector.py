"""KNNDetector: the method's kNN scorer and threshold on feature vectors.

Paired with :class:`skmsc.MeanShiftedFeatures` in a ``Pipeline(memory=...)``, a search
over ``n_neighbors`` or ``contamination`` reuses the cached fine-tuned features instead of
fine-tuning again for every candidate.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._estimator_info import DocLinkMixin, current_versions, warn_on_version_mismatch
from ._knn import check_enough_samples, fit_knn, knn_scores
from .neighbors import make_index

__all__ = ["KNNDetector"]


class KNNDetector(DocLinkMixin, OutlierMixin, BaseEstimator):
    """Anomaly detector on feature vectors: summed squared distance to the nearest normals.

    The scorer and threshold of :class:`MeanShiftedContrastiveDetector`, without the
    network: use it after :class:`MeanShiftedFeatures` (or on any features). On the same
    features and parameters it gives the same scores as the one-stop detector.

    Parameters
    ----------
    n_neighbors : int, default=2
        Neighbours summed in the anomaly score.
    knn_algorithm : {"auto", "exact", "nndescent"}, default="auto"
        Exact chunked search, or pynndescent's approximate index. ``"auto"`` is exact up
        to 20,000 training samples.
    contamination : "auto" or float, default="auto"
        Expected fraction of anomalies, in (0, 0.5]: ``offset_`` flags that fraction of
        the leave-one-out training scores. ``"auto"`` uses 0.01.
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate index (exact search uses no randomness).

    Attributes
    ----------
    train_features_ : ndarray of shape (n_samples, n_features)
        The training vectors (float32); :meth:`kneighbors` indexes into them.
    train_scores_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training vectors.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    knn_algorithm_ : {"exact", "nndescent"}
        The neighbour search in use.
    versions_ : dict
        Versions of skmsc and its main dependencies at fit time.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    MeanShiftedFeatures : Fine-tuned image features to feed this detector.
    MeanShiftedContrastiveDetector : Images in, anomaly scores out, in one estimator.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc import KNNDetector
    >>> rng = np.random.default_rng(0)
    >>> det = KNNDetector().fit(rng.normal(size=(100, 4)))
    >>> det.predict([[0.0] * 4, [9.0] * 4]).tolist()
    [1, -1]
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "knn_algorithm": [StrOptions({"auto", "exact", "nndescent"})],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_neighbors=2, *, knn_algorithm="auto", contamination="auto",
                 random_state=None):
        self.n_neighbors = n_neighbors
        self.knn_algorithm = knn_algorithm
        self.contamination = contamination
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Index the normal feature vectors ``X`` and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of normal samples.
        y : Ignored
            Present for API consistency.

        Returns
        -------
        self : object
            The fitted detector.
        """
        X = validate_data(self, X, dtype="numeric", ensure_min_samples=1)
        check_enough_samples(len(X), self.n_neighbors)
        features = np.asarray(X, dtype=np.float32)
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        knn = fit_knn(
            features, n_neighbors=self.n_neighbors, knn_algorithm=self.knn_algorithm,
            contamination=self.contamination, seed=seed,
        )
        self.train_features_ = features
        self.train_scores_ = knn.train_scores
        self.offset_ = knn.offset
        self.knn_algorithm_ = knn.knn_algorithm
        self.versions_ = current_versions()
        self._index = knn.index
        self._index_seed = seed
        return self

    def _check_features(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype="numeric", reset=False)
        return np.asarray(X, dtype=np.float32)

    def score_samples(self, X):
        """Minus the summed squared distance to the nearest training vectors.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Higher means more normal.
        """
        features = self._check_features(X)
        return knn_scores(self._index, features, self.n_neighbors)

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for anomalies.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        decision : ndarray of shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for normal samples, -1 for anomalies.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,) of int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def kneighbors(self, X, n_neighbors=None):
        """The nearest training vectors of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        n_neighbors : int, default=None
            How many; ``None`` means the detector's ``n_neighbors``.

        Returns
        -------
        distances : ndarray of shape (n_samples, n_neighbors)
            Squared Euclidean distances, ascending.
        indices : ndarray of shape (n_samples, n_neighbors)
            Row indices into the training data.
        """
        features = self._check_features(X)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        return self._index.kneighbors(features, k)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_index", None)  # rebuilt from train_features_ on load
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "train_features_" not in state:
            return
        warn_on_version_mismatch(state.get("versions_"), type(self).__name__)
        self._index = make_index(
            self.train_features_, self.knn_algorithm_, random_state=self._index_seed
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
