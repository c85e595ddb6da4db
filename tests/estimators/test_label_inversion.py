"""Item: PyOD's labels (1 = anomaly) are not taken silently.

skmsc follows scikit-learn's outlier convention (1 = normal). A search given PyOD labels
would train on the anomalies, and an ROC curve of them reads 1 - AUC: both warn, naming
the convention and the fix, and both take an explicit ``normal_label``.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone

from skmsc import KNNDetector
from skmsc.model_selection import OneClassGridSearchCV, OneClassRandomizedSearchCV, is_normal

CONVENTION = r"1 = normal.*PyOD uses 1 = anomaly.*1 - y.*normal_label=0"


def _task(seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(150, 4)), rng.normal(size=(30, 4)) + 3.0])
    y = np.r_[np.ones(150), np.zeros(30)].astype(int)  # skmsc: 1 = normal
    order = rng.permutation(len(y))
    return X[order], y[order]


def _search(Search, **params):
    if Search is OneClassRandomizedSearchCV:
        params["n_iter"] = 2  # the whole grid, without scikit-learn's warning
    return Search(KNNDetector(), {"n_neighbors": [1, 2]}, cv=2, **params)


@pytest.mark.parametrize("Search", [OneClassGridSearchCV, OneClassRandomizedSearchCV])
def test_search_given_pyod_labels_warns_with_the_convention_and_the_fix(Search):
    X, y = _task()
    with pytest.warns(UserWarning, match=r"Only 30 of 180 samples have the normal label 1.*"
                      + CONVENTION):
        search = _search(Search).fit(X, 1 - y)
    assert len(search.best_estimator_.train_features_) == 30  # it did train on them


@pytest.mark.parametrize("Search", [OneClassGridSearchCV, OneClassRandomizedSearchCV])
def test_search_normal_label_takes_pyod_labels_and_is_stored_unchanged(Search):
    X, y = _task()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = _search(Search).fit(X, y)
        pyod_y = 1 - y
        pyod = _search(Search, normal_label=0).fit(X, pyod_y)
    np.testing.assert_array_equal(pyod_y, 1 - y)  # the caller's labels are not changed
    assert pyod.normal_label == 0 and pyod.get_params()["normal_label"] == 0
    assert clone(pyod).normal_label == 0 and ours.normal_label == 1
    np.testing.assert_array_equal(pyod.best_estimator_.train_features_,
                                  X[y == 1].astype(np.float32))
    assert pyod.best_score_ == ours.best_score_ > 0.9
    # Named labels work too.
    named = np.where(y == 1, "good", "defect")
    search = _search(Search, normal_label="good").fit(X, named)
    assert search.best_score_ == ours.best_score_


def test_normal_label_that_is_not_in_y_is_a_clear_error():
    X, y = _task()
    with pytest.raises(ValueError, match=r"normal_label=5 does not occur in y.*\[0, 1\]"):
        OneClassGridSearchCV(KNNDetector(), {"n_neighbors": [1]}, cv=2,
                             normal_label=5).fit(X, y)
    assert is_normal([0, 1, 1], normal_label=0).tolist() == [True, False, False]


def test_roc_curve_of_pyod_labels_warns_and_normal_label_fixes_it():
    pytest.importorskip("matplotlib")
    from skmsc.plotting import plot_roc_curve

    X, y = _task()
    det = KNNDetector().fit(X[y == 1][:100])
    decision = det.decision_function(X)
    with pytest.warns(UserWarning, match=r"ROC-AUC is 0\.0\d+, far below 0\.5.*" + CONVENTION
                      + r".*-scores"):
        inverted = plot_roc_curve(1 - y, decision)
    assert inverted.roc_auc < 0.3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        display = plot_roc_curve(1 - y, decision, normal_label=0)
        same = plot_roc_curve(y, decision)
    assert display.roc_auc == same.roc_auc > 0.9
