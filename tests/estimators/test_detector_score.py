"""Item: the detectors have a ``score`` (ROC-AUC, normal = positive), so scikit-learn's
own ``GridSearchCV(det, grid)`` and ``cross_val_score(det, X, y)`` run without a
``scoring`` argument."""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from skmsc import AnomaliesInTrainingWarning, KNNDetector, MeanShiftedContrastiveDetector
from skmsc.model_selection import OneClassKFold, normal_roc_auc_score


def _task(seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(120, 4)), rng.normal(size=(40, 4)) + 2.5])
    y = np.r_[np.ones(120), np.zeros(40)].astype(int)
    order = rng.permutation(len(y))
    return X[order], y[order]


@pytest.mark.parametrize("Detector", [KNNDetector, MeanShiftedContrastiveDetector])
def test_score_is_normal_positive_roc_auc_of_decision_function(Detector):
    X, y = _task()
    det = Detector().fit(X[y == 1][:80])
    expected = normal_roc_auc_score(y, det.decision_function(X))
    assert det.score(X, y) == pytest.approx(expected)
    assert isinstance(det.score(X, y), float) and det.score(X, y) > 0.9
    # predict's labels (-1 anomaly) and booleans mean the same.
    assert det.score(X, np.where(y == 1, 1, -1)) == pytest.approx(expected)
    assert det.score(X, y == 1) == pytest.approx(expected)
    # The second argument is y, as scikit-learn's checks and Pipeline expect.
    assert list(inspect.signature(det.score).parameters)[:3] == ["X", "y", "sample_weight"]


def test_score_takes_sample_weight():
    X, y = _task()
    det = KNNDetector().fit(X[y == 1])
    weights = np.where(y == 1, 1.0, 0.0)
    weights[np.flatnonzero(y == 0)[:5]] = 1.0  # only five anomalies count
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(y == 1, det.decision_function(X), sample_weight=weights)
    assert det.score(X, y, sample_weight=weights) == pytest.approx(expected)


@pytest.mark.parametrize("y_value, match", [(1, r"only normal samples \(label 1\)"),
                                            (0, r"only anomalies \(label 0 or -1\)")])
def test_score_with_one_class_is_a_clear_error(y_value, match):
    X, y = _task()
    det = KNNDetector().fit(X[y == 1])
    with pytest.raises(ValueError, match=match + r".*needs both.*OneClassKFold"):
        det.score(X, np.full(len(X), y_value))


def test_score_refuses_labels_outside_the_convention_and_wrong_lengths():
    X, y = _task()
    det = KNNDetector().fit(X[y == 1])
    with pytest.raises(ValueError, match=r"labels \[2\].*1 for normal"):
        det.score(X, np.where(y == 1, 1, 2))
    with pytest.raises(ValueError, match="160 samples but y has 159 labels"):
        det.score(X, y[:-1])


def test_score_checks_x_against_the_fit_first():
    X, y = _task()
    det = KNNDetector().fit(X[y == 1])
    with pytest.raises(ValueError, match="X has 1 features, but KNNDetector is expecting 4"):
        det.score(X[:, :1], y)


def test_plain_grid_search_and_cross_val_score_run_without_scoring():
    X, y = _task()
    with warnings.catch_warnings():
        # Plain folds put anomalies into training folds: the detector says so.
        warnings.simplefilter("ignore", AnomaliesInTrainingWarning)
        search = GridSearchCV(KNNDetector(), {"n_neighbors": [1, 5]}).fit(X, y)
        scores = cross_val_score(KNNDetector(), X, y)
        stratified = cross_val_score(KNNDetector(), X, y, cv=StratifiedKFold(3))
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert 0.5 < search.best_score_ <= 1.0  # above chance, though it trained on anomalies
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert stratified.shape == (3,) and np.isfinite(stratified).all()
    # With one-class folds nothing trains on the anomalies, and no warning is given.
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnomaliesInTrainingWarning)
        scores = cross_val_score(KNNDetector(), X, y, cv=OneClassKFold(3))
    assert (scores > 0.9).all()


@pytest.mark.parametrize("Detector", [KNNDetector, MeanShiftedContrastiveDetector])
def test_fit_partial_fit_and_score_take_y_second(Detector):
    # What scikit-learn's check_fit_score_takes_y checks (declared an expected failure:
    # its y = arange(n) % 3 holds the label 2, which score refuses).
    det = Detector()
    for method in ("fit", "partial_fit", "score"):
        assert list(inspect.signature(getattr(det, method)).parameters)[1] == "y", method
