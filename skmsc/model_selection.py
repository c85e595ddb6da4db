"""Cross-validation and scoring for novelty detection (training on normal samples only).

Labels follow one convention throughout: ``1`` = normal, ``0`` or ``-1`` = anomaly.

* :class:`OneClassKFold` splits the normal samples into folds; each training set holds
  only normals and each test set holds held-out normals plus a share of the anomalies.
* The scorers rank with ``decision_function``, which is *higher for normal samples*, so
  "normal" is the positive class: ``roc_auc`` or ``average_precision`` from scikit-learn
  would silently score the wrong way round (or fail on ``{-1, 0, 1}`` labels).

>>> from sklearn.model_selection import GridSearchCV
>>> from skmsc import MeanShiftedContrastiveDetector
>>> from skmsc.model_selection import OneClassKFold, normal_roc_auc_scorer
>>> search = GridSearchCV(
...     MeanShiftedContrastiveDetector("efficientnet_lite0"), {"n_neighbors": [1, 2, 5]},
...     cv=OneClassKFold(3), scoring=normal_roc_auc_scorer,
... )  # search.fit(X, y) with y = 1 for normal images, 0 for anomalies
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score
from sklearn.model_selection import BaseCrossValidator, KFold

__all__ = [
    "NOVELTY_SCORING",
    "OneClassKFold",
    "is_normal",
    "normal_average_precision_score",
    "normal_average_precision_scorer",
    "normal_roc_auc_score",
    "normal_roc_auc_scorer",
]

LABELS_HELP = "Labels must be 1 for normal samples and 0 or -1 for anomalies."


def is_normal(y) -> np.ndarray:
    """Boolean mask of the normal samples (label 1), checking the label convention.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies (booleans: True = normal).

    Returns
    -------
    mask : ndarray of shape (n_samples,), bool

    Examples
    --------
    >>> from skmsc.model_selection import is_normal
    >>> is_normal([1, 0, -1, 1]).tolist()
    [True, False, False, True]
    """
    if y is None:
        raise ValueError(f"y is required to tell normal samples from anomalies. {LABELS_HELP}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D; got shape {y.shape}. {LABELS_HELP}")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y has dtype {y.dtype}. {LABELS_HELP}")
    unexpected = np.setdiff1d(np.unique(y), [-1, 0, 1])
    if unexpected.size:
        raise ValueError(f"y holds the labels {unexpected.tolist()}. {LABELS_HELP}")
    return y == 1


class OneClassKFold(BaseCrossValidator):
    """K-fold for novelty detection: train on normals only, test on normals and anomalies.

    The normal samples (``y == 1``) are split into ``n_splits`` folds, and so are the
    anomalies (``y`` of 0 or -1). Split ``i`` trains on the normals outside fold ``i``
    and tests on normal fold ``i`` plus anomaly fold ``i``. Anomalies are never trained
    on, and every sample is tested exactly once.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds; at least 2.
    shuffle : bool, default=False
        Shuffle normals and anomalies (separately) before splitting.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle when ``shuffle=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc.model_selection import OneClassKFold
    >>> y = np.array([1, 1, 1, 1, 0, -1])
    >>> for train, test in OneClassKFold(2).split(np.zeros((6, 1)), y):
    ...     print(train, test)
    [2 3] [0 1 4]
    [0 1] [2 3 5]
    """

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The data (only its length is used).
        y : array-like of shape (n_samples,)
            1 for normal samples, 0 or -1 for anomalies. Required.
        groups : Ignored
            Present for API consistency.

        Yields
        ------
        train : ndarray
            Indices of normal samples to fit on.
        test : ndarray
            Indices of held-out normal samples and anomalies, sorted.
        """
        normal = is_normal(y)
        if X is not None and len(X) != len(normal):
            raise ValueError(f"X has {len(X)} samples but y has {len(normal)} labels.")
        normals, anomalies = np.flatnonzero(normal), np.flatnonzero(~normal)
        if not isinstance(self.n_splits, int | np.integer) or self.n_splits < 2:
            raise ValueError(f"n_splits must be an int of at least 2; got {self.n_splits!r}.")
        for what, indices in (("normal samples", normals), ("anomalies", anomalies)):
            if len(indices) < self.n_splits:
                raise ValueError(
                    f"y has {len(indices)} {what}, fewer than n_splits={self.n_splits}: every "
                    "test fold needs both normal samples and anomalies to be scored. Lower "
                    "n_splits or add labelled samples."
                )
        seed = self.random_state if self.shuffle else None  # KFold refuses an unused seed
        kfold = KFold(self.n_splits, shuffle=self.shuffle, random_state=seed)
        normal_folds = kfold.split(normals)
        anomaly_folds = kfold.split(anomalies)
        for (train_n, test_n), (_, test_a) in zip(normal_folds, anomaly_folds, strict=True):
            test = np.sort(np.concatenate([normals[test_n], anomalies[test_a]]))
            yield normals[train_n], test

    def get_n_splits(self, X=None, y=None, groups=None):
        """The number of splits, ``n_splits``.

        Parameters
        ----------
        X, y, groups : Ignored
            Present for API consistency.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError("OneClassKFold overrides split()")


def normal_roc_auc_score(y_true, y_score):
    """ROC-AUC with "normal" (label 1) as the positive class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies.
    y_score : array-like of shape (n_samples,)
        Higher = more normal, as ``decision_function`` and ``score_samples`` are.

    Returns
    -------
    auc : float

    Examples
    --------
    >>> from skmsc.model_selection import normal_roc_auc_score
    >>> normal_roc_auc_score([1, 1, 0, 0], [0.9, 0.4, 0.5, -1.0])
    0.75
    """
    return roc_auc_score(is_normal(y_true), y_score)


def normal_average_precision_score(y_true, y_score):
    """Average precision with "normal" (label 1) as the positive class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies.
    y_score : array-like of shape (n_samples,)
        Higher = more normal, as ``decision_function`` and ``score_samples`` are.

    Returns
    -------
    average_precision : float

    Examples
    --------
    >>> from skmsc.model_selection import normal_average_precision_score
    >>> round(normal_average_precision_score([1, 1, 0, 0], [0.9, 0.4, 0.5, -1.0]), 3)
    0.833
    """
    return average_precision_score(is_normal(y_true), y_score)


# Scorers for GridSearchCV / cross_validate: they call decision_function (score_samples
# where there is none), which is higher for normal samples.
_RESPONSE = ("decision_function", "score_samples")
#: Scorer for ``GridSearchCV(scoring=...)``: :func:`normal_roc_auc_score` of the
#: estimator's ``decision_function``.
normal_roc_auc_scorer = make_scorer(normal_roc_auc_score, response_method=_RESPONSE)
#: Scorer for ``GridSearchCV(scoring=...)``: :func:`normal_average_precision_score` of the
#: estimator's ``decision_function``.
normal_average_precision_scorer = make_scorer(
    normal_average_precision_score, response_method=_RESPONSE
)
#: Both scorers, for multi-metric searches: ``scoring=NOVELTY_SCORING, refit="roc_auc"``.
NOVELTY_SCORING = {
    "roc_auc": normal_roc_auc_scorer,
    "average_precision": normal_average_precision_scorer,
}
