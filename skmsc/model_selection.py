"""Cross-validation and scoring for novelty detection (training on normal samples only).

Labels follow one convention throughout: ``1`` = normal, ``0`` or ``-1`` = anomaly.

* :class:`OneClassGridSearchCV` and :class:`OneClassRandomizedSearchCV` are scikit-learn's
  searches whose final refit trains on the normal rows only (scikit-learn's own refit
  would train ``best_estimator_`` on every row, anomalies included); by default they
  split with :class:`OneClassKFold` and score with :data:`normal_roc_auc_scorer`.
* :class:`OneClassKFold` splits the normal samples into folds; each training set holds
  only normals and each test set holds held-out normals plus a share of the anomalies.
* The scorers rank with ``decision_function``, which is *higher for normal samples*, so
  "normal" is the positive class: ``roc_auc`` or ``average_precision`` from scikit-learn
  would silently score the wrong way round (or fail on ``{-1, 0, 1}`` labels).

>>> from skmsc import MeanShiftedContrastiveDetector
>>> from skmsc.model_selection import OneClassGridSearchCV
>>> search = OneClassGridSearchCV(
...     MeanShiftedContrastiveDetector("efficientnet_lite0"), {"n_neighbors": [1, 2, 5]},
... )  # search.fit(X, y) with y = 1 for normal images, 0 for anomalies
"""

from __future__ import annotations

import time
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import clone
from sklearn.metrics import average_precision_score, make_scorer, roc_auc_score
from sklearn.model_selection import (
    BaseCrossValidator,
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
)
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _check_method_params, _num_samples

from ._checks import LABELS_HELP, caller_stacklevel, normal_mask  # noqa: F401 (kept here)

__all__ = [
    "NOVELTY_SCORING",
    "OneClassGridSearchCV",
    "OneClassKFold",
    "OneClassRandomizedSearchCV",
    "is_normal",
    "normal_average_precision_score",
    "normal_average_precision_scorer",
    "normal_roc_auc_by_group",
    "normal_roc_auc_score",
    "normal_roc_auc_scorer",
]

# What the labels mean, for the warnings about labels that look the wrong way round.
_LABEL_CONVENTION = (
    "skmsc takes 1 = normal, scikit-learn's outlier convention (predict returns +1 for "
    "inliers, -1 for outliers); PyOD uses 1 = anomaly. For PyOD labels pass 1 - y, or "
    "normal_label=0."
)


def is_normal(y, *, normal_label=1) -> np.ndarray:
    """Boolean mask of the normal samples (label 1), checking the label convention.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies (booleans: True = normal).
    normal_label : int, str or bool, default=1
        The label of the normal samples. With the default, ``y`` must follow skmsc's
        convention above; with another value (``0`` for PyOD's labels, where 1 =
        anomaly, or a name such as ``"good"``), every other label is an anomaly.

    Returns
    -------
    mask : ndarray of shape (n_samples,), bool

    Examples
    --------
    >>> from skmsc.model_selection import is_normal
    >>> is_normal([1, 0, -1, 1]).tolist()
    [True, False, False, True]
    >>> is_normal([0, 1, 1, 0], normal_label=0).tolist()  # PyOD: 1 = anomaly
    [True, False, False, True]
    """
    return normal_mask(y, normal_label=normal_label)


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


