"""KNNDetector: the method's kNN scorer and threshold on feature vectors.

Paired with :class:`skmsc.MeanShiftedFeatures` in a ``Pipeline(memory=...)``, a search
over ``n_neighbors`` or ``contamination`` reuses the cached fine-tuned features instead of
fine-tuning again for every candidate.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import (
    check_feature_range,
    check_input_container,
    explained_non_finite,
)
from ._base import (
    KNN_PARAMETER_CONSTRAINTS,
    KNNScorerMixin,
    SkmscEstimatorMixin,
    check_training_set,
    feature_copy,
    store_params,
    validated_fit_array,
)
from ._saved_fields import require
from ._state import fits_aside

__all__ = ["KNNDetector"]


class KNNDetector(KNNScorerMixin, SkmscEstimatorMixin, OutlierMixin, BaseEstimator):
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
        Fraction of new *normal* samples to flag (the false-alarm rate), in (0, 0.5]:
        ``offset_`` is that quantile of the leave-one-out training scores. ``"auto"`` uses
        0.01. Move it after fitting with :meth:`set_threshold` (no refit).
    gallery_size : int, float or None, default=None
        Shrink the searched gallery to this many vectors (an int) or this fraction of
        the training samples (a float in (0, 1]); ``None`` searches every training
        feature. Scoring time falls in proportion; ROC-AUC costs are measured in
        ``docs/performance.md`` (``benchmarks/gallery.py``). The threshold still comes
        from leave-one-out scores: each training sample is scored against the gallery it
        would face without itself.
    gallery_reduction : {"kmeans", "coreset"}, default="kmeans"
        How ``gallery_size`` shrinks the gallery: k-means centres (Lloyd, 50 iterations;
        the better ROC-AUC in ``docs/performance.md``, slower to fit), or a greedy
        k-centre coreset of training features (PatchCore's; fast, keeps real training
        samples, but its threshold flags fewer new normal samples than ``contamination``
        asks, down to a sixth of it in ``docs/performance.md``; a warning says so).
    random_state : int, RandomState instance or None, default=None
        Seeds the approximate index and the gallery reduction (exact search of the whole
        gallery uses no randomness).

    Attributes
    ----------
    train_features_ : ndarray of shape (n_samples, n_features)
        The training vectors (float32).
    gallery_ : ndarray of shape (n_gallery, n_features)
        The vectors searched when scoring: ``train_features_`` itself, or the k-means
        centres or coreset ``gallery_size`` asked for. :meth:`kneighbors` indexes into it.
    train_scores_ : ndarray of shape (n_samples,)
        Leave-one-out ``score_samples`` of the training vectors.
    offset_ : float
        Threshold: ``decision_function = score_samples - offset_``.
    contamination_ : float
        The fraction ``offset_`` is set for (``"auto"`` resolved).
    decision_scores_ : ndarray of shape (n_samples,)
        PyOD's name: outlier scores of the training samples (higher = more abnormal),
        ``-train_scores_``. Derived from the fitted state, as are the next two.
    threshold_ : float
        PyOD's name: ``-offset_``, the threshold on the ``decision_scores_`` scale.
    labels_ : ndarray of shape (n_samples,) of int
        PyOD's name: 1 for training samples whose ``decision_scores_`` exceed
        ``threshold_``, else 0.
    knn_algorithm_ : {"exact", "nndescent"}
        The neighbour search in use.
    versions_ : dict
        Versions of skmsc and its main dependencies at fit time.
    n_features_in_ : int
        Number of features seen in ``fit``.
    training_source_, n_samples_fit_, fit_started_, fit_seconds_
        What ``fit`` got, how many samples, when and how long (as the detector's).

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
        **KNN_PARAMETER_CONSTRAINTS,
        "random_state": ["random_state"],
    }

    def __init__(self, n_neighbors=2, *, knn_algorithm="auto", contamination="auto",
                 gallery_size=None, gallery_reduction="kmeans", random_state=None):
        store_params(self, locals())

    @_fit_context(prefer_skip_nested_validation=True)
    @fits_aside
    def fit(self, X, y=None):
        """Index the normal feature vectors ``X`` and set the threshold.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of normal samples.
        y : array-like of shape (n_samples,), default=None
            Not used for training: every row of ``X`` is trained on. If it marks rows as
            anomalies (labels 0 or -1 beside 1), an
            :class:`~skmsc.AnomaliesInTrainingWarning` says so.

        Returns
        -------
        self : object
            The fitted detector.
        """
        # All or nothing (see fits_aside).
        clock = self._fit_clock()
        X = validated_fit_array(self, X, allow_nd=False)
        check_training_set(self, len(X), y, self.n_neighbors)
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        self._fit_knn(feature_copy(X), seed)
        self._record_fit(clock, f"feature vectors of shape {X.shape}", len(X))
        return self

    def _feature_chunks(self, X):
        """The validated feature vectors of ``X``, as one chunk."""
        check_is_fitted(self)
        check_input_container(X)
        with explained_non_finite(X):
            X = validate_data(self, X, dtype="numeric", reset=False)
        features = np.asarray(X, dtype=np.float32)
        check_feature_range(features)
        yield features

    def _restore_state(self, fitted: dict, tensors: dict) -> None:
        super()._restore_state(fitted, tensors)
        require(getattr(self, "n_features_in_", None) == self.train_features_.shape[1],
                "n_features_in_", f"{getattr(self, 'n_features_in_', None)} does not match "
                f"train_features_ ({self.train_features_.shape[1]} columns)")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
