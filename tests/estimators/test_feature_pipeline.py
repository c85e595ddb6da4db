"""MeanShiftedFeatures + KNNDetector: the cached pipeline, and its agreement with the
one-stop detector."""

import joblib
import numpy as np
import pytest
from conftest import FAST
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import skmsc.nn._training
from skmsc import KNNDetector, MeanShiftedContrastiveDetector, MeanShiftedFeatures
from skmsc.model_selection import OneClassKFold, normal_roc_auc_scorer

KNN_EXPECTED_FAILURES = {
    "check_outliers_train": "offset_ is calibrated on leave-one-out scores; "
    "predict(X_train) is self-inclusive",
    "check_outliers_fit_predict": "fit_predict is self-inclusive; offset_ uses leave-one-out",
    # score(X, y) is ROC-AUC with skmsc's labels (1 normal, 0 or -1 anomaly) and refuses the
    # check's y = arange(n) % 3; test_detector_score.py checks the signatures it checks.
    "check_fit_score_takes_y": "score refuses labels 2 (y = arange(n) % 3): 1 normal, "
    "0 or -1 anomaly",
}


def _expected_failed_checks(estimator):
    return KNN_EXPECTED_FAILURES if isinstance(estimator, KNNDetector) else {}


@parametrize_with_checks(
    [KNNDetector(random_state=0), MeanShiftedFeatures(random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


def test_knn_detector_equals_the_detector_on_features():
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(200, 6)), rng.normal(size=(50, 6)) * 1.5
    params = dict(n_neighbors=3, contamination=0.05, random_state=0)
    knn = KNNDetector(**params).fit(X)
    det = MeanShiftedContrastiveDetector(**params).fit(X)
    np.testing.assert_array_equal(knn.score_samples(Q), det.score_samples(Q))
    assert knn.offset_ == det.offset_
    np.testing.assert_array_equal(knn.train_scores_, det.train_scores_)
    for a, b in zip(knn.kneighbors(Q, 4), det.kneighbors(Q, 4), strict=True):
        np.testing.assert_array_equal(a, b)


def test_features_then_knn_scores_exactly_as_the_detector(fitted_lite0, digits):
    X, y = digits
    params = fitted_lite0.get_params()
    feature_params = {k: params[k] for k in MeanShiftedFeatures().get_params()}
    pipe = Pipeline([
        ("features", MeanShiftedFeatures(**feature_params)),
        ("knn", KNNDetector(n_neighbors=params["n_neighbors"])),
    ]).fit(X[y == 0][:48])
    np.testing.assert_array_equal(
        pipe["features"].transform(X[y == 0][:48]), fitted_lite0.train_features_
    )
    test = X[-40:]
    np.testing.assert_array_equal(
        pipe.decision_function(test), fitted_lite0.decision_function(test)
    )
    assert pipe["features"].get_feature_names_out().shape == (1280,)


def test_cached_search_fine_tunes_once_per_setting_and_fold(digits, tmp_path, monkeypatch):
    calls = []
    fine_tune = skmsc.nn._training.fine_tune

    def counting_fine_tune(*args, **kwargs):
        calls.append(kwargs["learning_rate"])
        return fine_tune(*args, **kwargs)

    monkeypatch.setattr(skmsc.nn._training, "fine_tune", counting_fine_tune)
    X, y = digits
    images = np.concatenate([X[y == 0][:30], X[y != 0][:16]])
    labels = np.r_[np.ones(30), np.zeros(16)].astype(int)
    pipe = Pipeline(
        [("features", MeanShiftedFeatures(**FAST, epochs=1)), ("knn", KNNDetector())],
        memory=str(tmp_path / "cache"),
    )
    grid = {
        "features__learning_rate": [1e-5, 1e-3],  # 2 fine-tuning settings
        "knn__n_neighbors": [1, 3],
        "knn__contamination": [0.01, 0.1],
    }
    search = GridSearchCV(
        pipe, grid, cv=OneClassKFold(2), scoring=normal_roc_auc_scorer, refit=False
    ).fit(images, labels)
    n_fits = len(search.cv_results_["params"]) * 2
    assert n_fits == 16
    # One fine-tuning per (setting, fold) pair: 2 x 2, not 16.
    assert sorted(calls) == [1e-5, 1e-5, 1e-3, 1e-3]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_score_ > 0.8


def test_knn_detector_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 5))
    det = KNNDetector(knn_algorithm="exact").fit(X)
    joblib.dump(det, tmp_path / "knn.joblib")
    loaded = joblib.load(tmp_path / "knn.joblib")
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))


def test_features_of_other_image_shapes(fitted_lite0, digits):
    features = MeanShiftedFeatures(**FAST, epochs=0).fit(digits[0][:6])
    assert features.transform(np.zeros((2, 9, 8))).shape == (2, 1280)
    with pytest.raises(ValueError, match=r"X\[None\]"):
        features.transform(np.zeros((9, 8)))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_features_pass_precision_to_the_network(digits, precision):
    features = MeanShiftedFeatures(**FAST, epochs=0, precision=precision).fit(digits[0][:6])
    assert features.precision == precision
    assert features.precision_["features"] == precision