def normal_roc_auc_by_group(y_true, y_score, groups):
    """ROC-AUC (normal = positive) of each kind of anomaly against all normal samples.

    For a defect benchmark: how well each defect type is told from the good images.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 for normal samples, 0 or -1 for anomalies.
    y_score : array-like of shape (n_samples,)
        Higher = more normal.
    groups : array-like of shape (n_samples,)
        The kind of each anomaly (e.g. its defect type); ignored for normal samples.

    Returns
    -------
    aucs : dict
        ``{group: ROC-AUC of that group's anomalies against every normal sample}``, in
        sorted order, then ``"all"``: every anomaly against every normal sample.

    Examples
    --------
    >>> from skmsc.model_selection import normal_roc_auc_by_group
    >>> normal_roc_auc_by_group([1, 1, 0, 0], [0.9, 0.4, 0.5, -1.0],
    ...                         ["good", "good", "crack", "scratch"])
    {'crack': 0.5, 'scratch': 1.0, 'all': 0.75}
    """
    normal = is_normal(y_true)
    scores = np.asarray(y_score, dtype=np.float64)
    groups = np.asarray(groups)
    if not (len(normal) == len(scores) == len(groups)):
        raise ValueError(f"y_true, y_score and groups have {len(normal)}, {len(scores)} and "
                         f"{len(groups)} values; they must be the same length.")
    if normal.all() or not normal.any():
        raise ValueError("y_true needs both normal samples (1) and anomalies (0 or -1).")
    aucs = {}
    for group in sorted(set(groups[~normal].tolist())):
        rows = normal | (groups == group)
        aucs[group] = float(roc_auc_score(normal[rows], scores[rows]))
    aucs["all"] = float(roc_auc_score(normal, scores))
    return aucs


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
#: estimator's ``decision_function``. Its positive class is "normal", so its baseline
#: (a detector that ranks at random) is the share of normal samples in the test set, not
#: the share of anomalies: report it as "average precision (normal = positive)".
normal_average_precision_scorer = make_scorer(
    normal_average_precision_score, response_method=_RESPONSE
)
#: Both scorers, for multi-metric searches: ``scoring=NOVELTY_SCORING, refit="roc_auc"``.
NOVELTY_SCORING = {
    "roc_auc": normal_roc_auc_scorer,
    "average_precision": normal_average_precision_scorer,
}


