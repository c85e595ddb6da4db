"""scikit-learn's common checks on the feature-vector path, and the API contract."""

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmsc import AnomaliesInTrainingWarning, MeanShiftedContrastiveDetector

EXPECTED_FAILURES = {
    # predict() on the training set itself counts each training sample as its own nearest
    # neighbour (distance 0), so fewer than `contamination` of them fall below offset_,
    # which is set from leave-one-out scores so that *new* normal samples are flagged at
    # that rate (tested below on fresh samples). train_scores_ holds the LOO scores.
    "check_outliers_train": "offset_ is calibrated on leave-one-out scores; "
    "predict(X_train) is self-inclusive",
    "check_outliers_fit_predict": "fit_predict(X) == fit(X).predict(X) is self-inclusive; "
    "offset_ is calibrated on leave-one-out scores",
    # score(X, y) is ROC-AUC with skmsc's labels (1 normal, 0 or -1 anomaly) and refuses the
    # check's y = arange(n) % 3; test_detector_score.py checks the signatures it checks.
    "check_fit_score_takes_y": "score refuses labels 2 (y = arange(n) % 3): 1 normal, "
    "0 or -1 anomaly",
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILURES


@parametrize_with_checks(
    [MeanShiftedContrastiveDetector(random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_common_checks(estimator, check):
    check(estimator)


def test_init_stores_parameters_unchanged_and_clone_round_trips():
    det = MeanShiftedContrastiveDetector(
        "efficientnet_lite0", epochs=3, contamination=0.1, device="cpu", random_state=7
    )
    params = det.get_params()
    assert params["backbone"] == "efficientnet_lite0" and params["epochs"] == 3
    cloned = clone(det)
    assert cloned.get_params() == params
    cloned.set_params(random_state=1, n_neighbors=5)
    assert cloned.random_state == 1 and det.random_state == 7


def test_unfitted_calls_raise_not_fitted(small_rgb_images):
    det = MeanShiftedContrastiveDetector()
    for method in ("score_samples", "decision_function", "predict", "kneighbors"):
        with pytest.raises(NotFittedError):
            getattr(det, method)(small_rgb_images)


def test_one_sample_fit_is_a_clear_error():
    with pytest.raises(ValueError, match="n_samples=1"):
        MeanShiftedContrastiveDetector().fit(np.zeros((1, 4)))


def test_contamination_auto_flags_about_one_percent_of_fresh_normals():
    rng = np.random.default_rng(0)
    det = MeanShiftedContrastiveDetector(random_state=0).fit(rng.normal(size=(3000, 8)))
    flagged = np.mean(det.predict(rng.normal(size=(20000, 8))) == -1)
    # 1% target; the threshold is a percentile of 3,000 leave-one-out scores, whose
    # sampling error at the 1% quantile is about 0.2 points.
    assert 0.005 < flagged < 0.016


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_contamination_float_matches_flag_rate_on_fresh_normals(contamination):
    rng = np.random.default_rng(1)
    det = MeanShiftedContrastiveDetector(contamination=contamination).fit(
        rng.normal(size=(2000, 6))
    )
    flagged = np.mean(det.predict(rng.normal(size=(20000, 6))) == -1)
    assert abs(flagged - contamination) < 0.02
    assert np.mean(det.train_scores_ < det.offset_) == pytest.approx(contamination, abs=1e-3)
    # Self-inclusive training predictions flag far fewer: the reason for LOO.
    assert np.mean(det.fit_predict(det.train_features_) == -1) < contamination / 2


def test_score_signs_and_types():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5))
    det = MeanShiftedContrastiveDetector().fit(X)
    far = np.full((1, 5), 8.0)
    scores = det.score_samples(np.vstack([X[:1], far]))
    assert scores.dtype == np.float64 and scores.shape == (2,)
    assert scores[1] < scores[0]
    labels = det.predict(np.vstack([X[:1], far]))
    assert labels.dtype.kind == "i" and labels.tolist() == [1, -1]
    np.testing.assert_allclose(det.decision_function(X), det.score_samples(X) - det.offset_)


def test_feature_path_pipeline_and_grid_search():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(150, 4)), rng.normal(size=(30, 4)) + 6])
    y = np.r_[np.ones(150), np.zeros(30)].astype(int)
    # Fold 0 trains on normals 0-99 and tests on the rest (held-out normals + anomalies).
    fold = np.full(len(X), -1)
    fold[100:] = 0
    pipe = Pipeline([("scale", FunctionTransformer()), ("det", MeanShiftedContrastiveDetector())])
    search = GridSearchCV(
        pipe, {"det__n_neighbors": [1, 3]}, cv=PredefinedSplit(fold), scoring="roc_auc"
    )
    # scikit-learn's refit trains on every row, anomalies included: the detector says so.
    with pytest.warns(AnomaliesInTrainingWarning, match="30 of 180 rows"):
        search.fit(X, y)
    assert search.best_score_ > 0.95


def test_joblib_round_trip_features(tmp_path):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 6))
    det = MeanShiftedContrastiveDetector().fit(X)
    joblib.dump(det, tmp_path / "det.joblib")
    loaded = joblib.load(tmp_path / "det.joblib")
    np.testing.assert_array_equal(loaded.score_samples(X), det.score_samples(X))
