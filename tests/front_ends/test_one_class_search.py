"""Item: a parameter search never trains its final detector on the anomalies.

scikit-learn's GridSearchCV refits ``best_estimator_`` on every row of X; with a detector
(whose fit does not use y) that trained it on the anomalies too. OneClassGridSearchCV
refits on the normal rows, and a detector given labelled anomalies in fit says so.
"""

import warnings

import numpy as np
import pytest
from conftest import FAST
from scipy.stats import randint
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from skmsc import (
    AnomaliesInTrainingWarning,
    KNNDetector,
    MeanShiftedContrastiveDetector,
    MeanShiftedFeatures,
)
from skmsc.model_selection import (
    NOVELTY_SCORING,
    OneClassGridSearchCV,
    OneClassKFold,
    OneClassRandomizedSearchCV,
    normal_roc_auc_scorer,
)


def _task(n_normal=150, n_anomalies=50, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(n_normal, 6)), rng.normal(size=(n_anomalies, 6)) + 2.0])
    y = np.r_[np.ones(n_normal), np.zeros(n_anomalies)].astype(int)
    order = rng.permutation(len(y))  # normals and anomalies interleaved
    return X[order], y[order]


@pytest.mark.parametrize("estimator", [MeanShiftedContrastiveDetector(random_state=0),
                                       KNNDetector()])
def test_one_class_grid_search_refits_on_the_normal_rows_only(estimator):
    X, y = _task()
    search = OneClassGridSearchCV(estimator, {"n_neighbors": [1, 2, 5]}, cv=3).fit(X, y)
    best = search.best_estimator_
    assert best.train_features_.shape[0] == 150  # not 200: the anomalies are left out
    np.testing.assert_array_equal(best.train_features_, X[y == 1].astype(np.float32))
    # The same candidate and score as scikit-learn's search with the same splitter.
    plain = GridSearchCV(estimator, {"n_neighbors": [1, 2, 5]}, cv=OneClassKFold(3),
                         scoring=normal_roc_auc_scorer, refit=False).fit(X, y)
    assert search.best_params_ == plain.best_params_
    assert search.best_score_ == plain.best_score_
    assert search.refit_time_ >= 0 and search.n_features_in_ == 6
    # Parameters are left as given (the one-class defaults are applied during fit only).
    assert search.cv == 3 and search.scoring is None and search.refit is True


def test_defaults_are_one_class_folds_and_the_normal_positive_scorer():
    X, y = _task()
    search = OneClassGridSearchCV(KNNDetector(), {"n_neighbors": [1, 5]}).fit(X, y)
    assert len(search.cv_results_["split4_test_score"]) == 2  # OneClassKFold(5)
    plain = GridSearchCV(KNNDetector(), {"n_neighbors": [1, 5]}, cv=OneClassKFold(5),
                         scoring=normal_roc_auc_scorer, refit=False).fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  plain.cv_results_["mean_test_score"])
    assert search.best_score_ > 0.9  # normal ranked above the shifted anomalies


def test_multimetric_refit_callable_refit_and_no_refit():
    X, y = _task()
    grid = {"n_neighbors": [1, 5]}
    search = OneClassGridSearchCV(KNNDetector(), grid, scoring=NOVELTY_SCORING,
                                  refit="average_precision", cv=3).fit(X, y)
    assert len(search.best_estimator_.train_features_) == 150
    assert search.best_score_ == search.cv_results_["mean_test_average_precision"][
        search.best_index_]
    with pytest.raises(ValueError, match="refit must be set to a scorer key"):
        OneClassGridSearchCV(KNNDetector(), grid, scoring=NOVELTY_SCORING, cv=3).fit(X, y)
    search = OneClassGridSearchCV(KNNDetector(), grid, cv=3,
                                  refit=lambda results: 0).fit(X, y)
    assert search.best_index_ == 0 and len(search.best_estimator_.train_features_) == 150
    search = OneClassGridSearchCV(KNNDetector(), grid, cv=3, refit=False).fit(X, y)
    assert not hasattr(search, "best_estimator_")
    with pytest.raises(ValueError, match="y is required"):
        OneClassGridSearchCV(KNNDetector(), grid).fit(X)


def test_randomized_search_refits_on_the_normal_rows_only():
    X, y = _task()
    search = OneClassRandomizedSearchCV(KNNDetector(), {"n_neighbors": randint(1, 8)},
                                        n_iter=3, cv=3, random_state=0).fit(X, y)
    assert len(search.best_estimator_.train_features_) == 150
    assert len(search.cv_results_["params"]) == 3


def test_pipeline_search_on_images_refits_both_steps_on_normals(digits):
    images, labels = digits
    X = np.concatenate([images[labels == 0][:30], images[labels == 7][:10]])
    y = np.r_[np.ones(30), np.zeros(10)].astype(int)
    pipe = Pipeline([("features", MeanShiftedFeatures(**FAST, epochs=0)),
                     ("knn", KNNDetector())])
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnomaliesInTrainingWarning)
        search = OneClassGridSearchCV(pipe, {"knn__n_neighbors": [1, 3]}, cv=2).fit(X, y)
    best = search.best_estimator_
    assert len(best[-1].train_features_) == 30
    assert best[0].input_shape_ == (8, 8)
    assert search.best_score_ > 0.8


def test_plain_grid_search_refit_warns_that_it_trains_on_the_anomalies():
    X, y = _task()
    search = GridSearchCV(KNNDetector(), {"n_neighbors": [1, 2]}, cv=OneClassKFold(3),
                          scoring=normal_roc_auc_scorer)
    with pytest.warns(AnomaliesInTrainingWarning,
                      match=r"50 of 200 rows as anomalies.*OneClassGridSearchCV") as caught:
        search.fit(X, y)
    # The warning names the user's line, not scikit-learn's refit.
    assert all(w.filename == __file__ for w in caught
               if issubclass(w.category, AnomaliesInTrainingWarning))
    # The folds of the search trained on normals only: only the refit warned.
    assert len([w for w in caught if issubclass(w.category, AnomaliesInTrainingWarning)]) == 1


@pytest.mark.parametrize("y", [None, np.ones(40), np.arange(40) % 3 + 2,
                               np.array(["a", "b"] * 20)])
def test_labels_outside_the_convention_or_all_normal_are_silent(y):
    X = np.random.default_rng(0).normal(size=(40, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnomaliesInTrainingWarning)
        KNNDetector().fit(X, y)


def test_every_estimator_warns_on_labelled_anomalies(digits):
    images, labels = digits
    X = images[:20]
    y = (labels[:20] == 0).astype(int) * 2 - 1  # 1 normal, -1 anomaly
    with pytest.warns(AnomaliesInTrainingWarning, match="MeanShiftedFeatures.fit"):
        MeanShiftedFeatures(**FAST, epochs=0).fit(X, y)
    with pytest.warns(AnomaliesInTrainingWarning, match="MeanShiftedContrastiveDetector.fit"):
        MeanShiftedContrastiveDetector(**FAST, epochs=0).fit(X, y == 1)
