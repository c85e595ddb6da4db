"""OneClassKFold and the normal-positive scorers, on feature vectors and on images."""

import numpy as np
import pytest
from conftest import FAST
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_validate

from skmsc import MeanShiftedContrastiveDetector
from skmsc.model_selection import (
    NOVELTY_SCORING,
    OneClassGridSearchCV,
    OneClassKFold,
    normal_average_precision_score,
    normal_roc_auc_score,
    normal_roc_auc_scorer,
)


@pytest.mark.parametrize("anomaly_label", [0, -1])
@pytest.mark.parametrize("shuffle", [False, True])
def test_folds_train_on_normals_only_and_test_every_sample_once(anomaly_label, shuffle):
    y = np.r_[np.ones(23), np.full(7, anomaly_label)].astype(int)
    np.random.default_rng(0).shuffle(y)
    X = np.zeros((len(y), 2))
    cv = OneClassKFold(3, shuffle=shuffle, random_state=0)
    splits = list(cv.split(X, y))
    assert len(splits) == cv.get_n_splits() == 3
    tested = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(y)))
    for train, test in splits:
        assert np.all(y[train] == 1)
        assert np.intersect1d(train, test).size == 0
        assert set(y[test]) == {1, anomaly_label}
        # The training set is every normal sample not tested in this split.
        np.testing.assert_array_equal(np.sort(np.r_[train, test[y[test] == 1]]),
                                      np.flatnonzero(y == 1))
    if shuffle:  # same seed, same folds
        again = list(OneClassKFold(3, shuffle=True, random_state=0).split(X, y))
        for (a, b), (c, d) in zip(splits, again, strict=True):
            np.testing.assert_array_equal(a, c)
            np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize(
    "y, match",
    [
        (None, "y is required"),
        (np.array([1, 1, 2, 0]), r"labels \[2\]"),
        (np.array(["a", "b", "a", "b"]), "dtype"),
        (np.array([1, 1, 1, 0]), "1 anomalies, fewer than n_splits=2"),
        (np.array([1, 0, 0, 0]), "1 normal samples, fewer than n_splits=2"),
    ],
)
def test_bad_labels_are_refused_with_the_fix(y, match):
    with pytest.raises(ValueError, match=match):
        list(OneClassKFold(2).split(np.zeros((4, 1)), y))


def test_scorers_rank_normal_as_positive():
    y01 = np.array([1, 1, 1, 0, 0])
    normality = np.array([0.9, 0.8, 0.1, 0.2, 0.05])
    expected = roc_auc_score(y01, normality)
    assert normal_roc_auc_score(y01, normality) == expected
    assert normal_roc_auc_score(np.where(y01 == 1, 1, -1), normality) == expected
    assert normal_average_precision_score(y01, normality) > 0.8
    # Mixed anomaly labels 0 and -1 are one class, not three.
    assert normal_roc_auc_score(np.array([1, 1, 1, 0, -1]), normality) == expected


def test_cross_validate_detector_on_features_scores_the_right_way_round():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(120, 4)), rng.normal(size=(30, 4)) + 5])
    y = np.r_[np.ones(120), -np.ones(30)].astype(int)
    result = cross_validate(
        MeanShiftedContrastiveDetector(), X, y, cv=OneClassKFold(3), scoring=NOVELTY_SCORING
    )
    # Separable data: a scorer with the wrong positive class would give about 0.
    assert np.all(result["test_roc_auc"] > 0.95)
    assert np.all(result["test_average_precision"] > 0.95)


def _digit_task(digits, n_normal=36, n_other=18):
    X, y = digits
    images = np.concatenate([X[y == 0][:n_normal], X[y != 0][:n_other]])
    labels = np.r_[np.ones(n_normal), np.zeros(n_other)].astype(int)
    return images, labels


@pytest.mark.slow
def test_grid_search_on_images_with_parallel_workers(digits):
    """OneClassGridSearchCV on image arrays with OneClassKFold and the scorer; n_jobs=2
    (loky processes) gives exactly the sequential results. Slow only because each worker
    process imports torch."""
    X, y = _digit_task(digits, n_normal=24, n_other=12)
    searches = [
        OneClassGridSearchCV(
            MeanShiftedContrastiveDetector(**FAST, epochs=1),
            {"n_neighbors": [1, 3]},
            cv=OneClassKFold(2),
            scoring=normal_roc_auc_scorer,
            n_jobs=n_jobs,
        ).fit(X, y)
        for n_jobs in (1, 2)
    ]
    sequential, parallel = searches
    np.testing.assert_array_equal(
        parallel.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"]
    )
    assert parallel.best_score_ > 0.8  # digit 0 against others; chance is 0.5
    assert parallel.best_estimator_.predict(X[:2]).shape == (2,)
    assert len(parallel.best_estimator_.train_features_) == 24  # refit on the normals only