def _warn_if_normal_is_minority(normal, normal_label=1) -> None:
    """Warn (``UserWarning``) when fewer than half the labels are normal: the labels may
    be PyOD's (1 = anomaly), which would make the search train on the anomalies."""
    normal = np.asarray(normal, dtype=bool)
    n_normal = int(normal.sum())
    if len(normal) and n_normal < len(normal) / 2:
        warnings.warn(
            f"Only {n_normal} of {len(normal)} samples have the normal label "
            f"{normal_label!r}, so the search trains on a minority of y: the labels may be "
            f"the wrong way round. {_LABEL_CONVENTION} If normal samples really are the "
            "minority, ignore this warning.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


def _warn_if_auc_looks_inverted(auc: float, threshold: float = 0.3) -> None:
    """Warn (``UserWarning``) when a normal-positive ROC-AUC is far below chance (0.5):
    the labels or the scores are probably the wrong way round."""
    if auc < threshold:
        warnings.warn(
            f"ROC-AUC is {auc:.3f}, far below 0.5 (chance): the labels or the scores are "
            f"probably the wrong way round. {_LABEL_CONVENTION} Scores must be higher for "
            "normal samples (decision_function, score_samples); for anomaly scores "
            "(higher = more anomalous, as PyOD's) pass -scores.",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )


class _NormalRowsRefit:
    """The search of the class it is mixed into, with the final refit on ``y == 1`` only.

    The search itself runs unchanged (with ``refit=False``); then the best candidate is
    chosen exactly as scikit-learn chooses it and refitted on the normal rows.
    """

    def fit(self, X, y=None, **params):
        """Run the search, then refit the best candidate on the normal rows of ``X``.

        Parameters
        ----------
        X : array-like or sequence of image paths
            Normal samples and labelled anomalies.
        y : array-like of shape (n_samples,)
            1 for normal samples, 0 or -1 for anomalies (or ``normal_label`` for the
            normal samples, every other label an anomaly). Required.
        **params : dict
            Passed to the estimator's ``fit`` (sample-aligned arrays are subset with
            the rows).

        Returns
        -------
        self : object
            Fitted; ``best_estimator_`` (when ``refit``) is trained on ``X[y == 1]``.
        """
        self._validate_params()
        normal = is_normal(y, normal_label=self.normal_label)
        if _num_samples(X) != len(normal):
            raise ValueError(f"X has {_num_samples(X)} samples but y has {len(normal)} labels.")
        _warn_if_normal_is_minority(normal, self.normal_label)
        if not (isinstance(self.normal_label, int | np.integer) and self.normal_label == 1):
            # The splitter, the scorers and fit see skmsc's labels: 1 normal, 0 anomaly.
            y = normal.astype(int)
        refit, cv, scoring = self.refit, self.cv, self.scoring
        # The search runs with the one-class defaults and without its refit (done below,
        # on the normal rows); the parameters are restored whatever happens.
        self.refit = False
        self.cv = OneClassKFold(5 if cv is None else cv) if cv is None or isinstance(
            cv, int | np.integer) else cv
        self.scoring = normal_roc_auc_scorer if scoring is None else scoring
        try:
            super().fit(X, y, **params)
        finally:
            self.refit, self.cv, self.scoring = refit, cv, scoring
        if refit is not False:
            self._refit_on_normal_rows(X, y, np.flatnonzero(normal), params)
        return self

    def _refit_on_normal_rows(self, X, y, rows, params) -> None:
        refit = self.refit
        if self.multimetric_:
            self._check_refit_for_multimetric(self.scorer_)
        refit_metric = refit if self.multimetric_ else "score"
        self.best_index_ = self._select_best_index(refit, refit_metric, self.cv_results_)
        if not callable(refit):
            self.best_score_ = self.cv_results_[f"mean_test_{refit_metric}"][self.best_index_]
        self.best_params_ = self.cv_results_["params"][self.best_index_]
        self.best_estimator_ = clone(self.estimator).set_params(
            **clone(self.best_params_, safe=False)
        )
        fit_params = _check_method_params(X, params, indices=rows)
        start = time.time()
        self.best_estimator_.fit(_safe_indexing(X, rows), _safe_indexing(y, rows),
                                 **fit_params)
        self.refit_time_ = time.time() - start
        if hasattr(self.best_estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.best_estimator_.feature_names_in_


class OneClassGridSearchCV(_NormalRowsRefit, GridSearchCV):
    """Grid search for a detector, whose refit trains only on the normal samples.

    :class:`sklearn.model_selection.GridSearchCV` refits ``best_estimator_`` on every
    row of ``X``, anomalies included, because a detector's ``fit`` does not use ``y``.
    This subclass refits on ``X[y == 1]``; splitting (:class:`OneClassKFold` by default)
    keeps the anomalies out of every training fold as well.

    Parameters
    ----------
    estimator : estimator object
        A detector, or a :class:`~sklearn.pipeline.Pipeline` ending in one.
    param_grid : dict or list of dicts
        As in :class:`~sklearn.model_selection.GridSearchCV`.
    scoring : str, callable, list, tuple or dict, default=None
        ``None`` means :data:`normal_roc_auc_scorer` (ROC-AUC, normal = positive).
    n_jobs, refit, verbose, pre_dispatch, error_score, return_train_score
        As in :class:`~sklearn.model_selection.GridSearchCV`.
    cv : int, splitter or iterable of splits, default=None
        ``None`` means ``OneClassKFold(5)``; an int ``k`` means ``OneClassKFold(k)``. A
        splitter of your own must keep anomalies out of the training folds.
    normal_label : int, str or bool, default=1
        The label of the normal samples in ``y`` (stored unchanged). The default takes
        skmsc's convention (1 normal, 0 or -1 anomaly, as scikit-learn's outlier
        detectors); ``normal_label=0`` takes PyOD's (0 normal, 1 anomaly), and any other
        value marks the normal samples, every other label being an anomaly. The splitter,
        the scorers and ``fit`` then see 1 for normal and 0 for anomaly. A
        ``UserWarning`` says so when fewer than half the samples are normal: the labels
        may be the wrong way round.

    Attributes
    ----------
    best_estimator_ : estimator
        The best candidate, fitted on the normal rows of ``X`` (when ``refit``).
    cv_results_, best_params_, best_score_, best_index_, refit_time_, multimetric_
        As in :class:`~sklearn.model_selection.GridSearchCV`.

    See Also
    --------
    OneClassRandomizedSearchCV : The same for randomized search.
    OneClassKFold : The default splitter.

    Examples
    --------
    >>> import numpy as np
    >>> from skmsc import KNNDetector
    >>> from skmsc.model_selection import OneClassGridSearchCV
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(150, 4)), rng.normal(size=(50, 4)) + 3])
    >>> y = np.r_[np.ones(150), np.zeros(50)].astype(int)   # 1 = normal
    >>> search = OneClassGridSearchCV(KNNDetector(), {"n_neighbors": [1, 5]}, cv=3).fit(X, y)
    >>> search.best_estimator_.train_features_.shape   # the 150 normal rows only
    (150, 4)
    """

    _parameter_constraints: dict = {
        **GridSearchCV._parameter_constraints,
        "normal_label": [Integral, str, "boolean"],
    }

    def __init__(self, estimator, param_grid, *, scoring=None, n_jobs=None, refit=True,
                 cv=None, verbose=0, pre_dispatch="2*n_jobs", error_score=np.nan,
                 return_train_score=False, normal_label=1):
        super().__init__(
            estimator, param_grid, scoring=scoring, n_jobs=n_jobs, refit=refit, cv=cv,
            verbose=verbose, pre_dispatch=pre_dispatch, error_score=error_score,
            return_train_score=return_train_score,
        )
        self.normal_label = normal_label


class OneClassRandomizedSearchCV(_NormalRowsRefit, RandomizedSearchCV):
    """Randomized search for a detector, whose refit trains only on the normal samples.

    :class:`sklearn.model_selection.RandomizedSearchCV` with the refit of
    :class:`OneClassGridSearchCV`: ``best_estimator_`` is trained on ``X[y == 1]``.

    Parameters
    ----------
    estimator : estimator object
        A detector, or a :class:`~sklearn.pipeline.Pipeline` ending in one.
    param_distributions : dict or list of dicts
        As in :class:`~sklearn.model_selection.RandomizedSearchCV`.
    n_iter : int, default=10
        Parameter settings sampled.
    scoring : str, callable, list, tuple or dict, default=None
        ``None`` means :data:`normal_roc_auc_scorer` (ROC-AUC, normal = positive).
    n_jobs, refit, verbose, pre_dispatch, random_state, error_score, return_train_score
        As in :class:`~sklearn.model_selection.RandomizedSearchCV`.
    cv : int, splitter or iterable of splits, default=None
        ``None`` means ``OneClassKFold(5)``; an int ``k`` means ``OneClassKFold(k)``.
    normal_label : int, str or bool, default=1
        The label of the normal samples in ``y`` (stored unchanged). The default takes
        skmsc's convention (1 normal, 0 or -1 anomaly, as scikit-learn's outlier
        detectors); ``normal_label=0`` takes PyOD's (0 normal, 1 anomaly), and any other
        value marks the normal samples, every other label being an anomaly. The splitter,
        the scorers and ``fit`` then see 1 for normal and 0 for anomaly. A
        ``UserWarning`` says so when fewer than half the samples are normal: the labels
        may be the wrong way round.

    Attributes
    ----------
    best_estimator_ : estimator
        The best candidate, fitted on the normal rows of ``X`` (when ``refit``).
    cv_results_, best_params_, best_score_, best_index_, refit_time_, multimetric_
        As in :class:`~sklearn.model_selection.RandomizedSearchCV`.

    See Also
    --------
    OneClassGridSearchCV : The same for an exhaustive grid.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import randint
    >>> from skmsc import KNNDetector
    >>> from skmsc.model_selection import OneClassRandomizedSearchCV
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(150, 4)), rng.normal(size=(50, 4)) + 3])
    >>> y = np.r_[np.ones(150), np.zeros(50)].astype(int)
    >>> search = OneClassRandomizedSearchCV(
    ...     KNNDetector(), {"n_neighbors": randint(1, 10)}, n_iter=3, cv=3, random_state=0
    ... ).fit(X, y)
    >>> len(search.best_estimator_.train_features_)
    150
    """

    _parameter_constraints: dict = {
        **RandomizedSearchCV._parameter_constraints,
        "normal_label": [Integral, str, "boolean"],
    }

    def __init__(self, estimator, param_distributions, *, n_iter=10, scoring=None,
                 n_jobs=None, refit=True, cv=None, verbose=0, pre_dispatch="2*n_jobs",
                 random_state=None, error_score=np.nan, return_train_score=False,
                 normal_label=1):
        super().__init__(
            estimator, param_distributions, n_iter=n_iter, scoring=scoring, n_jobs=n_jobs,
            refit=refit, cv=cv, verbose=verbose, pre_dispatch=pre_dispatch,
            random_state=random_state, error_score=error_score,
            return_train_score=return_train_score,
        )
        self.normal_label = normal_label
